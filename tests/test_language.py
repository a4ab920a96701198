"""Every construct of the language, elaborated and checked against what it must mean."""
from __future__ import annotations

import os

import pytest

from archdsl.cli import parse_value
from conftest import checked, error_of, names, weight_names


def net(body: str, params: str = "", blocks: str = "", shape: str = "[3, 32, 32]") -> str:
    return f"{blocks}\nnetwork t({params}) {{\n    input image: {shape}\n{body}\n}}\n"


# ----------------------------------------------------------------------------- expressions

@pytest.mark.parametrize("expr, value", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 // 2", 3), ("-7 // 2", -4), ("7 / 2", 3.5), ("7 % 3", 1),
    ("2 ** 10", 1024), ("-2 ** 2", -4), ("2 ** -1", 0.5), ("1_000_000", 1000000), ("1e-3", 0.001), (".5", 0.5),
    ("1 < 2 <= 2", True), ("1 < 2 > 3", False), ("3 == 3.0", True), ("'a' != \"b\"", True),
    ("true and false", False), ("false or 3", 3), ("not 0", True), ("1 if 2 > 1 else 0", 1),
    ("[1, 2] + [3]", [1, 2, 3]), ("(1, 2)", (1, 2)), ("(1,)", (1,)), ("()", ()), ("{'a': 1}['a']", 1),
    ("[10, 20, 30][-1]", 30), ("len([1, 2, 3])", 3), ("min(3, 1, 2)", 1), ("max([3, 1, 2])", 3),
    ("int(3.9)", 3), ("round(2.5)", 2), ("round(3.14159, 2)", 3.14), ("abs(-4)", 4), ("sum([1, 2, 3])", 6),
    ("float(2)", 2.0), ("list(range(3))", [0, 1, 2]), ("list(range(1, 10, 4))", [1, 5, 9]),
    ("enumerate([5, 6])", [(0, 5), (1, 6)]), ("enumerate([5], start=1)", [(1, 5)]),
    ("zip([1, 2], [3, 4])", [(1, 3), (2, 4)]), ("'ab' * 2", "abab"), ("[0] * 3", [0, 0, 0]),
    ("none", None), ("true", True),
])
def test_expressions(expr, value):
    assert parse_value(expr, "test") == value


def test_no_python_escape_hatches():
    for expr in ("__import__('os')", "open('x')", "eval('1')", "().__class__"):
        with pytest.raises(Exception) as info:
            parse_value(expr, "test")
        assert type(info.value).__name__ in ("ElaborationError", "ParseError")


# ----------------------------------------------------------------------------- networks, params, inputs

SMALL = net("    conv(16, 3, pad=1) -> relu\n    global_avgpool -> flatten\n    fc: linear(classes)",
            params="classes = 10, size = 32").replace("[3, 32, 32]", "[3, size, size]")


def test_network_params_and_overrides():
    g = checked(SMALL)
    assert g.node(g.outputs[0].node)["shape"] == (10,)
    assert g.params == {"classes": 10, "size": 32}
    g = checked(SMALL, classes=7, size=64)
    assert g.node(g.outputs[0].node)["shape"] == (7,)
    assert g.node(g.inputs["image"])["shape"] == (3, 64, 64)


def test_input_override():
    g = checked(SMALL, inputs={"image": [1, 20, 20]})
    assert g.node(g.by_name("0"))["shape"] == (16, 20, 20)


def test_several_inputs_and_outputs():
    g = checked("""network two() {
        input a: [3, 8, 8]
        x = conv(4, 1)
        input b: [5, 8, 8]
        y = conv(4, 1)
        s = add { @x; @y }
        output s, x
    }""")
    assert list(g.inputs) == ["a", "b"]
    assert [o.name for o in g.outputs] == ["s", "x"]
    assert g.node(g.outputs[0].node)["op"] == "add"


# ----------------------------------------------------------------------------- blocks

