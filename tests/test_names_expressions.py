"""Names and expressions: quoted, interpolated and integer labels (the one naming rule),
slices, list comprehensions, and `--set`/`--input` values read in the spec's scope."""
from __future__ import annotations

import importlib.util
import re

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.cli import main
from archdsl.errors import ArchError
from archdsl.values import BlockRef, Expr, OpRef
from conftest import code_of


def net(body: str, blocks: str = "", params: str = "", shape: str = "[3, 8, 8]") -> str:
    return f"{blocks}network t({params}) {{\n    input image: {shape}\n{body}\n}}\n"


def error(source, **kwargs) -> ArchError:
    with pytest.raises(ArchError) as info:
        archdsl.check(source, text=True, **kwargs)
    info.value.render()  # rendering never fails either
    return info.value


def where(e: ArchError) -> tuple:
    return e.code, e.span.line, e.span.col


def names(graph) -> list:
    return [graph.node(n)["name"] for n in graph.nodes()]


# ----------------------------------------------------------------------------- labels

LABELLED = net('    "block{0}-{1}": conv(4, 3, pad=1) -> 0: bn -> relu\n'
               '    for i in range(2) { {i + 10}: conv(4, 1) }\n'
               '    let tag = "a b"\n'
               '    "{tag}": { "x-y": conv(2, 1) -> 7: relu }')


def test_quoted_interpolated_and_integer_labels_name_the_ops():
    g = archdsl.check(LABELLED, text=True)
    assert names(g) == ["image", "block0-1", "0", "2", "10", "11", "a b.x-y", "a b.7"]


def test_such_names_are_the_state_dict_keys_and_load_strictly():
    model = archdsl.loads(LABELLED, seed=0)
    keys = list(model.state_dict())
    assert "block0-1.weight" in keys and "0.running_mean" in keys and "a b.x-y.weight" in keys
    assert {k.rsplit(".", 1)[0] for k in keys} == {"block0-1", "0", "10", "11", "a b.x-y"}
    # the same network in torch, named with add_module
    ref = nn.Module()
    ref.add_module("block0-1", nn.Conv2d(3, 4, 3, padding=1))
    ref.add_module("0", nn.BatchNorm2d(4))
    ref.add_module("10", nn.Conv2d(4, 4, 1))
    ref.add_module("11", nn.Conv2d(4, 4, 1))
    inner = nn.ModuleDict()
    inner["x-y"] = nn.Conv2d(4, 2, 1)
    ref.add_module("a b", inner)
    assert sorted(ref.state_dict()) == sorted(keys)
    model.load_state_dict(ref.state_dict(), strict=True)
    ref.eval(), model.eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        y = torch.relu(ref.get_submodule("0")(ref.get_submodule("block0-1")(x)))
        y = ref.get_submodule("11")(ref.get_submodule("10")(y))
        want = torch.relu(inner["x-y"](y))
        assert torch.allclose(model(x), want, atol=1e-6)


