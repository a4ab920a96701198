"""Design spaces: domains as network parameter defaults, `require`, and `archdsl sample`."""
from __future__ import annotations

import argparse
import csv
import io
import time

import pytest

import archdsl
from archdsl import analyze, sampling
from archdsl.errors import ArchError
from archdsl.values import BlockRef, Expr

SPACE = """import "std/resnet.arch"
network tiny(classes = 10, width = choice([16, 32, 64]), unit = choice([basic, bottleneck]),
             depths = [int_range(1, 3), choice([1, 2], default=2)], mult = float_range(0.5, 2.0, log=true)) {
    input image: [3, 32, 32]
    conv(width, 3, pad=1) -> bn -> relu
    for i, n in enumerate(depths) { unit(width * 2**i, stride=1 if i == 0 else 2) * n }
    global_avgpool -> flatten -> linear(int(classes * mult))
    require params < 400_000, "under 400K parameters"
}
"""

# a space with designs of every kind: valid ones, ones too large for `require`, ones whose kernel
# is larger than the image (E045)
MIXED = """network mixed(width = choice([8, 16, 32]), kernel = int_range(1, 9, step=2)) {
    input image: [3, 6, 6]
    conv(width, kernel) -> conv(width, kernel) -> relu
    require params < 5_000, "under 5K parameters"
}
"""