def test_block_call_defaults_and_keywords():
    g = checked(net("    b(8)\n    b(4, k=1)", blocks="block b(c, k = 3) { conv(c, k, pad=k // 2) }"))
    assert [g.node(n)["shape"][0] for n in g.nodes()][1:] == [8, 4]
    assert names(g)[1:] == ["0.0", "1.0"]


def test_default_may_use_earlier_parameter():
    g = checked(net("    b(12)", blocks="block b(c, mid = c // 4) { conv(mid, 1) -> conv(c, 1) }"))
    assert [g.node(n)["shape"][0] for n in g.nodes()][1:] == [3, 12]


def test_recursive_block():
    blocks = """block tower(c, n) {
        if n > 0 { conv(c, 3, pad=1) -> tower(c, n - 1) }
    }"""
    g = checked(net("    tower(8, 4)", blocks=blocks))
    assert sum(g.node(n)["op"] == "conv" for n in g.nodes()) == 4


def test_higher_order_block_and_partial_application():
    blocks = """
    block plain(c, stride = 1) { conv(c, 3, stride=stride, pad=1) -> relu }
    block grouped(c, stride = 1, groups = 1) { conv(c, 3, stride=stride, pad=1, groups=groups) }
    block stage(unit, n, c) { unit(c, stride=2); unit(c) * (n - 1) }"""
    g = checked(net("    a: stage(plain, 2, 16)\n    b: stage(grouped(groups=4), 2, 32)", blocks=blocks))
    convs = [g.node(n) for n in g.nodes() if g.node(n)["op"] == "conv"]
    assert [c["attrs"]["groups"] for c in convs] == [1, 1, 4, 4]
    assert [c["shape"] for c in convs][-1] == (32, 8, 8)
    assert "b.1.0" in names(g)


def test_ops_are_values_too():
    g = checked(net("    let act = leaky_relu(slope=0.2)\n    conv(4, 1) -> act"))
    assert g.node(g.outputs[0].node)["attrs"]["slope"] == 0.2


# ----------------------------------------------------------------------------- statements

def test_let_sequence_chain_and_semicolons():
    g = checked(net("    let c = 4 * 2; conv(c, 1) -> relu; conv(c * 2, 1)"))
    assert [g.node(n)["shape"][0] for n in g.nodes()] == [3, 8, 8, 16]


def test_multiline_chain_and_arguments():
    g = checked(net("    conv(8, 3,\n         pad=1)\n        -> relu ->\n        conv(4, 1)"))
    assert [g.node(n)["op"] for n in g.nodes()] == ["input", "conv", "relu", "conv"]


def test_repetition_expands_in_place_and_labelled_repetition_opens_scope():
    g = checked(net("    conv(4, 1) * 3\n    blocks: conv(4, 1) * 2"))
    assert names(g)[1:] == ["0", "1", "2", "blocks.0", "blocks.1"]


def test_repetition_zero_is_identity():
    g = checked(net("    conv(4, 1) * 0\n    relu"))
    assert [g.node(n)["op"] for n in g.nodes()] == ["input", "relu"]


def test_for_loop_with_index_and_interpolated_labels():
    g = checked(net("    for i, c in enumerate([8, 16]) { layer{i+1}: conv(c, 3, stride=2, pad=1) }"))
    assert names(g)[1:] == ["layer1", "layer2"]
    assert g.node(g.by_name("layer2"))["shape"] == (16, 8, 8)


def test_if_else_on_params_and_on_input_shape():
    blocks = """block fit(c) {
        if in.c == c { identity } else if in.c > c { conv(c, 1) } else { conv(c, 3, pad=1) }
    }"""
    g = checked(net("    fit(3)\n    fit(1)\n    fit(5)", blocks=blocks))
    assert [g.node(n)["op"] for n in g.nodes()] == ["input", "identity", "conv", "conv"]
    assert [g.node(n)["attrs"].get("kernel") for n in g.nodes()][2:] == [1, 3]