def test_the_exported_source_works_with_such_names(tmp_path):
    spec = tmp_path / "labels.arch"
    spec.write_text(LABELLED)
    out = tmp_path / "labels_model.py"
    assert main(["compile", str(spec), "-o", str(out)]) == 0
    loader = importlib.util.spec_from_file_location("labels_model", out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    exported = module.T()
    model = archdsl.loads(LABELLED, seed=0)
    assert list(exported.state_dict()) == list(model.state_dict())
    exported.load_state_dict(model.state_dict(), strict=True)
    exported.eval(), model.eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(exported(x), model(x))


@pytest.mark.parametrize("body, at, message", [
    ('    "": relu', (3, 5), 'label "" is not a valid name: it is empty'),
    ('    "a#b": relu', (3, 5), 'label "a#b" is not a valid name: it contains `#`'),
    ('    x{"a.b"}: relu', (3, 5), 'label "xa.b" is not a valid name: it contains `.`'),
    ('    " a": relu', (3, 5), 'label " a" is not a valid name: it starts or ends with a space'),
    ('    let s = "a\\tb"\n    "{s}": relu', (4, 5), 'label "a\\tb" is not a valid name: it contains the '
                                                      'unprintable character U+0009'),
    ("    layer{1.5}: relu", (3, 11), "a label can interpolate integers and strings, not float 1.5"),
])
def test_a_label_breaking_the_naming_rule_is_e032(body, at, message):
    e = error(net(body))
    assert where(e) == ("E032", *at)
    assert e.message.startswith(message), e.message
    if "interpolate" not in message:
        assert e.hint.startswith("a label is any printable text but `.` and `#`")


@pytest.mark.parametrize("body, at, hint", [
    ("    my-block: conv(8, 3)", (3, 7), 'is quoted: `"my-block":`'),
    ("    conv(8, 3) -> my-block: relu", (3, 21), 'is quoted: `"my-block":`'),
    ("    my block: relu", (3, 8), 'is quoted: `"my block":`'),
    ("    a.b: relu", (3, 6), 'a label cannot contain `.`: it separates the scopes of a module path '
                              '(`stage2.0.conv1`); write `"a_b":`'),
    ('    "a.b": relu', (3, 5), 'a label cannot contain `.`'),
    ('    "a\\tb": relu', (3, 5), "a quoted label takes no escapes"),
])
def test_a_malformed_label_is_e001_saying_how_to_write_it(body, at, hint):
    e = error(net(body))
    assert where(e) == ("E001", *at) and e.message.startswith("unexpected ")
    assert hint in e.hint, e.hint


def test_a_label_colliding_with_a_module_attribute_is_refused_by_compile_only():
    source = net("    training: conv(4, 1)")
    assert names(archdsl.check(source, text=True)) == ["image", "training"]  # a valid label
    with pytest.raises(ArchError) as info:
        archdsl.loads(source)
    assert info.value.code == "E032" and "attribute of torch.nn.Module" in info.value.message


# ----------------------------------------------------------------------------- slices

def value(expr: str, body: str = "", shape: str = "[3, 8, 12]"):
    """The value of ``expr`` in a network (read back from its `meta`)."""
    return archdsl.check(net(f"{body}    meta v = {expr}\n    relu", shape=shape), text=True).meta["v"]


@pytest.mark.parametrize("expr, want", [
    ("[1, 2, 3, 4, 5][1:]", [2, 3, 4, 5]),
    ("[1, 2, 3, 4, 5][:-2]", [1, 2, 3]),
    ("[1, 2, 3, 4, 5][::2]", [1, 3, 5]),
    ("[1, 2, 3, 4, 5][::-1]", [5, 4, 3, 2, 1]),
    ("[1, 2, 3, 4, 5][-2:0:-1]", [4, 3, 2]),
    ("[1, 2, 3, 4, 5][10:]", []),
    ("[1, 2, 3, 4, 5][none:none:none]", [1, 2, 3, 4, 5]),
    ("(1, 2, 3)[1:]", (2, 3)),
    ('"archdsl"[:4]', "arch"),
    ('"archdsl"[::-1]', "lsdhcra"),
    ("in.shape[-2:]", [8, 12]),
    ("in.shape[1:][0]", 8),
    ("list(range(10)[2:8:3])", [2, 5]),
])
def test_slices_follow_python(expr, want):
    assert value(expr) == want


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-9, 9), max_size=6), st.one_of(st.none(), st.integers(-8, 8)),
       st.one_of(st.none(), st.integers(-8, 8)), st.one_of(st.none(), st.integers(-3, 3).filter(bool)))
def test_slices_agree_with_python(xs, start, stop, step):
    text = lambda v: "none" if v is None else str(v)  # noqa: E731
    assert value(f"{xs}[{text(start)}:{text(stop)}:{text(step)}]") == xs[start:stop:step]


@pytest.mark.parametrize("body, at, message", [
    ("    meta v = [1, 2, 3][::0]", (3, 26), "a slice step must not be zero"),
    ("    meta v = [1, 2, 3][1.5:]", (3, 24), "a slice's start must be an integer or none, got float 1.5"),
    ('    meta v = [1, 2, 3][:"a"]', (3, 25), "a slice's stop must be an integer or none, got string"),
    ('    meta v = {"a": 1}[1:]', (3, 14), 'dict {"a": 1} cannot be sliced'),
    ("    meta v = in[1:]", (3, 14), "tensor [3, 8, 8] cannot be sliced"),
])
def test_a_bad_slice_is_a_diagnostic(body, at, message):
    e = error(net(body + "\n    relu"))
    assert (e.code, e.span.line, e.span.col) == ({"zero": "E052"}.get(message.split()[-1], "E054"), *at)
    assert message in e.message, e.message


