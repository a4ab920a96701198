"""archdsl in a notebook: a graph shows as its drawing, a summary as an HTML table, and a shape
error carries the drawing of the network up to it. The notebook is executed with nbconvert."""
from __future__ import annotations

import shutil
import sys

import pytest

import archdsl
from archdsl.analyze import HEADERS

from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
preprocessors = pytest.importorskip("nbconvert.preprocessors")

TOY = """
block unit(c) { conv(c, 3, pad=1) -> bn -> relu }
network toy(classes = 10) {
    input image: [3, 16, 16]
    stem: conv(8, 1)
    stage: { unit(8); unit(8) }
    global_avgpool -> flatten -> fc: linear(classes)
}
"""
BAD = """
network bad() {
    input image: [3, 16, 16]
    stem: conv(8, 3)
    mix: concat { conv(4, 3, pad=1); conv(4, 3, stride=2, pad=1) }
}
"""


def test_summary_displays_as_an_html_table():
    s = archdsl.summary(TOY, depth=1)
    html = s._repr_html_()
    assert html.startswith('<div class="archdsl-summary"><table>') and html.count("<tr") == len(s.rows) + 1 + 5
    assert all(f">{h}</th>" in html for h in HEADERS)
    assert ">stage</td>" in html and ">group (6 ops)</td>" in html
    named = archdsl.summary(TOY.replace("stem:", '"<b>&x":'))
    assert "&lt;b&gt;&amp;x" in named._repr_html_() and "<b>&x" not in named._repr_html_()


def test_summary_markdown_has_human_headers_and_numbers():
    md = archdsl.summary(ROOT / "specs" / "resnet18.arch").to_markdown()
    lines = md.splitlines()
    assert lines[0] == "**resnet18** (batch 1, fp32)"
    assert lines[2] == "| name | op | output | parameters | MACs | activations | training only |"
    assert "| conv1 | conv 7x7, 64, stride=2 | 64 x 112 x 112 | 9,408 | 118.01M | 3.2 MB |  |" in lines
    assert "- **parameters**: 11,689,512 (11.69M) + 9,620 buffer elements = 46.8 MB at fp32" in lines
    csv = archdsl.summary(ROOT / "specs" / "resnet18.arch").to_csv().splitlines()   # the machine format stays
    assert csv[0] == "name,op,output,params,macs,activation_bytes,train_only"
    assert "conv1,\"conv 7x7, 64, stride=2\",64 x 112 x 112,9408,118013952,3211264,0" in csv


def test_render_of_a_shape_error_carries_the_drawing():
    with pytest.raises(archdsl.ShapeError) as info:
        archdsl.render(BAD)
    err = info.value
    assert err.drawing is err.rendering and "digraph" in err.drawing.dot and "#d7191c" in err.drawing.dot
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.render("network n() {\n    input image: [3, 8, 8]\n    nosuchop\n}\n")
    assert info.value.drawing is None   # stopped before any op: nothing to draw


def _cell(source: str):
    return nbformat.v4.new_code_cell(source)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_a_notebook_shows_drawings_and_tables(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _cell(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nimport archdsl\nprint(sys.executable)"),
        _cell(f"graph = archdsl.check({TOY!r})\ngraph"),
        _cell("archdsl.summary(graph, depth=1)"),
        _cell(f"try:\n    archdsl.render({BAD!r})\nexcept archdsl.ShapeError as e:\n    error = e\nerror.drawing"),
    ]
    executor = preprocessors.ExecutePreprocessor(timeout=120, kernel_name="python3")
    executor.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    first, drawn, table, failed = (cell.outputs for cell in nb.cells)
    assert first[0]["text"].strip() == sys.executable   # the kernel runs this environment's Python
    svg = drawn[0]["data"]["image/svg+xml"]
    assert svg.lstrip().startswith("<?xml") and "stem" in svg
    html = table[0]["data"]["text/html"]
    assert "<caption" in html and ">parameters</th>" in html and ">stage</td>" in html
    red = failed[0]["data"]["image/svg+xml"]
    assert "#d7191c" in red and "mix" in red
