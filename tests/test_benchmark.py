"""``archdsl bench``, ``compare`` of variants (``--vs``) and of run folders, ``chart --measure``.

Timings are noisy on a shared machine: the tests check the numbers that follow from them
(quantiles, throughput, the ratio) and the sizes against torch, never a speed.
"""
from __future__ import annotations

import argparse
import json
import statistics

import pytest
import torch

import archdsl
from archdsl import benchmark, cli, comparison
from archdsl.analyze import summary as analyze_summary
from archdsl.report import fmt_count

WIDE = "network wide(width = 8, classes = 10) {{\n    input image: [3, 8, 8]\n" \
       "    conv(width, 3, pad=1) -> relu -> conv(width, 3, pad=1) -> relu -> global_avgpool -> flatten\n" \
       "    linear(classes)\n}}\n"
SIZED = "network sized(size = 8) {\n    input image: [3, size, size]\n" \
        "    conv(4, 3, pad=1) -> global_avgpool -> flatten\n}\n"
FAST = {"runs": 5, "warmup": 1, "threads": 1}


@pytest.fixture
def specs(tmp_path):
    (tmp_path / "wide.arch").write_text(WIDE.format())
    (tmp_path / "sized.arch").write_text(SIZED)
    return tmp_path


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """``archdsl ...`` in this process, with bench and the new compare wired in as the lead will."""
    build = cli.build_parser

    def wired():
        p = build()
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        if "bench" not in sub.choices:
            benchmark.add_parser(sub)
        compare = sub.choices["compare"]
        if not any("--vs" in a.option_strings for a in compare._actions):
            comparison.add_compare_options(compare)
        return p
    monkeypatch.setattr(cli, "build_parser", wired)
    monkeypatch.setitem(cli.COMMANDS, "bench", benchmark.run)
    monkeypatch.setitem(cli.COMMANDS, "compare", comparison.run_compare)

    def call(*argv):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err
    return call


def torch_params(spec, **params) -> int:
    return sum(p.numel() for p in archdsl.load(spec, **params).parameters())


# ----------------------------------------------------------------------------- bench

def test_bench_two_specs_numbers_and_ratio(specs):
    a, b = specs / "wide.arch", specs / "wide.arch"
    r = benchmark.bench(a, vs=b, width=4, vs_options={"width": 16}, batch=2, **FAST)
    assert (r.a.label, r.b.label) == ("wide [width=4]", "wide [width=16]")
    assert r.a.params == torch_params(a, width=4) == 4 * 27 + 4 + 4 * 36 + 4 + 4 * 10 + 10
    assert r.b.params == torch_params(b, width=16)
    for m, width in ((r.a, 4), (r.b, 16)):
        t = analyze_summary(archdsl.check(a, width=width), batch=2).totals
        assert m.macs == t["macs"] == 64 * (width * 27 + width * width * 9) + width * 10
        assert m.peak_estimate and m.peak_bytes == t["model_bytes"] + t["activation_bytes"]
        assert len(m.times_ms) == 5 and m.min_ms <= m.q1_ms <= m.median_ms <= m.q3_ms <= m.max_ms
        assert m.median_ms == pytest.approx(statistics.median(m.times_ms))
        assert m.images_per_s == pytest.approx(2 / (m.median_ms / 1e3))
    assert r.ratio == pytest.approx(r.a.median_ms / r.b.median_ms)
    assert r.options["batch"] == 2 and not r.options["train"]
    assert json.loads(r.to_json())["ratio"] == pytest.approx(r.ratio)


def test_bench_a_spec_against_itself_is_about_one(specs):
    r = benchmark.bench(specs / "wide.arch", vs=specs / "wide.arch", runs=40, warmup=3, threads=1)
    assert (r.a.label, r.b.label) == ("wide (A)", "wide (B)")
    assert 0.5 < r.ratio < 2.0


def test_bench_training_step_changes_weights_and_estimates_memory(specs):
    graph = archdsl.check(specs / "wide.arch")
    m = benchmark._Model("wide", archdsl.load(specs / "wide.arch", seed=0), [(3, 8, 8)], 0, 0, 0)
    before = [p.detach().clone() for p in m.module.parameters()]
    step = benchmark._Step(m, benchmark.BenchOptions(batch=2, train=True).checked(), torch.device("cpu"))
    step()
    assert all(not torch.equal(p0, p) for p0, p in zip(before, m.module.parameters()))
    assert all(p.grad is None for p in m.module.parameters())          # set to None after the step
    assert len(step.opt.state) == len(before)                         # SGD momentum buffers
    r = benchmark.bench(specs / "wide.arch", train=True, batch=2, **FAST)
    assert r.b is None and r.ratio is None
    assert r.a.peak_bytes == analyze_summary(graph, batch=2).totals["train_sgd_bytes"]


def test_bench_torchvision_other(specs):
    r = benchmark.bench("specs/resnet18.arch", vs="torchvision:resnet18", size=32, classes=10, runs=2, warmup=1,
                        threads=1)
    import torchvision
    tv = torchvision.models.resnet18(num_classes=10)
    assert r.a.params == r.b.params == sum(p.numel() for p in tv.parameters())
    assert r.a.macs == r.b.macs      # analyze's count = torch's FLOP counter / 2
    assert r.b.peak_bytes is None and r.b.label == "torchvision:resnet18"
    assert any("num_classes=10" in n for n in r.notes)


