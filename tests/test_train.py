"""`archdsl train` and `archdsl.train()`: the loop, the run folder, checkpoints and resume,
and the spec writer behind `spec.arch`.

Every run here is on the bundled digits, with one torch thread (the machine is small and
shared: two intra-op threads competing with other processes run ten times slower than one).
"""
from __future__ import annotations

import functools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import archdsl
from archdsl import runs
from archdsl import training as T
from archdsl.errors import ArchError
from archdsl.specwriter import SpecWriteError, concrete_spec, ir_signature, literal, same_ir
from archdsl.values import Expr

ROOT = Path(__file__).resolve().parent.parent

TINY = """network tiny(classes = 10) {
    input image: [1, 8, 8]
    conv(4, 3, pad=1) -> bn -> relu -> dropout(0.1) -> global_avgpool -> flatten -> linear(classes)
}
"""

AUX = """block head(classes) { global_avgpool -> flatten -> linear(classes) }
network auxnet(classes = 10) {
    input image: [1, 8, 8]
    conv(4, 3, pad=1) -> relu
    aux: tap(train_only=true) head(classes)
    conv(4, 3, pad=1) -> relu -> head(classes)
}
"""

TWO_OUTPUTS = """block head(classes) { global_avgpool -> flatten -> linear(classes) }
network two(classes = 10) {
    input image: [1, 8, 8]
    conv(4, 3, pad=1) -> relu
    side: tap head(classes)
    logits = head(classes)
    output logits, side
}
"""


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec(tmp_path, text, name="net.arch") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def cli(argv) -> int:
    """The command as ``archdsl`` runs it, argparse's own usage errors (exit 2) included."""
    from archdsl.cli import main
    try:
        return main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2


def weights_equal(a: Path, b: Path) -> bool:
    wa, wb = load_file(a), load_file(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ----------------------------------------------------------------------------- the reference run

def test_lenet5_trains_on_the_digits_and_leaves_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    start = time.perf_counter()
    assert cli(["train", str(ROOT / "specs/lenet5.arch"), "--epochs", "10", "--workers", "0", "--out", str(out)]) == 0
    took = time.perf_counter() - start
    print(f"lenet5, 10 epochs on the digits: {took:.1f} s")
    assert took < 60
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_acc"] >= 0.90
    for key in ("val_acc", "best_val_acc", "best_epoch", "params", "macs", "wall_s", "argv", "seed", "world_size"):
        assert key in summary, key
    assert 0 <= summary["val_acc"] <= summary["best_val_acc"] <= 1
    assert summary["params"] == 61_706 and summary["macs"] == archdsl.summary(ROOT / "specs/lenet5.arch").totals["macs"]
    assert summary["seed"] == 0 and summary["world_size"] == 1 and 0 < summary["wall_s"] < 60
    assert summary["argv"][:2] == ["archdsl", "train"] and 1 <= summary["best_epoch"] <= 10
    for name in ("metrics.jsonl", "summary.json", "weights.safetensors", "best.safetensors", "curves.png",
                 "spec.arch", "options.json", "record.json", runs.CHECKPOINT):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 11))
    assert [r["step"] for r in rows] == [22 * e for e in range(1, 11)]   # 1,437 images, batch 64, drop_last
    for r in rows:
        assert {"epoch", "step", "train_loss", "val_loss", "val_acc", "images_per_s"} <= set(r)
        assert 0 <= r["val_acc"] <= 1 and r["images_per_s"] > 0 and math.isfinite(r["train_loss"])
    assert rows[-1]["val_acc"] == summary["val_acc"]
    assert max(r["val_acc"] for r in rows) == summary["best_val_acc"]
    assert rows[0]["train_loss"] > rows[-1]["train_loss"]
    # the final weights are the model's, and they score what the summary says
    model = archdsl.load(out / "spec.arch")
    model.load_state_dict(load_file(out / "weights.safetensors"))
    from archdsl.data import make_loaders, validate
    loaders = make_loaders("digits", (1, 32, 32), 64, 0, 0, "cpu")
    assert validate(model, loaders.val, "cpu")["val_acc"] == pytest.approx(summary["val_acc"], abs=1e-12)
    # spec.arch elaborates to the same IR as the spec
    assert same_ir(archdsl.check(out / "spec.arch"), archdsl.check(ROOT / "specs/lenet5.arch"))
    err = capsys.readouterr().err
    assert "val_acc" in err and "\x1b[" not in err   # plain lines off a terminal


# ----------------------------------------------------------------------------- checkpoints and resume

