"""archdsl render: folding, depth, expand, unroll, edge kinds, the error view, output formats,
determinism and the fallback without Graphviz."""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import archdsl
from archdsl.cli import main
from archdsl import render
from archdsl.draw import OptionError

from conftest import ROOT, SPECS

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")

TOY = """
block unit(c) { conv(c, 3, pad=1) -> bn -> relu }
block pair(c) { unit(c); unit(c) }
network toy() {
    input image: [3, 8, 8]
    stem: conv(4, 1)
    stage: { unit(4); unit(4) * 3 }
    pair(4)
    flatten -> fc: linear(2)
}
"""
DENSE = """
block layer(g) { bn -> relu -> conv(g, 3, pad=1) }
network dense_toy() {
    input image: [3, 8, 8]
    stem: conv(8, 1)
    block1: dense { for j in range(4) { layer{j+1}: layer(4) } }
    residual { conv(24, 3, pad=1) }
    aux: tap(train_only=true) { global_avgpool -> flatten -> linear(3) }
    global_avgpool -> flatten -> fc: linear(2)
}
"""
MISMATCH = """
block mixer(c) { concat { a: conv(c, 3, pad=1); b: conv(c, 3, stride=2, pad=1) } }
network bad() {
    input image: [3, 16, 16]
    stem: conv(8, 1) -> relu
    mix: mixer(4)
    flatten -> linear(10)
}
"""


def units(dot: str) -> dict:
    """Node statements of the dot source: id -> attribute text."""
    return dict(re.findall(r"^\t+([nso]\d+|fail) \[(.*)\]$", dot, re.M))


def boxes(dot: str) -> list[str]:
    """Ids of closed scopes and folds."""
    return [u for u in units(dot) if u[0] == "s"]


def clusters(dot: str) -> int:
    return dot.count("subgraph cluster_")


def label(dot: str, tooltip: str) -> str:
    return next(a for a in units(dot).values() if re.search(f'tooltip="?{re.escape(tooltip)}"?( |$)', a))


# --- every spec

@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_renders_deterministically_within_one_page(spec):
    first, second = render(spec), render(spec)
    assert first.dot == second.dot
    drawn = [a for a in units(first.dot).values() if "shape=circle" not in a]
    assert 3 <= len(drawn) <= 60
    if shutil.which("dot"):
        root = ET.fromstring(first.svg())
        assert root.tag.endswith("svg")
        assert len(root.findall(".//{http://www.w3.org/2000/svg}g[@class='node']")) == len(units(first.dot))


