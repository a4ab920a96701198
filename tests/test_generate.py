"""``archdsl generate`` (issue 13): random blocks from a grammar of ops and joins, within budgets.

Every file checks and draws, its figures within the budgets; the same seed writes the same
bytes; the ops and joins asked for are the ones used; bad options are diagnostics (E130).
"""
from __future__ import annotations

import argparse

import pytest

import archdsl
from archdsl import generate as G
from archdsl.generate.fuzz import RandomSource, random_spec

HEAD = {"input", "global_avgpool", "flatten", "linear"}   # the network around the block


def ops_of(path) -> set:
    return {d["op"] for d in archdsl.check(path).table.values()}


def test_blocks_check_draw_and_keep_the_budgets(tmp_path):
    made = G.generate(4, seed=3, max_params=5_000, max_macs=400_000, out=tmp_path)
    files = sorted(tmp_path.glob("*.arch"))
    assert [f.name for f in files] == [f"block_{i:03d}.arch" for i in range(4)]
    for g, path in zip(made, files):
        totals = archdsl.summary(path).totals
        assert (totals["params"], totals["macs"]) == (g.params, g.macs)
        assert totals["params"] <= 5_000 and totals["macs"] <= 400_000
        assert archdsl.render(path).pipe("svg").startswith(b"<?xml")
        text = path.read_text()
        assert text.startswith(f"# {path.stem}: a block drawn by `archdsl generate` (seed 3;")
        assert "block unit() {" in text and f"network {path.stem}(classes = 10)" in text


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    G.generate(3, seed=7, out=tmp_path / "a")
    G.generate(3, seed=7, out=tmp_path / "b")
    G.generate(3, seed=8, out=tmp_path / "c")
    a = [p.read_bytes() for p in sorted((tmp_path / "a").iterdir())]
    assert a == [p.read_bytes() for p in sorted((tmp_path / "b").iterdir())]
    assert a != [p.read_bytes() for p in sorted((tmp_path / "c").iterdir())]
    assert random_spec(RandomSource(5)).text == random_spec(RandomSource(5)).text


def test_the_ops_and_joins_asked_for(tmp_path):
    G.generate(3, ops="relu,maxpool,conv", joins="", depth=3, input="3,16,16", seed=1, out=tmp_path / "plain")
    for path in (tmp_path / "plain").iterdir():
        assert ops_of(path) <= {"relu", "maxpool", "conv"} | HEAD
    made = G.generate(6, ops=["conv", "bn", "relu"], joins=["concat"], depth=6, input=[4, 8, 8], seed=2,
                      out=tmp_path / "concat")
    used = set().union(*(ops_of(g.path) for g in made))
    assert "concat" in used and used <= {"conv", "bn", "relu", "concat", "narrow"} | HEAD   # (narrow: a split's part)
    assert "[4, 8, 8]" in made[0].text


@pytest.mark.parametrize("kwargs, wording", [
    ({"ops": "conv,batchnorm"}, "--ops names `batchnorm`, which the generator does not know"),
    ({"joins": "add,sum"}, "--joins names `sum`"),
    ({"ops": ""}, "--ops is empty"),
    ({"input": "3,x,32"}, "--input takes channels and sizes as integers"),
    ({"input": [3, 0, 32]}, "--input must be channels and one to three sizes"),
    ({"input": [3, 4096, 4096]}, "elements per image"),
    ({"depth": 0}, "--depth must be an integer from 1 to 32"),
    ({"max_params": 1}, "no block within --max-params 1 in 200 draws"),
])
def test_bad_options_are_diagnostics(tmp_path, kwargs, wording):
    with pytest.raises(archdsl.ArchError) as e:
        G.generate(1, out=tmp_path, **kwargs)
    assert e.value.code == "E130" and wording in e.value.message, e.value.render()
    assert not list(tmp_path.iterdir())


def test_the_command(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="archdsl")
    G.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", "-n", "2", "-o", str(tmp_path), "--ops", "conv,bn,relu", "--seed", "4",
                              "--max-params", "3000"])
    assert G.run(args) == 0
    out = capsys.readouterr()
    assert out.out.count("parameters") == 2 and "wrote 2 blocks" in out.err
    assert len(list(tmp_path.glob("block_*.arch"))) == 2