@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_sigterm_is_bitwise_equal(tmp_path, workers):
    """40 steps straight against 40 steps stopped by SIGTERM after step 20 and resumed. The signal
    is sent from the training loop's per-step callback, at step 20 exactly, to this very process:
    the loop's own handler takes it (as it would from `kill`), checkpoints and stops."""
    net = spec(tmp_path, TINY)
    common = dict(steps=40, workers=workers, quiet=True, ckpt_every=7, eval_every=10)
    straight = T.train(net, out=str(tmp_path / "a"), **common)

    def at_step(step, info):
        if step == 20:
            os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(T.Interrupted) as stop:
        T.train(net, out=str(tmp_path / "b"), callback=at_step, **common)
    assert stop.value.step == 20 and stop.value.signame == "SIGTERM"
    _, state = runs.load_checkpoint(tmp_path / "b")
    assert state["loop"]["step"] == 20
    resumed = T.train(resume=tmp_path / "b", quiet=True)
    assert weights_equal(straight.weights, resumed.weights)
    assert weights_equal(tmp_path / "a" / runs.CHECKPOINT, tmp_path / "b" / runs.CHECKPOINT)
    strip = [{k: v for k, v in r.items() if k not in ("images_per_s", "wall_s")} for r in straight.history]
    assert strip == [{k: v for k, v in r.items() if k not in ("images_per_s", "wall_s")} for r in resumed.history]
    assert resumed.summary["steps"] == 40


def test_archdsl_train_is_the_function_of_archdsl_training(tmp_path):
    assert archdsl.train is T.train
    r = archdsl.train(spec(tmp_path, TINY), steps=1, out=str(tmp_path / "r"), quiet=True)
    assert isinstance(r, T.TrainResult) and r.summary["steps"] == 1
    assert archdsl.train(None, resume=tmp_path / "r", quiet=True).summary["steps"] == 1


def test_a_real_sigterm_checkpoints_and_exits_130(tmp_path):
    """The command in its own process, killed by SIGTERM once its first checkpoint is on disk."""
    net = spec(tmp_path, TINY)
    out = tmp_path / "run"
    code = ("import sys, torch; torch.set_num_threads(1); sys.path.insert(0, %r); "
            "from tests.test_train import cli; sys.exit(cli(sys.argv[1:]))" % str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", code, "train", str(net), "--steps", "100000", "--ckpt-every", "5",
                             "--out", str(out)], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if runs.load_checkpoint(out)[1]["loop"]["step"] >= 5:
                break
        except ArchError:
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "SIGTERM: stopped; the checkpoint is at step" in err and f"archdsl train --resume {out}" in err and "Traceback" not in err
    step = runs.load_checkpoint(out)[1]["loop"]["step"]
    assert 5 <= step < 100000
    done = T.train(resume=out, steps=step + 3, quiet=True)     # the totals may be raised on resume
    assert done.summary["steps"] == step + 3


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    net = spec(tmp_path, TINY)
    first = T.train(net, steps=4, out=str(tmp_path / "r"), quiet=True)
    again = T.train(resume=tmp_path / "r", quiet=True)
    assert weights_equal(first.weights, again.weights) and again.history == first.history


def test_checkpoints_hold_no_pickle_and_are_written_atomically(tmp_path):
    net = spec(tmp_path, TINY)
    T.train(net, steps=3, out=str(tmp_path / "r"), quiet=True, opt="adamw", sched="onecycle")
    raw = (tmp_path / "r" / runs.CHECKPOINT).read_bytes()
    assert b"\x80\x04" not in raw[:16]                        # a safetensors header, not a pickle
    weights, state = runs.load_checkpoint(tmp_path / "r")
    assert set(weights) == set(load_file(tmp_path / "r" / "weights.safetensors"))
    assert state["loop"]["step"] == 3 and state["optimizer"]["state"][0]["exp_avg"].dtype == torch.float32
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- losses, options

def test_training_only_taps_are_auxiliary_losses(tmp_path):
    """The first step's loss is CE(main) + aux_weight * CE(aux), recomputed here from the model and batch."""
    net = spec(tmp_path, AUX)
    r = T.train(net, steps=1, eval_every=1, out=str(tmp_path / "r"), quiet=True, aux_weight=0.5)
    from archdsl.compile import compile_graph
    from archdsl.data import make_loaders
    model = compile_graph(archdsl.check(net), seed=0)
    model.train()
    loaders = make_loaders("digits", (1, 8, 8), 64, 0, 0, "cpu")
    loaders.set_epoch(0)
    x, y = next(iter(loaders.train))
    out = model(x)
    ce = torch.nn.functional.cross_entropy
    expected = ce(out.out, y) + 0.5 * ce(out.aux, y)
    assert r.history[0]["train_loss"] == pytest.approx(expected.item(), rel=1e-6)
    assert ce(out.out, y).item() != pytest.approx(expected.item(), rel=1e-3)