def test_in_is_the_tensor_entering_the_statement():
    g = checked(net("    conv(16, 1) -> conv(in.c * 2, 1)"))
    assert g.node(g.outputs[0].node)["shape"][0] == 6


def test_tensor_attributes():
    g = checked(net("    assert in.c == 3 and in.h == 32 and in.w == 32 and in.shape == [3, 32, 32]\n"
                    "    assert in.dims == 3 and in.numel == 3072\n    relu"))
    assert len(g) == 2


def test_assert_passes_and_fails_with_values():
    e = error_of(net("    conv(8, 3)\n    assert in.shape == [8, 32, 32], \"stem keeps size\""))
    assert e.code == "E060" and "stem keeps size" in e.message
    assert "left: [8, 30, 30]" in e.notes and (e.span.line, e.span.col) == (5, 12)


def test_params_so_far():
    g = checked(net("    conv(8, 1)\n    assert params == 32"))
    assert g.total_params == 32


def test_meta_and_init_rules():
    g = checked(net('    meta top1 = 76.1\n    meta paper = "x"\n    init conv = kaiming_normal(mode="fan_out")\n'
                    '    init "*.bn3" = zeros\n    conv(4, 1)'))
    assert g.meta == {"top1": 76.1, "paper": "x"}
    assert [(r.target, r.scheme, r.kwargs["mode"] if "mode" in r.kwargs else None) for r in g.init] == [
        ("conv", "kaiming_normal", "fan_out"), ("*.bn3", "zeros", None)]


# ----------------------------------------------------------------------------- joins

def test_concat_of_branches():
    g = checked(net("    concat { conv(8, 1); { conv(4, 1) -> conv(6, 3, pad=1) }; maxpool(3, stride=1, pad=1) }"))
    out = g.node(g.outputs[0].node)
    assert out["op"] == "concat" and out["shape"] == (17, 32, 32)
    assert len(g.args(g.outputs[0].node)) == 3


def test_add_empty_branch_is_identity_and_scale():
    g = checked(net("    add(scale=[0.2, 1]) { conv(3, 3, pad=1); {} }"))
    n = g.outputs[0].node
    assert g.node(n)["attrs"]["scale"] == (0.2, 1.0)
    assert g.args(n)[1] == g.inputs["image"]


def test_if_without_arm_is_identity_branch():
    g = checked(net("    add { conv(3, 1); if false { conv(3, 1) } }"))
    assert g.args(g.outputs[0].node)[1] == g.inputs["image"]


def test_for_in_join_gives_one_branch_per_iteration():
    g = checked(net("    concat { for k in [1, 3, 5] { conv(4, k, pad=k // 2) } }"))
    assert g.node(g.outputs[0].node)["shape"] == (12, 32, 32)


def test_residual_sugar_and_survival():
    g = checked(net("    residual(survival=0.8) { conv(3, 3, pad=1) -> relu }"))
    n = g.outputs[0].node
    d = g.node(n)
    assert d["op"] == "add" and d["attrs"]["survival"] == (0.8, 1.0)
    assert g.args(n)[1] == g.inputs["image"]


def test_mul_broadcasts_for_gating():
    g = checked(net("    let c = in.c\n    mul { {}; { global_avgpool -> conv(c, 1) -> sigmoid } }"))
    assert g.node(g.outputs[0].node)["shape"] == (3, 32, 32)


def test_mean_join_and_fractal_merge():
    blocks = """block fractal(c, cols) {
        if cols == 1 { conv(c, 3, pad=1) }
        else { mean(drop_path = 0.15) { conv(c, 3, pad=1); fractal(c, cols - 1) -> fractal(c, cols - 1) } }
    }"""
    for cols in (2, 3, 4):
        g = checked(net(f"    fractal(8, {cols})", blocks=blocks))
        last = g.outputs[0].node
        assert g.node(last)["op"] == "mean" and len(g.args(last)) == cols
        assert g.node(last)["attrs"]["drop_path"] == 0.15
        assert sum(g.node(n)["op"] == "conv" for n in g.nodes()) == 2 ** cols - 1


