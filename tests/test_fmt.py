"""`archdsl fmt`: the canonical layout is kept by every spec and doc example, is idempotent,
never changes what a spec means (the elaborated IR is the same at any line length), keeps
every comment where it belongs, and behaves as a formatter's command line should."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archgen
from archdsl.cli import main
from archdsl.errors import ParseError
from archdsl.fmt import format_markdown, format_source
from archdsl.syntax import tokens
from conftest import checked

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ARCH_FILES = sorted([*SPECS.rglob("*.arch"), *(ROOT / "examples").rglob("*.arch"), *(ROOT / "docs").rglob("*.arch")])
PAGES = sorted([ROOT / "README.md", *(p for p in (ROOT / "docs").glob("*.md") if p.name != "errors.md")])
NETWORKS = sorted(SPECS.glob("*.arch"))


def ir(graph) -> tuple:
    """What a spec means, spans aside: every node's name, op, attributes, shape and inputs, the
    inputs and outputs, the scopes and the init rules."""
    nodes = [(d["name"], d["op"], repr(d["attrs"]), tuple(d["shape"]), tuple(graph.args(n)))
             for n, d in ((n, graph.node(n)) for n in graph.nodes())]
    outputs = [(o.name, o.node, o.train_only) for o in graph.outputs]
    return nodes, dict(graph.inputs), outputs, repr(graph.init_rules) if hasattr(graph, "init_rules") else None


def test_every_spec_and_doc_example_is_formatted():
    """`archdsl fmt --check` over the zoo, its libraries, the examples and the docs' ```arch blocks."""
    assert main(["fmt", "--check", *map(str, ARCH_FILES + PAGES)]) == 0


def test_the_token_stream_is_lossless():
    for path in ARCH_FILES:
        text = path.read_text()
        assert "".join(tokens(text)) == text, path.name


@pytest.mark.parametrize("path", NETWORKS, ids=[p.stem for p in NETWORKS])
def test_formatting_keeps_the_ir_at_any_width(path):
    text = path.read_text()
    expected = ir(checked(text, base=str(SPECS)))
    for width in (40, 200):
        out = format_source(text, line_length=width)
        assert format_source(out, line_length=width) == out, f"not idempotent at {width}"
        assert ir(checked(out, base=str(SPECS))) == expected, f"the IR changed at {width}"
        if width == 40:
            assert max(len(line) for line in out.splitlines() if "#" not in line and '"' not in line) <= 100


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(spec=archgen.specs(max_ops=25), width=st.integers(24, 140))
def test_generated_specs_keep_their_ir(spec, width):
    out = format_source(spec.text, line_length=width)
    assert format_source(out, line_length=width) == out
    assert ir(checked(out)) == ir(checked(spec.text))


MESSY = '''\
# header

import "std/resnet.arch"   # the blocks
block  unit( c ,k=3 ) {   # a unit
    # the conv
    conv( c, k, pad = k//2 ) -> bn -> relu   # tail
}
network n(classes=10){
  input image : [3,32,32]
  stem: unit(16) -> unit(32); x = { }


  let xs = [1, 2, 3,]   # magic
  let d = {'a': -xs[0], "b": xs[1:]}
  head: global_avgpool -> flatten -> fc: linear(classes, bias=  true)  # the classifier
  # trailing own-line
}
# end
'''

TIDY = '''\
# header

import "std/resnet.arch"  # the blocks
block unit(c, k = 3) {    # a unit
    # the conv
    conv(c, k, pad=k // 2) -> bn -> relu  # tail
}
network n(classes = 10) {
    input image: [3, 32, 32]
    stem: unit(16) -> unit(32)
    x = {}

    let xs = [
        1,
        2,
        3,
    ]  # magic
    let d = {"a": -xs[0], "b": xs[1:]}
    head: global_avgpool -> flatten -> fc: linear(classes, bias=true)  # the classifier
    # trailing own-line
}
# end
'''


def test_comments_stay_where_they_belong():
    assert format_source(MESSY) == TIDY
    assert format_source(TIDY) == TIDY
    comments = re.findall(r"#[^\n]*", MESSY)
    assert re.findall(r"#[^\n]*", format_source(MESSY, line_length=30)) == comments