def test_options_amp_channels_last_accum_clip_and_seeds(tmp_path):
    net = spec(tmp_path, TINY)
    r = T.train(net, steps=3, out=str(tmp_path / "bf16"), quiet=True, amp="bf16", channels_last=True,
                grad_accum=2, grad_clip=1.0, label_smoothing=0.1, sched="step")
    assert math.isfinite(r.history[-1]["train_loss"]) and r.summary["steps"] == 3
    torch.set_num_threads(2)
    T.train(net, steps=1, out=str(tmp_path / "threads"), quiet=True, threads=1)
    assert torch.get_num_threads() == 2     # --threads holds for the run only
    torch.set_num_threads(1)
    both = T.train(net, seeds=[0, 1], steps=2, out=str(tmp_path / "seeds"), quiet=True)
    assert [b.summary["seed"] for b in both] == [0, 1]
    assert [b.run_dir.name for b in both] == ["seed0", "seed1"]
    assert not weights_equal(both[0].weights, both[1].weights)


def test_compile_wraps_the_model(tmp_path, monkeypatch):
    """--compile on a tiny spec, through torch.compile with the aot_eager backend (it traces forward
    and backward as inductor does, without generating C++: seconds, not a minute here); the real
    inductor run is the slow test below."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    net = spec(tmp_path, TINY)
    r = T.train(net, steps=2, out=str(tmp_path / "r"), quiet=True, compile=True)
    assert set(load_file(r.weights)) == set(archdsl.load(net).state_dict())   # no `_orig_mod.` prefix


@pytest.mark.slow
def test_compile_with_inductor(tmp_path):
    net = spec(tmp_path, TINY)
    r = T.train(net, steps=2, out=str(tmp_path / "r"), quiet=True, compile=True)
    assert math.isfinite(r.history[-1]["train_loss"])


def test_classes_follow_the_data_and_say_so(tmp_path, capsys):
    net = spec(tmp_path, TINY.replace("classes = 10", "classes = 1000"))
    r = T.train(net, steps=1, out=str(tmp_path / "r"), quiet=True)
    assert "classes = 10" in capsys.readouterr().err
    assert archdsl.check(tmp_path / "r" / "spec.arch").params["classes"] == 10 and r.summary["steps"] == 1


# ----------------------------------------------------------------------------- diagnostics

def run_code(argv, capsys) -> tuple[int, str]:
    code = cli(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("every, message", [([], "the loss is nan at step 3 (epoch 1)"),
                                            (["--ckpt-every", "1"], "the weights are not finite after step")])
def test_a_loss_that_is_not_finite_stops_the_run(tmp_path, capsys, every, message):
    """A huge learning rate: the loss (or, checked before each checkpoint, the weights) stops being
    finite; the run stops with E108 and the last checkpoint, of finite weights, stays."""
    net = spec(tmp_path, TINY)
    out = tmp_path / "r"
    code, err = run_code(["train", str(net), "--lr", "1e30", "--steps", "30", *every, "--out", str(out)], capsys)
    assert code == 1 and f"error[E108]: {message}" in err and "the run stopped" in err, err
    assert "last good checkpoint" in err and "--lr" in err
    weights, state = runs.load_checkpoint(out)
    kept = state["loop"]["step"]
    assert f"(step {kept})" in err and kept < 30
    assert all(bool(torch.isfinite(v).all()) for v in weights.values())


def test_an_unwritable_run_folder(tmp_path, capsys):
    net = spec(tmp_path, TINY)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "run"):
        code, err = run_code(["train", str(net), "--steps", "1", "--out", str(out)], capsys)
        assert code == 1 and f"error[E109]: cannot write the run folder {out}" in err and "--out" in err
    T.train(net, steps=1, out=str(tmp_path / "used"), quiet=True)
    code, err = run_code(["train", str(net), "--steps", "1", "--out", str(tmp_path / "used")], capsys)
    assert code == 1 and "already holds a run" in err and "--resume" in err


def test_several_outputs_are_named(tmp_path, capsys):
    net = spec(tmp_path, TWO_OUTPUTS)
    code, err = run_code(["train", str(net), "--steps", "1", "--out", str(tmp_path / "r")], capsys)
    assert code == 1 and "error[E107]: network `two` has 2 outputs (`logits` [10], `side` [10])" in err
    assert "output NAME" in err and "--network" in err


def test_an_output_that_does_not_fit_the_classes(tmp_path, capsys):
    net = spec(tmp_path, TINY)
    code, err = run_code(["train", str(net), "--set", "classes=7", "--steps", "1", "--out", str(tmp_path / "r")], capsys)
    assert code == 1 and "error[E104]" in err and "7" in err and "10" in err
    fixed = spec(tmp_path, TINY.replace("linear(classes)", "linear(5)"), "fixed.arch")
    code, err = run_code(["train", str(fixed), "--steps", "1", "--out", str(tmp_path / "r2")], capsys)
    assert code == 1 and "error[E104]" in err and "5 classes" in err


@pytest.mark.parametrize("argv, code, text", [
    (["--lr", "-1"], 1, "error[E106]: --lr must be a positive number, got -1.0"),
    (["--label-smoothing", "2"], 1, "error[E106]: --label-smoothing must be a number in [0, 1], got 2.0"),
    (["--epochs", "0"], 1, "error[E106]: --epochs must be a positive integer"),
    (["--amp", "fp16", "--device", "cpu"], 1, "error[E111]: --amp fp16 needs CUDA"),
    (["--epochs", "1", "--steps", "1"], 2, "not allowed with argument"),
    (["--seeds", "0,x"], 2, "archdsl: error: --seeds takes comma-separated integers"),
    (["--opt", "lbfgs"], 2, "invalid choice"),
])
def test_bad_options(tmp_path, capsys, argv, code, text):
    net = spec(tmp_path, TINY)
    got, err = run_code(["train", str(net), "--out", str(tmp_path / "r"), *argv], capsys)
    assert got == code and text in err, err


def test_bad_resumes(tmp_path, capsys):
    code, err = run_code(["train"], capsys)
    assert code == 2 and "train needs a spec FILE (or --resume RUN_DIR)" in err
    code, err = run_code(["train", "--resume", str(tmp_path)], capsys)
    assert code == 1 and f"error[E110]: {tmp_path} is not a run folder" in err
    net = spec(tmp_path, TINY)
    code, err = run_code(["train", str(net), "--resume", str(tmp_path)], capsys)
    assert code == 2 and "--resume takes the spec and its options from the run folder" in err
    T.train(net, steps=1, out=str(tmp_path / "r"), quiet=True)
    (tmp_path / "r" / runs.CHECKPOINT).write_bytes(b"not a checkpoint")
    code, err = run_code(["train", "--resume", str(tmp_path / "r")], capsys)
    assert code == 1 and "error[E110]: cannot read the checkpoint" in err
    code, err = run_code(["train", "--resume", str(tmp_path / "r"), "--lr", "0.1"], capsys)
    assert code == 1 and "cannot change lr" in err


# ----------------------------------------------------------------------------- the spec writer

def test_spec_writer_inlines_imports_and_fixes_parameters(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "units.arch").write_text(
        "let W = 8\nblock plain(c) { conv(c, 3, pad=1) -> relu }\n"
        "block fancy(c) { conv(c, 3, pad=1) -> bn -> relu }\n")
    net = spec(tmp_path, 'import "lib/units.arch"\nimport "std/resnet.arch"\n'
               "network other() { input x: [3, 8, 8]\n conv(3, 1) }\n"
               "network n(unit = plain, act = relu, classes = 10, w = W * 2, tag = \"a\\\"b\") {\n"
               "    input image: [3, 16, 16]\n"
               "    unit(w) -> unit(w) -> act -> basic(w) -> global_avgpool -> flatten -> linear(classes)\n}\n")
    graph = archdsl.check(net, unit=Expr("fancy"), act=Expr("leaky_relu(0.2)"), inputs={"image": [3, 8, 8]},
                          classes=3)
    text = concrete_spec(graph)
    assert "import" not in text.replace("imports inlined", "") and "network other" not in text
    assert 'network n(unit = fancy, act = leaky_relu(0.2), classes = 3, w = 16, tag = "a\\"b")' in text
    assert "input image: [3, 8, 8]" in text and "block basic" in text
    again = archdsl.check(text, text=True)
    assert ir_signature(again) == ir_signature(graph)
    assert [d["name"] for d in again.table.values()] == [d["name"] for d in graph.table.values()]
    assert sum(d["params"] for d in again.table.values()) == graph.total_params


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121", "vit_b_16"])
def test_spec_writer_on_the_zoo(name):
    graph = archdsl.check(ROOT / "specs" / f"{name}.arch", classes=7)
    assert same_ir(archdsl.check(concrete_spec(graph), text=True), graph)


def test_spec_writer_refuses_what_one_file_cannot_hold(tmp_path):
    (tmp_path / "a.arch").write_text("block u(c) { conv(c, 1) }\n")
    net = spec(tmp_path, 'import "a.arch"\nblock u(c) { conv(c, 3, pad=1) }\n'
               "network n() { input x: [3, 8, 8]\n u(4) }\n")
    with pytest.raises(SpecWriteError, match="`u` is defined in both"):
        concrete_spec(archdsl.check(net))
    assert literal([1, (2,), {"k": 1.5}, None, True]) == '[1, (2,), {"k": 1.5}, none, true]'
    with pytest.raises(SpecWriteError):
        literal(float("nan"))