def test_a_slice_pays_in_proportion_to_its_length():
    spec = "    let xs = [0] * 80000\n{}    relu"  # (about 10,000 steps)
    limits = {"steps": 17_000}
    assert code_of(net(spec.format("")), text=True, limits=limits) == "ok"
    assert code_of(net(spec.format("    let ys = xs[::-2]\n")), text=True, limits=limits) == "ok"  # 40,000 items
    assert code_of(net(spec.format("    let ys = xs[::1]\n")), text=True, limits=limits) == "E087"  # 80,000
    assert code_of(net(spec.format("    let ys = range(10 ** 6)[::1]\n")), text=True, limits=limits) == "ok"


# ----------------------------------------------------------------------------- comprehensions

@pytest.mark.parametrize("expr, want", [
    ("[x * 2 for x in [1, 2, 3]]", [2, 4, 6]),
    ("[x for x in range(10) if x % 3 == 0]", [0, 3, 6, 9]),
    ("[a * b for a, b in zip([1, 2, 3], [4, 5, 6])]", [4, 10, 18]),
    ("[i + v for i, v in enumerate([10, 20])]", [10, 21]),
    ("[[i * j for j in range(3)] for i in range(3)]", [[0, 0, 0], [0, 1, 2], [0, 2, 4]]),
    ("[c for c in 'abc' if c != 'b']", ["a", "c"]),
    ('[k for k in {"x": 1, "y": 2}]', ["x", "y"]),
    ("[d * 2 for d in in.shape[1:]]", [16, 24]),
    ("sum([w for w in [64, 128, 256]])", 448),
    ("[x for x in []]", []),
])
def test_comprehensions(expr, want):
    assert value(expr) == want


def test_loop_names_are_local_to_the_comprehension():
    body = ("    let x = 100\n    let y = [x for x in range(3)]\n    let z = [[x + w for w in y] for x in y]\n"
            "    meta outer = x\n")
    g = archdsl.check(net(body + "    relu"), text=True)
    assert g.meta["outer"] == 100
    assert code_of(net("    let a = [q for q in [1]]\n    meta v = q\n    relu"), text=True) == "E010"


def test_a_comprehension_builds_a_layer_list():
    g = archdsl.check(net("    let widths = [c * 4 for c in [1, 2, 3] if c != 2]\n"
                          "    for c in widths { conv(c, 1) }"), text=True)
    assert [g.node(n)["shape"][0] for n in g.nodes()][1:] == [4, 12]
    assert g.total_params == (3 * 4 + 4) + (4 * 12 + 12)


@pytest.mark.parametrize("body, at, code, message", [
    ("    meta v = [x for x in 5]", (3, 26), "E051", "cannot loop over int 5"),
    ("    meta v = [x for x in conv]", (3, 26), "E051", "cannot loop over op conv"),
    ("    meta v = [a for a, b in [1, 2]]", (3, 29), "E058", "cannot unpack 1 into 2 names (a, b)"),
    ("    meta v = [x for x in [1] if in]", (3, 33), "E051", "is neither true nor false"),
])
def test_a_bad_comprehension_is_a_diagnostic(body, at, code, message):
    e = error(net(body + "\n    relu"))
    assert where(e) == (code, *at)
    assert message in e.message, e.message


def test_a_comprehension_is_bounded():
    each = net("    let xs = [i for i in range(20000)]\n    relu")
    assert code_of(each, text=True, limits={"steps": 10000}) == "E087"  # a step per iteration
    assert code_of(each, text=True, limits={"steps": 100_000}) == "ok"
    e = error(net("    let xs = [i for i in range(20)]\n    relu"), limits={"repeat": 10})
    assert where(e) == ("E084", 3, 26) and "a comprehension of 20 iterations" in e.message
    e = error(net("    let row = list(range(100))\n    let xs = [row for i in range(100)]\n    relu"),
              limits={"sequence": 5000})
    assert e.code == "E057" and e.span.line == 4


# ----------------------------------------------------------------------------- --set and --input

SPEC = """let base = 16
block bottleneck(c) { conv(c, 1) -> relu }
block plain(c) { conv(c, 3, pad=1) }
network n(unit = plain, act = relu, widths = [8], depth = 1, mode = "nearest") {
    input image: [3, 8, 8]
    for w in widths { unit(w) * depth -> act }
    meta mode = mode
}
"""