def test_split_variants():
    argv = ["a.arch", "--set", "x=1", "--batch", "2", "--vs", "b.arch", "--set", "y=2"]
    assert benchmark.split_variants(argv) == (argv[:5], ["b.arch", "--set", "y=2"])
    assert benchmark.split_variants(["a.arch"]) == (["a.arch"], None)
    for bad in (["a", "--vs"], ["a", "--vs", "--set", "x=1"], ["a", "--vs", "b", "--vs", "c"]):
        with pytest.raises(SystemExit) as e:
            benchmark.split_variants(bad)
        assert e.value.code == 2
    ns, shared = benchmark.parse_variant(["b.arch", "--set", "y=2", "--input", "image=[3,4,4]", "--runs", "3"],
                                         "t", benchmark._SHARED)
    assert (ns.other, ns.set, ns.input, shared) == ("b.arch", ["y=2"], ["image=[3,4,4]"], {"runs": 3})


def test_cli_bench_each_side_its_options(specs, run_cli):
    spec = specs / "wide.arch"
    code, out, _ = run_cli("bench", spec, "--set", "width=4", "--vs", spec, "--set", "width=16", "--batch", "2",
                           "--runs", "3", "--warmup", "0", "--threads", "1", "--format", "json")
    assert code == 0
    r = json.loads(out)
    assert (r["a"]["label"], r["b"]["label"]) == ("wide [width=4]", "wide [width=16]")
    assert (r["a"]["params"], r["b"]["params"]) == (torch_params(spec, width=4), torch_params(spec, width=16))
    assert r["options"]["batch"] == 2 and r["options"]["runs"] == 3     # written after --vs: both sides
    assert len(r["a"]["times_ms"]) == len(r["b"]["times_ms"]) == 3
    code, out, _ = run_cli("bench", specs / "sized.arch", "--size", "16", "--runs", "2", "--threads", "1")
    assert code == 0 and "sized" in out and "estimate" in out and "A / B" not in out
    code, out, _ = run_cli("bench", spec, "--vs", spec, "--runs", "2", "--threads", "1")
    assert code == 0 and "A / B = " in out


def test_bench_bad_inputs_are_diagnostics(specs, run_cli):
    spec = specs / "wide.arch"
    (specs / "bn.arch").write_text("network t() {\n    input x: [3, 1, 1]\n    bn\n}\n")
    fast = ("--runs", "1", "--warmup", "0", "--threads", "1")
    cases = [
        (("bench", specs / "missing.arch"), 1, "error[E070]"),
        (("bench", spec, "--vs"), 2, "archdsl: error: --vs needs the other spec"),
        (("bench", spec, "--vs", spec, "--vs", spec), 2, "--vs is given twice"),
        (("bench", spec, "--vs", spec, "--bogus"), 2, "archdsl: error: unrecognized arguments: --bogus"),
        (("bench", spec, "--size", "32"), 1, "error[E113]: network `wide` has no `size` parameter"),
        (("bench", specs / "sized.arch", "--size", "16", "--set", "size=8"), 1, "error[E114]: --size and --set"),
        (("bench", spec, "--runs", "0"), 1, "error[E114]: --runs must be an integer >= 1"),
        (("bench", spec, "--device", "tpu"), 1, "error[E114]: --device must be cpu, cuda or cuda:N"),
        (("bench", spec, "--vs", "torchvision:resnet19"), 1, "did you mean `resnet18`?"),
        (("bench", spec, "--vs", "torchvision:ResNet"), 1, "error[E114]"),
        (("bench", spec, "--vs", "torchvision:resnet18", "--set", "weights=DEFAULT"), 1, "error[E062]"),
        (("bench", spec, "--vs", "torchvision:resnet18", "--input", "x=[1,8,8]", *fast), 1,
         "error[E116]: torchvision:resnet18 failed on its input [1, 1, 8, 8]"),
        (("bench", specs / "bn.arch", "--train", *fast), 1, "--batch 2 or more"),
    ]
    if not torch.cuda.is_available():
        cases.append((("bench", spec, "--device", "cuda"), 1, "error[E111]: --device cuda needs CUDA"))
    for argv, code, wording in cases:
        got, out, err = run_cli(*argv)
        assert (got, wording in err) == (code, True), (argv, err)


# ----------------------------------------------------------------------------- compare

def test_compare_variants_and_two_files(specs, run_cli):
    spec = specs / "wide.arch"
    code, out, _ = run_cli("compare", spec, "--set", "width=4", "--vs", spec, "--set", "width=16")
    assert code == 0
    assert "wide [width=4] vs wide [width=16]" in out
    a, b = torch_params(spec, width=4), torch_params(spec, width=16)
    row = next(line for line in out.splitlines() if line.startswith("parameters"))
    assert row.split()[1:3] == [fmt_count(a), fmt_count(b)] and f"{b / a:.2f}" in row
    code, out, _ = run_cli("compare", spec, specs / "sized.arch")    # the old form: two files, shared options
    assert code == 0 and "wide vs sized" in out
    assert run_cli("compare", spec)[0] == 2
    assert run_cli("compare", spec, spec, "--vs", spec)[0] == 2