@pytest.mark.parametrize("source,expected", [
    # spacing: operators, unary signs, `**` between simple operands, keyword arguments, slices
    ("let a = -1+2*x**2-(y)**2\n", "let a = -1 + 2 * x**2 - (y) ** 2\n"),
    ("let s = xs[1:-1][::2]\n", "let s = xs[1:-1][::2]\n"),
    ("let t = ( 1, )\n", "let t = (1,)\n"),
    ("let c = [i*2 for i,j in zip(a,b) if i>0]\n", "let c = [i * 2 for i, j in zip(a, b) if i > 0]\n"),
    ("let v = a if not b else in.shape[1]\n", "let v = a if not b else in.shape[1]\n"),
    # bodies: one line where written so, one statement per line otherwise, a network's always
    ("block b(c){ conv(c,3) ; relu }\n", "block b(c) { conv(c, 3); relu }\n"),
    ("block b(c){\nconv(c,3) ; relu }\n", "block b(c) {\n    conv(c, 3)\n    relu\n}\n"),
    ("network n() { input x: [3, 8, 8]; relu }\n", "network n() {\n    input x: [3, 8, 8]\n    relu\n}\n"),
    ("block b() { if x {relu}\nelse {gelu} }\n", "block b() { if x { relu } else { gelu } }\n"),
    ("block b() { out: tap(train_only=true) @x -> add { {}; relu } * 2 }\n",
     "block b() { out: tap(train_only=true) @x -> add { {}; relu } * 2 }\n"),
    ("block b() { output {a,b} }\n", "block b() { output {a, b} }\n"),
    # a chain past the width breaks before the `->` that passes it, and hangs
    ("block b() {\n    conv(64, 3) -> bn -> relu -> conv(64, 3) -> bn -> relu\n}\n",
     "block b() {\n    conv(64, 3) -> bn -> relu\n        -> conv(64, 3) -> bn -> relu\n}\n"),
    # brackets: the contents on a line of their own, then one per line with a trailing comma
    ("let xs = [100000, 200000, 300000, 400000]\n", "let xs = [\n    100000, 200000, 300000, 400000\n]\n"),
    ("let xs = [1000000000, 2000000000, 3000000000, 4000000000]\n",
     "let xs = [\n    1000000000,\n    2000000000,\n    3000000000,\n    4000000000,\n]\n"),
    # strings: double quotes where that needs no escape
    ("let a = 'x'\nlet b = 'say \"hi\"'\n", "let a = \"x\"\nlet b = 'say \"hi\"'\n"),
])
def test_layout_rules(source, expected):
    width = 40 if "\n    conv(64, 3) -> bn" in source or "00000" in source else 120
    assert format_source(source, line_length=width) == expected
    assert format_source(expected, line_length=width) == expected


def test_a_spec_that_does_not_parse_is_refused():
    with pytest.raises(ParseError) as e:
        format_source("network n() {\n    conv(8 -> relu\n}\n", file="bad.arch")
    assert e.value.code == "E001" and e.value.span.line == 2


def test_markdown_blocks_are_formatted_and_broken_ones_left_alone():
    page = "Text\n\n```arch\nlet a=1\n```\n\n```arch\nlet = oops\n```\n\n```python\nx=1\n```\n"
    assert format_markdown(page) == page.replace("let a=1", "let a = 1")


def test_the_command_line(tmp_path, capsys, monkeypatch):
    messy, tidy = tmp_path / "messy.arch", tmp_path / "sub" / "tidy.arch"
    tidy.parent.mkdir()
    messy.write_text("let a=1\n")
    tidy.write_text("let a = 1\n")
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"would reformat {messy}" in err and "1 file would be reformatted, 1 left unchanged" in err
    assert main(["fmt", "--diff", str(messy)]) == 1
    out = capsys.readouterr().out
    assert "-let a=1\n+let a = 1\n" in out and messy.read_text() == "let a=1\n"
    assert main(["fmt", str(tmp_path)]) == 0
    assert messy.read_text() == "let a = 1\n" and "1 file reformatted" in capsys.readouterr().err
    assert main(["fmt", "--check", str(tmp_path)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("let   b = [1,2]\n"))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == "let b = [1, 2]\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("let xs = [1, 2, 3, 4, 5, 6]\n"))
    assert main(["fmt", "--line-length", "20", "-"]) == 0
    assert capsys.readouterr().out == "let xs = [\n    1, 2, 3, 4, 5, 6\n]\n"
    (tmp_path / "bad.arch").write_text("let = 1\n")
    assert main(["fmt", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error[E001]" in err and "bad.arch:1:5" in err and "let = 1" in err and "1 not formatted" in err
    (tmp_path / "bad.arch").write_bytes(b'let a = "\xff"\n')
    assert main(["fmt", str(tmp_path / "bad.arch")]) == 1
    err = capsys.readouterr().err
    assert "error[E003]: invalid UTF-8 at byte 9" in err and "bad.arch:1:10" in err
    assert main(["fmt", str(tmp_path / "missing.arch")]) == 2
    assert "missing.arch: no such file or folder" in capsys.readouterr().err
    assert main(["fmt", "--line-length", "5", str(tmp_path)]) == 2
    assert "--line-length must be at least 20" in capsys.readouterr().err


def test_the_deepest_spec_the_parser_takes_is_formatted():
    """200 levels of brackets or bodies (the nesting limit): the layout's recursion fits."""
    deep_list = "let x = " + "[" * 200 + "]" * 200 + "\n"
    assert format_source(format_source(deep_list)) == format_source(deep_list)
    deep_body = "block b() " + "{ " * 199 + "relu" + " }" * 199 + "\n"
    out = format_source(deep_body)
    assert len(out.splitlines()) == 399 and out.splitlines()[199].strip() == "relu"