def test_set_values_are_read_in_the_spec_scope():
    heard = []
    g = archdsl.check(SPEC, unit=Expr("bottleneck", "--set unit"), act=Expr("sigmoid", "--set act"),
                      widths=Expr("[base, 2 * base]", "--set widths"), depth=Expr("2*1", "--set depth"),
                      mode=Expr("bilinear", "--set mode", heard.append))
    assert isinstance(g.params["unit"], BlockRef) and g.params["unit"].block.name == "bottleneck"
    assert g.params["act"] == OpRef("sigmoid")
    assert g.params["widths"] == [16, 32] and g.params["depth"] == 2 and g.meta["mode"] == "bilinear"
    assert [g.node(n)["op"] for n in g.nodes()].count("sigmoid") == 2
    assert g.total_params == (3 * 16 + 16) + (16 * 16 + 16) + (16 * 32 + 32) + (32 * 32 + 32)
    assert heard == ['--set mode=bilinear: `bilinear` names nothing in the spec; passed as the string "bilinear"']


def test_plain_python_values_still_work():
    g = archdsl.check(SPEC, widths=[4, 4], mode="max")
    assert g.params["widths"] == [4, 4] and g.params["mode"] == "max"


def test_a_builtin_is_not_a_bare_word_value():
    heard = []
    g = archdsl.check(SPEC, mode=Expr("max", "--set mode", heard.append))
    assert g.params["mode"] == "max" and len(heard) == 1


@pytest.mark.parametrize("text, at, code, message", [
    ("[64,", (1, 5), "E001", "unexpected end of input"),
    ("2 *", (1, 4), "E001", "unexpected end of input"),
    ("[basee, 3]", (1, 2), "E010", "unknown name `basee`"),
    ("unknown_thing(3)", (1, 1), "E010", "unknown name `unknown_thing`"),
    ("[8][::0]", (1, 7), "E052", "a slice step must not be zero"),
])
def test_a_bad_set_value_is_a_diagnostic_in_its_own_file(text, at, code, message):
    e = error(SPEC, widths=Expr(text, "--set widths"))
    assert where(e) == (code, *at) and e.span.file == "<--set widths>"
    assert message in e.message
    assert "<--set widths>:1:" in e.render() and text in e.render()
    if code == "E010" and "basee" in text:
        assert e.hint == "did you mean `base`?"


def test_a_set_parameter_the_network_does_not_declare_is_e012():
    e = error(SPEC, nope=Expr("[basee", "--set nope"))
    assert where(e) == ("E012", 4, 1) and e.message == "network `n` has no parameter `nope`"


def test_the_cli_reads_set_and_input_in_the_spec_scope(tmp_path, capsys):
    spec = tmp_path / "n.arch"
    spec.write_text(SPEC)
    assert main(["check", "-q", str(spec), "--set", "unit=bottleneck", "--set", "widths=[base]",
                 "--set", "mode=bilinear", "--input", "image=[3, base, base]"]) == 0
    out, err = capsys.readouterr()
    assert "n: 4 ops, 64 parameters" in out and "16 x 16 x 16" in out
    assert err == ('note: --set mode=bilinear: `bilinear` names nothing in the spec; passed as the string '
                   '"bilinear"\n')
    assert main(["check", "-q", str(spec), "--set", "widths=[64,"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"error\[E001\]: unexpected end of input\n  --> <--set widths>:1:5", err), err


def test_set_names_what_the_spec_imports(tmp_path):
    (tmp_path / "lib.arch").write_text("let shared = 12\nblock wide(c) { conv(c * 2, 1) }\n")
    (tmp_path / "main.arch").write_text('import "lib.arch"\n' + SPEC)
    g = archdsl.check(tmp_path / "main.arch", unit=Expr("wide", "--set unit"), widths=Expr("[shared]", "--set widths"))
    assert g.params["widths"] == [12] and g.params["unit"].block.name == "wide"
    assert g.total_params == 3 * 24 + 24


def test_a_bare_word_does_not_hide_an_error_in_the_spec_lets():
    e = error("let bad = nothing_here\n" + SPEC, mode=Expr("foo", "--set mode"))
    assert where(e) == ("E010", 1, 11) and e.message == "unknown name `nothing_here`"