def test_dense_connectivity():
    blocks = "block layer(k) { bn -> relu -> conv(k, 3, pad=1) }"
    g = checked(net("    block1: dense { for j in range(3) { l{j+1}: layer(4) } }", blocks=blocks))
    widths = [g.node(n)["shape"][0] for n in g.nodes() if g.node(n)["op"] == "concat"]
    assert widths == [7, 11, 15]  # each layer sees the input and all earlier outputs; the block outputs all
    assert g.node(g.by_name("block1.l3.0"))["shape"][0] == 11


def test_named_tensors_and_long_skip():
    g = checked(net("    enc = conv(8, 3, pad=1)\n    maxpool(2) -> conv(8, 3, pad=1) -> upsample(scale=2)\n"
                    "    concat { {}; @enc }"))
    n = g.outputs[0].node
    assert g.node(n)["shape"] == (16, 32, 32)
    assert g.node(g.args(n)[1])["name"] == "0"


def test_taps_become_outputs_training_only_by_flag():
    g = checked(net("    conv(8, 1)\n    aux: tap(train_only=true) { global_avgpool -> flatten -> linear(2) }\n"
                    "    side: tap { global_avgpool -> flatten }\n    main = global_avgpool -> flatten -> linear(5)"))
    assert [(o.name, o.train_only) for o in g.outputs] == [("out", False), ("aux", True), ("side", False)]
    assert g.node(g.by_name("aux.2"))["tap"] == "aux"
    assert g.node(g.outputs[0].node)["shape"] == (5,)


# ----------------------------------------------------------------------------- naming

def test_naming_reproduces_torchvision_resnet_paths():
    g = checked(os.path.join(os.path.dirname(__file__), "..", "specs", "resnet50.arch"))
    ws = weight_names(g)
    for path in ("conv1", "bn1", "layer1.0.conv1", "layer1.0.downsample.0", "layer1.0.downsample.1",
                 "layer4.2.bn3", "fc"):
        assert path in ws
    assert "layer1.1.downsample.0" not in ws


def test_naming_densenet_paths():
    blocks = """block dense_layer(k) { norm1: bn -> relu1: relu -> conv1: conv(4 * k, 1, bias=false)
                                   norm2: bn -> relu2: relu -> conv2: conv(k, 3, pad=1, bias=false) }"""
    g = checked(net("    features: {\n conv0: conv(64, 7, stride=2, pad=3, bias=false) -> norm0: bn\n"
                    "  denseblock1: dense { for j in range(2) { denselayer{j+1}: dense_layer(32) } } }",
                    blocks=blocks))
    assert "features.denseblock1.denselayer1.norm1" in weight_names(g)
    assert "features.denseblock1.denselayer2.conv2" in weight_names(g)


def test_naming_inception_paths():
    blocks = """block basic(c, k, pad = 0) { conv: conv(c, k, pad=pad, bias=false) -> bn: bn(eps=0.001) -> relu }
    block inception(c1, c3r, c3) { concat { branch1: basic(c1, 1); branch2: { basic(c3r, 1); basic(c3, 3, pad=1) } } }"""
    g = checked(net("    inception3a: inception(64, 96, 128)", blocks=blocks))
    ws = weight_names(g)
    assert "inception3a.branch2.1.conv" in ws and "inception3a.branch1.bn" in ws


def test_naming_squeezenet_paths():
    blocks = """block fire(s, e1, e3) {
        squeeze: conv(s, 1) -> squeeze_activation: relu
        concat { expand1x1: conv(e1, 1) -> expand1x1_activation: relu
                 expand3x3: conv(e3, 3, pad=1) -> expand3x3_activation: relu } }"""
    g = checked(net("    features: { conv(96, 7, stride=2) -> relu -> maxpool(3, stride=2, ceil=true); fire(16, 64, 64) }",
                    blocks=blocks, shape="[3, 224, 224]"))
    assert "features.3.expand1x1" in weight_names(g)
    assert g.node(g.by_name("features.2"))["shape"] == (96, 54, 54)