def test_dot_text_does_not_depend_on_hash_seeds():
    code = "import archdsl, sys; sys.stdout.write(archdsl.render(sys.argv[1]).dot)"
    outs = [subprocess.run([sys.executable, "-c", code, str(ROOT / "specs" / "googlenet.arch")], check=True,
                           capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")]
    assert outs[0] == outs[1] and "digraph" in outs[0]


def test_rendering_never_imports_torch():
    code = ("import sys, archdsl; archdsl.render(sys.argv[1], depth=9, unroll=True).dot; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(ROOT / "specs" / "resnet50.arch")], check=True)


# --- folding, depth, expand, unroll

def test_default_depth_opens_as_much_as_fits():
    dot = render(TOY).dot  # 22 ops fit: everything is drawn
    assert boxes(dot) == [] and len(units(dot)) == 6 * 3 + 4 + 1


def test_depth_1_folds_repeated_copies_in_a_labelled_group():
    dot = render(TOY, depth=1).dot
    assert clusters(dot) == 1  # stage
    assert len(boxes(dot)) == 3  # stage.0, stage.1–3 folded, pair
    fold = label(dot, "stage.1–3")
    assert "unit ×3" in fold and "peripheries=2" in fold and "3 × 156 = 468 params" in fold
    assert "<b>1–3</b>" in fold  # named inside the cluster titled stage
    assert "conv, bn, relu" in fold and "4×8×8" in fold
    assert "<b>stage</b> · 624 params" in dot


def test_depth_0_closes_groups_and_depth_2_opens_blocks():
    dot0 = render(TOY, depth=0).dot
    assert clusters(dot0) == 0 and len(boxes(dot0)) == 2  # stage, pair
    assert "4 conv, 4 bn, 4 relu" in label(dot0, "stage")
    dot2 = render(TOY, depth=2).dot
    assert clusters(dot2) == 6  # stage, stage.0 .. stage.3, pair
    assert len(boxes(dot2)) == 2  # pair's units 2.0 and 2.1


def test_unroll_draws_every_copy():
    dot = render(TOY, depth=1, unroll=True).dot
    assert len(boxes(dot)) == 5 and "peripheries" not in dot


def test_expand_opens_one_copy_and_splits_its_fold():
    dot = render(TOY, depth=1, expand=["stage.2"]).dot
    assert clusters(dot) == 2
    assert all(label(dot, name) for name in ("stage.0", "stage.1", "stage.3", "2"))
    assert "<b>stage.2</b> unit" in dot


def test_expand_by_glob_and_block_name():
    by_glob = render(TOY, depth=1, expand=["stage.*"]).dot
    assert clusters(by_glob) == 5 and len(boxes(by_glob)) == 1
    by_block = render(TOY, depth=0, expand=["pair"]).dot
    assert clusters(by_block) == 1 and len(boxes(by_block)) == 3  # stage, 2.0, 2.1
    with pytest.raises(OptionError, match="names no block"):
        render(TOY, expand=["nothing"])


def test_folds_take_in_dense_concats_and_edges_show_what_they_are():
    dot = render(DENSE, depth=1).dot
    assert "layer ×4" in label(dot, "block1.layer1–4")
    joins = [a for a in units(dot).values() if "shape=circle" in a]
    assert len(joins) == 2  # the dense block's last concat and the residual add
    assert "∥" in dot and "label=\"+\"" in dot and "xlabel=" in dot  # concat's output shape
    assert re.search(r"-> n\d+ \[color=\"#4393c3\" constraint=false style=dashed\]", dot)  # dense
    assert re.search(r"-> n\d+ \[color=\"#7b3294\" constraint=false style=dashed\]", dot)  # identity skip
    assert re.search(r"-> o1 \[color=\"#555555\" style=dotted\]", dot)  # the tap's output
    assert "aux (training only)" in dot and "dense connection" in dot and "identity / skip" in dot


def test_scale_and_drop_path_label_the_join():
    dot = render("network s() { input x: [4, 4, 4]\n add(scale=[1, 0.2]) { conv(4, 1); {} } }").dot
    assert "scale 1, 0.2" in dot
    dot = render("network m() { input x: [4, 4, 4]\n mean(drop_path=0.15) { conv(4, 1); {} } }").dot
    assert "label=\"μ\"" in dot and "drop 0.15" in dot


def test_title_legend_and_names_with_shapes():
    dot = render(ROOT / "specs" / "resnet50.arch").dot
    assert "<b>resnet50</b>" in dot and "25.6M" in dot and "image 3×224×224" in dot
    assert '<td bgcolor="#3799d1">conv</td>' in dot
    assert "<b>conv1</b> conv 7x7, 64, stride=2<br/>" in dot and "64×112×112 · 9.41K params" in dot


def test_arch_graph_and_rendering_display_in_jupyter():
    graph = archdsl.check(TOY)
    if shutil.which("dot"):
        assert graph._repr_svg_().lstrip().startswith("<?xml")
        assert render(graph)._repr_svg_() == graph._repr_svg_()


# --- the CLI

@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF-"),
                                           (".dot", b"digraph")])
def test_cli_writes_each_format(tmp_path, suffix, magic):
    out = tmp_path / f"toy{suffix}"
    (tmp_path / "toy.arch").write_text(TOY)
    assert main(["render", str(tmp_path / "toy.arch"), "-o", str(out), "--depth", "1", "--rankdir", "LR"]) == 0
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_cli_without_graphviz_writes_the_dot_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    (tmp_path / "toy.arch").write_text(TOY)
    assert main(["render", str(tmp_path / "toy.arch"), "-o", str(tmp_path / "toy.svg")]) == 0
    assert not (tmp_path / "toy.svg").exists()
    assert (tmp_path / "toy.dot").read_text().startswith("digraph")
    err = capsys.readouterr().err
    assert "apt-get install graphviz" in err and len(err.strip().splitlines()) == 1


def test_cli_error_view_marks_the_failed_op(tmp_path, capsys):
    (tmp_path / "bad.arch").write_text(MISMATCH)
    assert main(["render", str(tmp_path / "bad.arch"), "-o", str(tmp_path / "bad.dot")]) == 1
    dot = (tmp_path / "bad.dot").read_text()
    fail = units(dot)["fail"]
    assert 'color="#d7191c"' in fail and "concat inputs differ" in fail and "mix.concat#1" in fail
    assert len(re.findall(r"-> fail \[color=\"#d7191c\"", dot)) == 2  # both inputs, in red
    assert "mix mixer" not in dot and "<b>mix</b> mixer" in dot  # the failing block is open
    assert "error[E044]" in capsys.readouterr().err
    if shutil.which("dot"):
        assert main(["render", str(tmp_path / "bad.arch"), "-o", str(tmp_path / "bad.svg")]) == 1
        ET.fromstring((tmp_path / "bad.svg").read_text())


def test_render_raises_with_the_partial_drawing():
    with pytest.raises(archdsl.ShapeError) as info:
        render(MISMATCH)
    assert "fail" in units(info.value.rendering.dot)


def test_cli_errors_without_a_drawing(tmp_path, capsys):
    (tmp_path / "toy.arch").write_text(TOY)
    assert main(["render", str(tmp_path / "toy.arch"), "-o", str(tmp_path / "toy.jpg")]) == 2
    assert main(["render", str(tmp_path / "toy.arch"), "-o", str(tmp_path / "t.svg"), "--expand", "zzz"]) == 2
    (tmp_path / "typo.arch").write_text("network t() { input x: [3, 8, 8]\n conv(4, 1) -> relux }")
    assert main(["render", str(tmp_path / "typo.arch"), "-o", str(tmp_path / "typo.svg")]) == 1
    assert not (tmp_path / "typo.svg").exists() and not (tmp_path / "typo.dot").exists()
    assert "error[E" in capsys.readouterr().err


def test_render_function_survives_the_module_import():
    import archdsl.draw  # noqa: F401  (importing the stage must not shadow archdsl.render)
    g = archdsl.check("network t() {\n input x: [3, 8, 8]\n relu\n}", text=True)
    assert archdsl.render(g).dot == archdsl.render(g).dot


def test_skip_detection_agrees_with_a_search_from_each_join():
    """The drawing finds skips from ancestor bit sets in one pass (a search per join was cubic in a
    dense block's layers); on every spec it agrees with that search."""
    from archdsl.draw import _Drawing

    def searched(g, v):
        ins = g.args(v)
        floor, seen, todo = min(ins), set(), [max(ins)]
        while todo:
            for u in g.args(todo.pop()):
                if u >= floor and u not in seen:
                    seen.add(u)
                    todo.append(u)
        return seen.intersection(ins)

    for spec in SPECS + [DENSE, TOY]:
        g = archdsl.check(spec)
        drawing = _Drawing(g, None, depth=0, expand=(), unroll=False, rankdir="TB")
        anc = drawing._ancestry()
        joins = [v for v in g.nodes() if len(g.args(v)) > 1]
        assert all(drawing._skips(v, anc) == searched(g, v) for v in joins), spec


@needs_dot
def test_save_takes_a_format_whatever_the_suffix(tmp_path):
    drawing = render(TOY)
    assert drawing.save(tmp_path / "toy.txt", "svg").read_bytes().startswith(b"<?xml")
    assert drawing.save(tmp_path / "toy", "dot").read_text() == drawing.dot
    with pytest.raises(ValueError, match="cannot tell the format"):
        drawing.save(tmp_path / "toy.jpg")
