"""``archdsl search`` (issue 13): Optuna trials over a spec's design space, on the bundled digits.

Two worker processes share one SQLite study and stop at the study's total; a design that fails
its ``require`` is a FAIL trial with its code and is not trained; the best design is written as a
concrete spec whose parameters, MACs and state-dict match the trial's run, weights loading
strictly; every bad input is a diagnostic.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import archdsl
from archdsl import search as S

SPACE = """\
block plain(c) {
    conv(c, 3, pad=1, bias=false) -> bn -> relu
}

block res(c) {
    add {
        conv(c, 3, pad=1, bias=false) -> bn -> relu -> conv(c, 3, pad=1, bias=false) -> bn
        if in.c != c { conv(c, 1, bias=false) -> bn }
    } -> relu
}

network tiny(classes = 10, width = choice([4, 8]), unit = choice([plain, res]), depth = int_range(1, 2)) {
    input image: [1, 8, 8]
    stem: conv(width, 3, pad=1) -> relu
    body: { unit(width) * depth }
    head: global_avgpool -> flatten -> fc: linear(classes)
}
"""


def write(tmp_path, text=SPACE, name="space.arch"):
    path = tmp_path / name
    path.write_text(text)
    return path


def code_of(excinfo) -> str:
    return excinfo.value.code


def test_two_workers_share_one_study_and_stop_at_its_total(tmp_path):
    spec = write(tmp_path)
    out = tmp_path / "run"
    r = S.search(spec, trials=6, steps=1, batch=16, workers=2, out=str(out), latency=False, quiet=True,
                 sampler="random")
    numbers = [t["number"] for t in r.trials]
    assert sorted(numbers) == list(range(6))             # exactly 6, distinct numbers
    assert len(r.trained) == 6
    for t in r.trials:
        folder = out / f"trial_{t['number']:03d}"
        assert (folder / "summary.json").is_file() and (folder / "trial.json").is_file()
    import optuna
    study = optuna.load_study(study_name=r.study, storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 6
    # the study is the record: a second search on it adds nothing, its total being reached
    again = S.search(spec, trials=6, steps=1, out=str(out), latency=False, quiet=True)
    assert len(again.trials) == 6


def test_search_on_the_digits_writes_the_best_design(tmp_path):
    spec = write(tmp_path)
    out = tmp_path / "run"
    t0 = time.perf_counter()
    r = S.search(spec, trials=4, steps=20, workers=2, out=str(out), quiet=True)
    assert time.perf_counter() - t0 < 60
    assert len(r.trials) == 4 and r.best is not None
    best = r.best
    assert best["value"] == max(t["value"] for t in r.trained)
    assert all(t["latency_ms"] > 0 for t in r.trained)
    assert (out / "pareto.png").stat().st_size > 0 and (out / "edf.png").stat().st_size > 0
    # best.arch: a concrete spec (no domain left) with the trial's figures and the trial's state dict
    text = (out / "best.arch").read_text()
    assert "choice(" not in text and "int_range(" not in text
    run = out / f"trial_{best['number']:03d}"
    summary = json.loads((run / "summary.json").read_text())
    totals = archdsl.summary(out / "best.arch").totals
    assert (totals["params"], totals["macs"]) == (summary["params"], summary["macs"]) == (best["params"], best["macs"])
    graph = archdsl.check(out / "best.arch")
    assert {k: graph.params[k] for k in best["design"]} == best["design"] or \
        all(str(graph.params[k]).endswith(str(v)) for k, v in best["design"].items())
    from safetensors.torch import load_file
    weights = load_file(str(run / "weights.safetensors"))
    model = archdsl.load(out / "best.arch")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in weights.items()}
    model.load_state_dict(weights, strict=True)


def test_an_invalid_design_is_a_failed_trial_with_its_code(tmp_path):
    spec = write(tmp_path, SPACE.replace('    input image: [1, 8, 8]\n',
                                         '    input image: [1, 8, 8]\n    require width >= 8, "wide enough"\n'))
    out = tmp_path / "run"
    r = S.search(spec, trials=2, steps=1, sampler="grid", out=str(out), latency=False, quiet=True,
                 unit="plain", depth=1)
    by_width = {t["design"]["width"]: t for t in r.trials}
    assert by_width[4]["state"] == "FAIL" and by_width[4]["error"] == "E122"
    assert by_width[8]["state"] == "COMPLETE"
    failed = out / f"trial_{by_width[4]['number']:03d}"
    assert json.loads((failed / "trial.json").read_text())["error"] == "E122"
    assert not (failed / "weights.safetensors").exists()    # not trained


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_killed_workers_trial_is_failed_and_tried_again(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "HEARTBEAT_S", 1)           # stale after 2 s without a heartbeat
    spec = write(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    url = f"sqlite:///{out / 'study.db'}"
    import optuna
    study = optuna.create_study(storage=S._storage(url), study_name="lost", direction="maximize")
    lost = study.ask()                                 # a worker starts a trial...
    lost.suggest_categorical("width", [4, 8])
    study._storage.record_heartbeat(lost._trial_id)    # ... beats once, and is killed
    time.sleep(3.5)                                    # (SQLite keeps whole seconds)
    r = S.search(spec, trials=1, steps=1, study="lost", out=str(out), latency=False, quiet=True, unit="plain",
                 depth=1)
    assert [(t["number"], t["state"]) for t in r.trials] == [(0, "FAIL"), (1, "COMPLETE")]
    assert r.trials[1]["design"]["width"] == r.trials[0]["design"]["width"]   # the same design, again


@pytest.mark.parametrize("text, kwargs, code", [
    (SPACE, {"sampler": "bayes"}, "E125"),
    (SPACE, {"trials": 0}, "E125"),
    (SPACE, {"objective": "loss"}, "E125"),
    (SPACE.replace("depth = int_range(1, 2)", "depth = int_range(1, 2), mult = float_range(0.5, 2)"),
     {"sampler": "grid"}, "E126"),
    (SPACE, {"storage": "sqlite:////no/such/folder/study.db"}, "E127"),
    (SPACE, {"storage": "nosuchdb://somewhere/study"}, "E127"),
    (SPACE.replace('    input image: [1, 8, 8]\n', '    input image: [1, 8, 8]\n    require width > 8, "too wide"\n'),
     {"trials": 2}, "E128"),
    (SPACE, {"width": 4, "unit": "plain", "depth": 1}, "E129"),
])
def test_bad_input_is_a_diagnostic(tmp_path, text, kwargs, code):
    spec = write(tmp_path, text)
    kwargs = {"trials": 1, "steps": 1, "out": str(tmp_path / "run"), "latency": False, "quiet": True, **kwargs}
    with pytest.raises(archdsl.ArchError) as e:
        S.search(spec, **kwargs)
    assert code_of(e) == code, e.value.render()
    assert e.value.render().startswith(f"error[{code}]")


def test_the_command_line(tmp_path, capsys):
    spec = write(tmp_path)
    out = tmp_path / "run"
    assert S.main([str(spec), "--trials", "1", "--steps", "1", "--out", str(out), "--no-latency",
                   "--set", "depth=1"]) == 0
    printed = capsys.readouterr()
    assert "1 trial, 1 design trained, 0 failed" in printed.out and (out / "best.arch").is_file()
    assert "trial 0: width=" in printed.err
    assert S.main([str(spec), "--trials", "1", "--sampler", "bayes"]) == 1
    assert "error[E125]: unknown --sampler 'bayes'" in capsys.readouterr().err
    p = subprocess.run([sys.executable, "-m", "archdsl.search", str(spec), "--trials", "1", "--sampler", "bayes"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "error[E125]" in p.stderr and "Traceback" not in p.stderr