def test_internal_join_names_do_not_take_positions():
    g = checked(net("    add { conv(3, 1); {} } -> conv(4, 1)"))
    assert names(g) == ["image", "0", "add#1", "1"]


# ----------------------------------------------------------------------------- imports

def test_import_relative_library(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.arch").write_text('import "more.arch"\nblock unit(c) { inner(c) -> relu }\n')
    (tmp_path / "lib" / "more.arch").write_text("block inner(c) { conv(c, 3, pad=1) }\n")
    (tmp_path / "main.arch").write_text('import "lib/blocks.arch"\n' + net("    unit(8)"))
    g = checked(tmp_path / "main.arch")
    assert [g.node(n)["op"] for n in g.nodes()] == ["input", "conv", "relu"]


def test_import_cycle(tmp_path):
    (tmp_path / "a.arch").write_text('import "b.arch"\n')
    (tmp_path / "b.arch").write_text('import "a.arch"\n')
    (tmp_path / "main.arch").write_text('import "a.arch"\n' + net("    relu"))
    e = error_of(tmp_path / "main.arch")
    assert e.code == "E072" and "a.arch -> b.arch -> a.arch" in e.message


def test_import_escape_refused(tmp_path):
    (tmp_path / "outside.arch").write_text("block x() { relu }\n")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "main.arch").write_text('import "../outside.arch"\n' + net("    relu"))
    e = error_of(tmp_path / "proj" / "main.arch")
    assert e.code == "E071"
    (tmp_path / "proj" / "link.arch").symlink_to(tmp_path / "outside.arch")
    (tmp_path / "proj" / "main.arch").write_text('import "link.arch"\n' + net("    relu"))
    assert error_of(tmp_path / "proj" / "main.arch").code == "E071"
    assert checked(tmp_path / "proj" / "main.arch", roots=[tmp_path]) is not None


def test_several_networks_pick_by_name():
    text = "network a() { input x: [1, 4, 4]; relu }\nnetwork b() { input x: [1, 4, 4]; conv(2, 1) }"
    assert checked(text).network == "b"
    assert checked(text, network="a").network == "a"


def test_ir_keeps_spans_stacks_scopes_and_repeat_groups():
    g = checked(net("    s: { b(4) * 3 }", blocks="block b(c) {\n  conv(c, 1)\n}"))
    conv = g.node(g.by_name("s.2.0"))
    assert (conv["span"].line, conv["span"].col) == (2, 3)
    assert [f.block for f in conv["stack"]] == ["b"] and conv["stack"][0].span.line == 6
    chain = g.scope_chain(conv["scope"])
    assert [s.kind for s in chain] == ["network", "group", "block"]
    assert chain[-1].repeat[1:] == (2, 3) and chain[-1].block == "b" and chain[-1].args == {"c": 4}


def test_library_lets_are_visible_to_its_blocks_and_importers(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "l.arch").write_text('let widths = {"A": 8}\nblock b(k) { conv(widths[k], 3) }\n')
    (tmp_path / "n.arch").write_text('import "lib/l.arch"\n' + net('    b("A")\n    conv(widths["A"] * 2, 1)'))
    g = checked(tmp_path / "n.arch")
    assert [g.node(n)["shape"][0] for n in g.nodes()] == [3, 8, 16]


def test_reserved_word_as_name():
    e = error_of(net("    b()", blocks="block b(init = 4) { relu }"))
    assert e.code == "E001" and e.message == "`init` is a reserved word" and (e.span.line, e.span.col) == (1, 9)


def test_empty_text_is_a_spec_without_network():
    assert error_of("", text=True).code == "E014"
    assert error_of("\n").code == "E014"
    assert error_of("").code == "E070"  # a string without a newline is a path (issue 10, item 19)