def write_run(folder, seed, val_acc, best, wall, params=61706, macs=416520):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({
        "val_acc": val_acc, "best_val_acc": best, "best_epoch": 3, "params": params, "macs": macs, "wall_s": wall,
        "argv": ["archdsl", "train"], "seed": seed, "world_size": 1}))


def test_compare_run_folders(tmp_path, run_cli):
    for seed, acc, best, wall in ((0, 0.90, 0.92, 10.0), (1, 0.94, 0.95, 12.0), (2, 0.92, 0.96, 11.0)):
        write_run(tmp_path / "base" / f"seed{seed}", seed, acc, best, wall)
    write_run(tmp_path / "new", 0, 0.8, 0.85, 3.0, params=1000, macs=2_000_000)
    rows = comparison.read_runs([tmp_path / "base", tmp_path / "new"])
    base, new = rows
    assert base.seeds == [0, 1, 2] and new.seeds == [0]
    assert base.val_acc == pytest.approx((0.92, statistics.stdev([0.90, 0.94, 0.92])))
    best = [0.92, 0.95, 0.96]
    assert base.best_val_acc == pytest.approx((statistics.fmean(best), statistics.stdev(best)))
    assert new.val_acc == (0.8, 0.0) and (new.params, new.macs) == (1000, 2_000_000)
    md = comparison.render_runs(rows, "markdown")
    assert "| 3 | 0.9200 ± 0.0200 | 0.9433 ± 0.0208 | 61.71K | 416.52K | 11.0 ± 1.0 |" in md
    assert "| 1 | 0.8000 | 0.8500 | 1.00K | 2.00M | 3.0 |" in md
    code, out, _ = run_cli("compare", tmp_path / "base", tmp_path / "new", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["runs"] for d in data] == [3, 1] and data[0]["val_acc_std"] == pytest.approx(0.02)
    code, out, _ = run_cli("compare", tmp_path / "base", tmp_path / "new", "--format", "csv")
    assert out.splitlines()[0].startswith("name,seeds,runs,params,macs,val_acc,val_acc_std")
    code, out, _ = run_cli("compare", tmp_path / "base", tmp_path / "new")
    assert code == 0 and "0.9200 ± 0.0200" in out and "new" in out
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    for folder, wording in (("empty", "is not a run folder: it has no summary.json"), ("broken", "cannot read"),
                            ("missing", "no such folder")):
        with pytest.raises(archdsl.ArchError) as e:
            comparison.read_runs([tmp_path / folder])
        assert e.value.code == "E115" and wording in e.value.message
    code, _, err = run_cli("compare", tmp_path / "empty")
    assert code == 1 and "error[E115]" in err
    code, _, err = run_cli("compare", tmp_path / "base", "--measure")
    assert code == 1 and "has no spec.arch to time" in err


def test_compare_run_folders_measured(tmp_path, run_cli):
    for seed in (0, 1):
        write_run(tmp_path / "base" / f"seed{seed}", seed, 0.9, 0.9, 1.0)
    (tmp_path / "base" / "seed2").mkdir()                     # unfinished: no summary.json
    (tmp_path / "base" / "seed0" / "spec.arch").write_text(WIDE.format())
    write_run(tmp_path / "new", 0, 0.8, 0.85, 3.0)
    (tmp_path / "new" / "spec.arch").write_text(SIZED)
    code, out, err = run_cli("compare", tmp_path / "base", tmp_path / "new", "--measure", "--format", "json")
    assert code == 0 and "left out seed2" in err
    data = json.loads(out)
    assert [d["runs"] for d in data] == [2, 1] and all(d["latency_ms"] > 0 for d in data)
    code, out, _ = run_cli("compare", tmp_path / "base", tmp_path / "new", "--measure", "--format", "markdown")
    assert out.splitlines()[0].endswith("| latency ms |")


# ----------------------------------------------------------------------------- chart --measure

def test_measured_chart(specs, tmp_path):
    import matplotlib.image
    from archdsl.analyze import chart
    summaries = [archdsl.summary(specs / "wide.arch"), archdsl.summary(specs / "wide.arch", width=32)]
    m = benchmark.measure_latency(summaries[0].graph, runs=3, warmup=1, threads=1)
    assert len(m.times_ms) == 3 and m.params == summaries[0].totals["params"]
    assert benchmark.measured_chart(summaries, tmp_path / "m.png", runs=2, warmup=0, threads=1) == []
    chart(summaries, tmp_path / "plain.png")
    measured, plain = (matplotlib.image.imread(tmp_path / f) for f in ("m.png", "plain.png"))
    assert measured.shape[0] == plain.shape[0] and measured.shape[1] > plain.shape[1]
    assert (measured[:, :plain.shape[1]] == plain).all()      # the lecture's chart, unchanged, on the left
