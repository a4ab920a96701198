"""Split joins, inline blocks and conditional joins: elaborated, compiled and checked against
torch modules written here."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import archdsl
from conftest import checked, error_of, names, weight_names


def net(body: str, shape: str = "[7, 6, 6]", blocks: str = "") -> str:
    return f"{blocks}\nnetwork t() {{\n    input image: {shape}\n{body}\n}}\n"


def model(source: str, **kwargs) -> nn.Module:
    return archdsl.loads(source, seed=0, **kwargs).eval()


def same_as(ours: nn.Module, theirs: nn.Module, shape) -> None:
    """Their state dict loads strictly into ours (so the keys are the same) and both compute the same."""
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    theirs.eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


def seq(**mods) -> nn.Module:
    m = nn.Module()
    for k, v in mods.items():
        m.add_module(k.lstrip("_"), v)
    return m


# ----------------------------------------------------------------------------- split joins

def test_split_seven_channels_into_three_and_four():
    src = net("    concat(split=[3, 4]) { conv(5, 3, pad=1); { conv(4, 1) -> relu } }")
    g = checked(src)
    assert [g.node(n)["shape"][0] for n in g.nodes() if g.node(n)["op"] == "narrow"] == [3, 4]
    assert g.node(g.outputs[0].node)["shape"] == (9, 6, 6)
    ref = seq(_0=nn.Conv2d(3, 5, 3, padding=1), _1=nn.Conv2d(4, 4, 1))
    ref.forward = lambda x: torch.cat([ref.get_submodule("0")(x[:, :3]),
                                       torch.relu(ref.get_submodule("1")(x[:, 3:]))], 1)
    same_as(model(src), ref, (7, 6, 6))


def test_equal_split_of_six_into_three_and_the_parts_are_views():
    src = net("    conv(6, 1)\n    add(split=true) { {}; conv(2, 1); bn }", shape="[3, 5, 5]")
    g = checked(src)
    assert names(g) == ["image", "0", "narrow#1", "narrow#2", "1", "narrow#3", "2", "add#1"]
    assert weight_names(g) == ["0", "1", "2"]  # the parts have no modules
    ref = seq(_0=nn.Conv2d(3, 6, 1), _1=nn.Conv2d(2, 2, 1), _2=nn.BatchNorm2d(2))
    with torch.no_grad():
        ref.get_submodule("2").running_mean.uniform_(-1, 1)

    def forward(x):
        a, b, c = ref.get_submodule("0")(x).chunk(3, 1)
        return a + ref.get_submodule("1")(b) + ref.get_submodule("2")(c)
    ref.forward = forward
    m = model(src)
    assert m.code.count(".narrow(1, ") == 3
    same_as(m, ref, (3, 5, 5))


def test_split_along_a_given_dim_counts_from_the_end():
    src = net("    concat(split=[3, 4], split_dim=-1, dim=-1) { {}; relu }", shape="[2, 5, 7]")
    assert checked(src).node(1)["attrs"] == {"dim": -1, "start": 0, "length": 3}
    m = model(src)
    x = torch.randn(1, 2, 5, 7)
    before = x.clone()
    torch.testing.assert_close(m(x), torch.cat([x[..., :3], torch.relu(x[..., 3:])], -1))
    assert torch.equal(x, before)  # no op wrote into the input through its view


def test_split_of_a_loop_gives_each_iteration_its_part_and_its_values():
    src = net("    concat(split=[1, 2, 4]) { for k in [1, 3, 5] { conv(2, k, pad=k // 2) } }")
    g = checked(src)
    convs = [g.node(n) for n in g.nodes() if g.node(n)["op"] == "conv"]
    assert [(d["attrs"]["kernel"], d["params"]) for d in convs] == [(1, 1 * 2 + 2), (3, 2 * 9 * 2 + 2),
                                                                     (5, 4 * 25 * 2 + 2)]
    ref = seq(_0=nn.Conv2d(1, 2, 1), _1=nn.Conv2d(2, 2, 3, padding=1), _2=nn.Conv2d(4, 2, 5, padding=2))
    ref.forward = lambda x: torch.cat([ref.get_submodule(str(i))(p) for i, p in enumerate(x.split([1, 2, 4], 1))], 1)
    same_as(model(src), ref, (7, 6, 6))


CSP = """
block partial(out) {
    let half = in.c // 2
    concat(split=[in.c - half, half]) { {}; { conv(half, 3, pad=1, bias=false) -> bn -> relu } }
    transition: conv(out, 1)
}
"""


def test_cross_stage_partial_unit_needs_no_extra_weights():
    src = net("    stage: partial(8)", shape="[7, 6, 6]", blocks=CSP)
    g = checked(src)
    assert weight_names(g) == ["stage.0", "stage.1", "stage.transition"]
    assert g.total_params == 3 * 9 * 3 + 2 * 3 + 7 * 8 + 8

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.stage = seq(_0=nn.Conv2d(3, 3, 3, padding=1, bias=False), _1=nn.BatchNorm2d(3),
                             transition=nn.Conv2d(7, 8, 1))

        def forward(self, x):
            keep, work = x.split([4, 3], 1)
            s = self.stage
            work = torch.relu(s.get_submodule("1")(s.get_submodule("0")(work)))
            return s.transition(torch.cat([keep, work], 1))
    same_as(model(src), Ref(), (7, 6, 6))


def test_fused_qkv_splits_into_sdpa():
    m = model(net("    qkv: linear(24, dim=-1)\n    sdpa(split=true, split_dim=-1) { {}; {}; {} }", shape="[5, 8]"))
    x = torch.randn(1, 5, 8)
    q, k, v = m.qkv(x).split(8, -1)
    with torch.no_grad():
        torch.testing.assert_close(m(x), torch.nn.functional.scaled_dot_product_attention(q, k, v))


def test_split_false_is_no_split():
    g = checked(net("    concat(split=false) { {}; conv(2, 1) }"))
    assert g.node(g.outputs[0].node)["shape"] == (9, 6, 6)


# ----------------------------------------------------------------------------- inline blocks

CBR = "inline block cbr(c, stride = 1) { conv(c, 3, stride=stride, pad=1, bias=false) -> bn -> relu }\n"


def test_inline_block_keeps_a_flat_sequential_numbering():
    src = net("    features: { cbr(8, stride=2); cbr(16); maxpool(2); cbr(4) }", shape="[3, 16, 16]", blocks=CBR)
    g = checked(src)
    assert names(g)[1:] == [f"features.{i}" for i in range(10)]
    assert [g.node(g.by_name(f"features.{i}"))["op"] for i in (0, 1, 3, 6, 7)] == ["conv", "bn", "conv", "maxpool",
                                                                                    "conv"]
    assert [s.kind for s in g.scopes.values()] == ["network", "group"]  # no scope of its own

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())

        def forward(self, x):
            return self.features(x)
    ref = Ref()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 2)
    same_as(model(src), ref, (3, 16, 16))


def test_inline_block_variables_stay_inside_and_a_labelled_call_opens_a_scope():
    blocks = "inline block two(c) { let inner = c\n conv(c, 1) -> relu }\n"
    assert error_of(net("    two(4)\n    conv(inner, 1)", blocks=blocks)).code == "E010"
    g = checked(net("    relu\n    two(4)\n    stem: two(2)\n    two(3)", blocks=blocks))
    assert names(g)[1:] == ["0", "1", "2", "stem.0", "stem.1", "4", "5"]
    assert g.scopes[1].name == "stem" and g.scopes[1].block == "two" and g.scopes[1].args == {"c": 2}


def test_a_repeated_inline_block_counts_on():
    g = checked(net("    layers: cbr(4) * 2\n    cbr(4) * 2", blocks=CBR))
    assert names(g)[1:] == [f"layers.{i}" for i in range(6)] + [str(i) for i in range(6)]


def test_inline_block_labels_are_claimed_in_the_callers_scope():
    blocks = "inline block head(k) { fc: linear(k) }\n"
    g = checked(net("    flatten\n    head(3)", blocks=blocks))
    assert names(g)[1:] == ["0", "fc"]
    e = error_of(net("    flatten\n    head(3)\n    head(2)", blocks=blocks))
    assert (e.code, e.span.line, "the name `fc` is used twice" in e.message) == ("E030", 1, True)
    assert [(f.block, f.span.line) for f in e.stack] == [("head", 7)]


def test_diagnostic_inside_an_inline_block_keeps_its_frame():
    e = error_of(net("    cbr(4)\n    cbr(4, stride=40)\n    conv(4, 9)", blocks=CBR, shape="[3, 8, 8]"))
    assert (e.code, e.span.line, e.stack) == ("E045", 7, ())
    e = error_of(net("    cbr(c=4, k=2)", blocks=CBR))
    assert (e.code, e.span.line, e.span.col) == ("E022", 5, 14)
    blocks = "inline block bad(c) { conv(c, 20) }\n"
    e = error_of(net("    bad(4)", blocks=blocks, shape="[3, 8, 8]"))
    assert e.code == "E045" and (e.span.line, e.span.col) == (1, 31)  # at the kernel
    assert [f.block for f in e.stack] == ["bad"] and e.stack[0].span.line == 5
    assert "in block bad, called at <string>:5:5" in e.render()


# ----------------------------------------------------------------------------- conditional joins

BASIC = """
block basic(out, stride = 1) {
    residual(when = stride == 1 and in.c == out) { conv(out, 3, stride=stride, pad=1) -> bn -> relu }
}
"""


def test_residual_when_shapes_allow():
    g = checked(net("    a: basic(7)\n    b: basic(8, stride=2)", blocks=BASIC))
    assert [g.node(n)["op"] for n in g.nodes()] == ["input", "conv", "bn", "relu", "add", "conv", "bn", "relu"]
    assert weight_names(g) == ["a.0", "a.1", "b.0", "b.1"]
    ours = model(net("    b: basic(8, stride=2)", blocks=BASIC))
    assert "+" not in ours.code.split("def forward")[1]


def test_when_false_keeps_the_first_branch_and_skips_the_others():
    body = "    add(when = flag) { conv(7, 1); { conv(7, 3, pad=1) -> bn } }"
    on = checked(net(body.replace("flag", "true")))
    off = checked(net(body.replace("flag", "false") + "\n    conv(2, 1)"))
    assert weight_names(on) == ["0", "1", "2"] and on.total_params == 7 * 7 + 7 + 7 * 7 * 9 + 7 + 14
    assert weight_names(off) == ["0", "1"] and off.total_params == 7 * 7 + 7 + 7 * 2 + 2
    # the branches not taken are not elaborated: their mistakes are not reached
    assert checked(net("    concat(when = false) { {}; conv(7, 99) }")).node(0)["op"] == "input"
    g = checked(net("    dense(when = in.c > 100) { conv(3, 1); conv(3, 1) }"))
    assert [g.node(n)["shape"] for n in g.nodes()] == [(7, 6, 6), (3, 6, 6)]


# ----------------------------------------------------------------------------- diagnostics

@pytest.mark.parametrize("body, code, line, col, wording, hint", [
    ("    concat(split=[3, 3]) { {}; {} }", "E044", 4, 12, "split sizes [3, 3] add up to 6, but dim 0 has size 7",
     "add up to 7"),
    ("    concat(split=true) { {}; {} }", "E044", 4, 12, "`split=true` cannot cut dim 0 of size 7 into 2 equal parts",
     "split=[...]"),
    ("    add(split=[3, 4, 0]) { {}; {} }", "E046", 4, 9, "`split` has 3 sizes for 2 branches", "one size per"),
    ("    add(split=[8, -1]) { {}; {} }", "E024", 4, 9, "split sizes must be positive, got [8, -1]", None),
    ("    add(split=3) { {}; {} }", "E020", 4, 9, "`split` must be true or a list of sizes, got int 3", "split=true"),
    ("    add(split=true, split_dim=3) { {}; {} }", "E041", 4, 21, "split_dim=3 is out of range", "dims count"),
    ("    add(split_dim=1) { {}; {} }", "E023", 4, 9, "`split_dim` is given without `split`", "split=true"),
    ("    dense(split=true) { conv(2, 1) }", "E022", 4, 11, "`dense` cannot split its input: every layer sees",
     "concat(split=true)"),
    ("    residual(split=[3, 4]) { relu }", "E022", 4, 14, "`residual` cannot split its input", "concat(split"),
    ("    residual(when = in.c) { relu }", "E051", 4, 14, "`when` must be true or false, got int 7", "in.c == c"),
    ("    concat(when = none) { {}; {} }", "E051", 4, 12, "`when` must be true or false, got none", None),
    ("    add { conv(7, 1) }", "E048", 4, 5, "`add` has one branch", "`residual { ... }` adds the input back"),
    ("    concat(when = false) { conv(7, 1) }", "E048", 4, 5, "`concat` has one branch", "two or more"),
    ("    concat(splt=true) { {}; {} }", "E022", 4, 12, "`concat` has no parameter `splt`", "`split`"),
    ("    concat(dim=3) { {}; {} }", "E041", 4, 12, "dim=3 is out of range", None),
    ("    add(scale=[1]) { {}; {} }", "E046", 4, 9, "`scale` has 1 value for 2 inputs", None),
    ("    flatten(1) -> transpose(0, 1) -> attention(3)", "E042", 4, 48, "heads=3 does not divide", None),
    ("    permute(0, 0, 1)", "E020", 4, 13, "names dim 0 twice", None),
])
def test_diagnostics(body, code, line, col, wording, hint):
    shape = "[16, 2, 2]" if "attention" in body else "[7, 6, 6]"
    e = error_of(net(body, shape=shape))
    e.render()
    assert (e.code, e.span.line, e.span.col) == (code, line, col), e.render()
    assert wording in e.message, e.message
    if hint is not None:
        assert hint in (e.hint or ""), e.hint


def test_one_branch_rule_allows_a_loop_that_runs_once_and_the_residual():
    g = checked(net("    concat { for k in [1] { conv(2, k) } }\n    residual { relu }"))
    assert [g.node(n)["op"] for n in g.nodes()] == ["input", "conv", "concat", "relu", "add"]


def test_a_join_called_as_an_op_is_named_in_the_hint():
    """Joins are reserved words, so no spec calls one as an op; a value that names one still gets the hint."""
    from types import SimpleNamespace

    from archdsl.elaborate import Elaborator
    from archdsl.errors import Limits, Span
    from archdsl.evaluate import Ctx
    from archdsl.values import OpRef
    call = SimpleNamespace(span=Span("t.arch", 3, 5, 3, 14), name="concat")
    with pytest.raises(archdsl.ArchError) as info:
        Elaborator(Limits(), {}).op_call(OpRef("concat"), [], call, Ctx({}, None), None, None)
    assert (info.value.code, info.value.hint) == ("E011", "`concat` is a join: write `concat { a; b }`")