def spec(tmp_path, text, name="space.arch"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_sample(argv: list) -> int:
    """`archdsl sample ARGV` as the command line runs it (diagnostics rendered, exit code returned)."""
    parser = argparse.ArgumentParser()
    sampling.add_parser(parser.add_subparsers(dest="command"))
    try:
        return sampling.run(parser.parse_args(["sample", *map(str, argv)]))
    except ArchError as e:
        print(e.render())
        return 1


# ----------------------------------------------------------------------------- domains in the spec

def test_defaults_and_space(tmp_path):
    g = archdsl.check(spec(tmp_path, SPACE))
    assert list(g.space) == ["width", "unit", "depths[0]", "depths[1]", "mult"]
    assert g.design == {"width": 16, "unit": "basic", "depths[0]": 1, "depths[1]": 2, "mult": 0.5}
    assert g.params["depths"] == [1, 2] and isinstance(g.params["unit"], BlockRef)
    width, unit, d0, d1, mult = g.space.values()
    assert (width.kind, width.choices, width.size()) == ("choice", (16, 32, 64), 3)
    assert unit.choices == ("basic", "bottleneck")  # blocks by name
    assert (d0.kind, d0.low, d0.high, d0.step, d0.values()) == ("int", 1, 3, 1, [1, 2, 3])
    assert d1.default == 2
    assert (mult.kind, mult.low, mult.high, mult.log, mult.finite) == ("float", 0.5, 2.0, True, False)
    # the default design is an ordinary spec: the same graph as the values written out
    plain = archdsl.check(spec(tmp_path, SPACE.replace(
        "width = choice([16, 32, 64]), unit = choice([basic, bottleneck]),", "width = 16, unit = basic,").replace(
        "[int_range(1, 3), choice([1, 2], default=2)], mult = float_range(0.5, 2.0, log=true)", "[1, 2], mult = 0.5"),
        "plain.arch"))
    assert plain.space == {} and plain.total_params == g.total_params


def test_set_inside_the_domain(tmp_path):
    path = spec(tmp_path, SPACE)
    g = archdsl.check(path, width=32, unit="bottleneck", depths=[3, 1], mult=1.5)
    assert g.design == {"width": 32, "unit": "bottleneck", "depths[0]": 3, "depths[1]": 1, "mult": 1.5}
    assert g.record["params"] == {"width": 32, "unit": "bottleneck", "depths": [3, 1], "mult": 1.5}
    assert archdsl.check(None, files=g.record).total_params == g.total_params  # the record replays
    cli = archdsl.check(path, unit=Expr("bottleneck", "--set unit"), width=Expr("32", "--set width"),
                        depths=Expr("[3, 1]", "--set depths"), mult=Expr("1.5", "--set mult"))
    assert cli.total_params == g.total_params and cli.record["params"]["unit"] == "bottleneck"


@pytest.mark.parametrize("given, wording", [
    ({"width": 24}, "`width` = 24 is outside its domain choice([16, 32, 64])"),
    ({"unit": "resnet"}, "`unit` = \"resnet\" is outside its domain choice([basic, bottleneck])"),
    ({"depths": [4, 1]}, "`depths[0]` = 4 is outside its domain int_range(1, 3)"),
    ({"depths": [1]}, "`depths` = [1] is outside its design space: it must be a list of 2 values"),
    ({"mult": 4.0}, "`mult` = 4.0 is outside its domain float_range(0.5, 2.0, log=true)"),
])
def test_set_outside_the_domain(tmp_path, given, wording):
    with pytest.raises(ArchError) as e:
        archdsl.check(spec(tmp_path, SPACE), **given)
    assert e.value.code == "E121" and wording in e.value.message
    assert e.value.span.line in (2, 3)  # the parameter's declaration


def test_list_of_domains(tmp_path):
    text = """network n(widths = [choice([8, 16]), 4, int_range(2, 6, step=2)]) {
        input image: [3, 8, 8]
        for w in widths { conv(w, 3, pad=1) }
    }"""
    g = archdsl.check(spec(tmp_path, text))
    assert list(g.space) == ["widths[0]", "widths[2]"] and g.params["widths"] == [8, 4, 2]
    assert archdsl.check(spec(tmp_path, text), widths=[16, 4, 6]).params["widths"] == [16, 4, 6]


@pytest.mark.parametrize("text, line", [
    ("block b(w = choice([8, 16])) { conv(w, 3) }\nnetwork n() {\n input image: [3, 8, 8]\n b()\n}", 1),
    ("network n() {\n input image: [3, 8, 8]\n conv(choice([8, 16]), 3)\n}", 3),
    ("let w = int_range(2, 4)\nnetwork n(k = w) {\n input image: [3, 8, 8]\n conv(k, 3)\n}", 1),
    ("block b(w) { conv(w, 3) }\nnetwork n() {\n input image: [3, 8, 8]\n b(float_range(1, 2))\n}", 4),
    ("network n(w = [[choice([8, 16])]]) {\n input image: [3, 8, 8]\n relu\n}", 1),
])
def test_domain_outside_a_network_parameter(tmp_path, text, line):
    with pytest.raises(ArchError) as e:
        archdsl.check(spec(tmp_path, text))
    assert e.value.code == "E120" and e.value.span.line == line, e.value.render()


@pytest.mark.parametrize("domain, wording", [
    ("choice([])", "needs a non-empty list"),
    ("choice(8, 16)", "takes one list of values"),
    ("choice([8, 8])", "lists 8 twice"),
    ("choice([8, 16], defualt=8)", "`choice` has no parameter `defualt`"),
    ("choice([8, 16], default=4)", "the default 4 is not in choice([8, 16])"),
    ("int_range(8, 2)", "is empty"),
    ("int_range(2, 9, step=2)", "the step must be a positive divisor"),
    ("int_range(0, 8, log=true)", "a log `int_range` needs a low end of at least 1"),
    ("float_range(0, 4, log=true)", "needs a positive low end"),
    ("float_range(1, 1)", "is empty"),
])
def test_bad_domains(tmp_path, domain, wording):
    with pytest.raises(ArchError) as e:
        archdsl.check(spec(tmp_path, f"network n(w = {domain}) {{\n input image: [3, 8, 8]\n relu\n}}"))
    assert e.value.code == "E119" and wording in e.value.message, e.value.render()
    assert "Traceback" not in e.value.render()


# ----------------------------------------------------------------------------- require

def test_require(tmp_path):
    text = """network n(w = choice([8, 64])) {
        input image: [3, 16, 16]
        conv(w, 3, pad=1) -> relu
        require macs == 3 * 9 * w * 256, "the MACs so far"
        y = global_avgpool -> flatten -> linear(10)
        require y.shape == [10]
        require params < 1000, "under 1,000 parameters"
    }"""
    g = archdsl.check(spec(tmp_path, text))
    assert analyze.summary(g).totals["macs"] == 3 * 9 * 8 * 256 + 80
    with pytest.raises(ArchError) as e:
        archdsl.check(spec(tmp_path, text), w=64)
    err = e.value
    assert err.code == "E122" and (err.span.line, err.span.col) == (7, 17)
    assert "requirement not met: params < 1000 (under 1,000 parameters)" in err.message
    assert "design: w=64" in err.render() and "left: 2,442" not in err.render()


def test_require_belongs_in_a_network(tmp_path):
    text = "block b() { require params > 0 }\nnetwork n() {\n input image: [3, 8, 8]\n b()\n}"
    with pytest.raises(ArchError) as e:
        archdsl.check(spec(tmp_path, text))
    assert e.value.code == "E018" and "`require` belongs in a network" in e.value.message


# ----------------------------------------------------------------------------- sampling

def test_sample_designs_api(tmp_path):
    path = spec(tmp_path, SPACE)
    designs = list(sampling.sample_designs(path, 12, seed=3))
    assert len(designs) == 12
    for values, result in designs:
        assert list(values) == ["width", "unit", "depths[0]", "depths[1]", "mult"]
        if isinstance(result, ArchError):
            assert result.code == "E122"
            continue
        assert result.design == values
        again = archdsl.check(None, files=result.record)  # each design's record replays to the same IR
        assert again.total_params == result.total_params
    assert [v for v, _ in designs] == [v for v, _ in sampling.sample_designs(path, 12, seed=3)]
    assert [v for v, _ in designs] != [v for v, _ in sampling.sample_designs(path, 12, seed=4)]


def test_draws_stay_in_their_domains():
    import numpy as np
    from archdsl.values import Domain
    rng = np.random.default_rng(0)
    domains = [Domain("choice", ("a", "b", "c")), Domain("int", low=2, high=8, step=2),
               Domain("int", low=1, high=64, step=1, log=True), Domain("float", low=0.25, high=4.0, log=True),
               Domain("float", low=-1.0, high=1.0)]
    for d in domains:
        seen = {sampling.draw(d, rng) for _ in range(300)}
        assert all(d.contains(v) for v in seen)
        if d.finite and d.size() < 10:
            assert seen == set(d.values())  # every value is drawn


def test_invalid_designs_are_counted(tmp_path):
    s = sampling.sample(spec(tmp_path, MIXED), 60, seed=1)
    assert len(s.rows) == 60
    codes = {r["error"] for r in s.rows if not r["valid"]}
    assert codes == {"E122", "E045"} and sum(s.errors.values()) == 60 - len(s.valid) > 0
    for r in s.rows:
        k, w = r["kernel"], r["width"]
        fits = 2 * (k - 1) < 6
        small = fits and 3 * k * k * w + w + w * k * k * w + w < 5_000
        assert r["valid"] == small and (r["error"] is None) == small
        if small:
            assert r["params"] == 3 * k * k * w + w + w * k * k * w + w


def test_csv_columns_and_reproducible_bytes(tmp_path):
    path = spec(tmp_path, SPACE)
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    assert run_sample([path, "-n", "25", "--seed", "7", "-o", a]) == 0
    assert run_sample([path, "-n", "25", "--seed", "7", "-o", b]) == 0
    assert run_sample([path, "-n", "25", "--seed", "8", "-o", c]) == 0
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    rows = list(csv.DictReader(io.StringIO(a.read_text())))
    assert list(rows[0]) == ["space", "design", "width", "unit", "depths[0]", "depths[1]", "mult", "valid", "error",
                             "params", "macs", "activation_bytes_per_image", "weight_depth"]
    assert [r["design"] for r in rows] == [str(i) for i in range(25)] and {r["space"] for r in rows} == {"space"}
    for r in rows:
        if r["valid"] == "true":
            g = archdsl.check(path, width=int(r["width"]), unit=r["unit"], mult=float(r["mult"]),
                              depths=[int(r["depths[0]"]), int(r["depths[1]"])])
            t = analyze.summary(g).totals
            assert [int(r[k]) for k in sampling.FIGURES] == [t[k] for k in sampling.FIGURES]
        else:
            assert r["error"] == "E122" and r["params"] == ""


def test_two_spaces_and_the_plot(tmp_path, capsys):
    plot = tmp_path / "edf.png"
    out = tmp_path / "d.csv"
    assert run_sample([spec(tmp_path, SPACE), spec(tmp_path, MIXED, "mixed.arch"), "-n", "20",
                       "--plot", plot, "-o", out]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    header = out.read_text().split("\n")[0]
    assert header == ("space,design,width,unit,depths[0],depths[1],mult,kernel,valid,error,params,macs,"
                      "activation_bytes_per_image,weight_depth")
    text = capsys.readouterr().out
    assert "space: 20 designs of 5 dimensions" in text and "mixed: 20 designs of 2 dimensions" in text
    assert "E045" in text and "median" not in text and "50%" in text


def test_hundred_designs_fast(tmp_path):
    """CI's bound: 100 designs of a ResNet-50-sized space in under 5 s of CPU (about 0.7 s here)."""
    text = (sampling_bench_space())
    t = time.process_time()
    s = sampling.sample(text, 100, seed=0)
    elapsed = time.process_time() - t
    assert len(s.rows) == 100 and len(s.valid) > 50
    assert elapsed < 5.0, f"{elapsed:.2f} s"


def sampling_bench_space() -> str:
    import importlib.util
    from pathlib import Path
    where = Path(__file__).resolve().parent.parent / "bench" / "bench_sample.py"
    spec_ = importlib.util.spec_from_file_location("bench_sample", where)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module.SPACE


def test_bench_space_defaults_to_resnet50():
    g = archdsl.check(sampling_bench_space())
    assert g.total_params == archdsl.check("specs/resnet50.arch").total_params == 25_557_032


# ----------------------------------------------------------------------------- bad input

def test_empty_space(tmp_path, capsys):
    path = spec(tmp_path, "network n(w = 8) {\n input image: [3, 8, 8]\n conv(w, 3)\n}\n")
    assert run_sample([path, "-n", "5"]) == 1
    assert "error[E123]: nothing to sample: network `n` declares no design space" in capsys.readouterr().out
    pinned = spec(tmp_path, "network n(w = choice([8, 16])) {\n input image: [3, 8, 8]\n conv(w, 3)\n}\n", "p.arch")
    assert run_sample([pinned, "-n", "5", "--set", "w=8"]) == 1
    assert "every dimension is pinned" in capsys.readouterr().out
    assert run_sample([pinned, "-n", "0"]) == 1
    assert "E123" in capsys.readouterr().out


def test_every_design_invalid(tmp_path, capsys):
    path = spec(tmp_path, "network n(k = int_range(5, 9)) {\n input image: [3, 4, 4]\n conv(8, k)\n}\n")
    out, plot = tmp_path / "d.csv", tmp_path / "p.png"
    assert run_sample([path, "-n", "6", "-o", out, "--plot", plot]) == 1
    text = capsys.readouterr().out
    assert "error[E124]: no valid design in the 6 drawn from `space`" in text and "E045" in text
    assert "Traceback" not in text
    assert out.read_text().count("\n") == 7 and plot.exists()  # written all the same


def test_unknown_domain_argument_on_the_command_line(tmp_path, capsys):
    path = spec(tmp_path, "network n(w = choice([8, 16], dflt=8)) {\n input image: [3, 8, 8]\n conv(w, 3)\n}\n")
    assert run_sample([path, "-n", "3"]) == 1
    text = capsys.readouterr().out
    assert "error[E119]: `choice` has no parameter `dflt`" in text and "default" in text
