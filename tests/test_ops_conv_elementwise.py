"""Transposed and sub-pixel convolution, instance normalization and the elementwise ops
(hardsigmoid, hardtanh, clamp, mish, elu, prelu, scale, shift) against PyTorch: shape rules,
state dicts, numerics, MACs, in-place safety, diagnostics, the alias hints and the docs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings, strategies as st
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.ops import ALIASES, OPS, ShapeProblem
from conftest import checked, error_of

ROOT = Path(__file__).resolve().parent.parent
NS = {"torch": torch, "nn": nn, "F": F}
NEW = ("conv_transpose", "pixel_shuffle", "pixel_unshuffle", "instancenorm", "hardsigmoid", "hardtanh", "clamp",
       "mish", "elu", "prelu", "scale", "shift")
FEW = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


class Built(nn.Module):
    """One op as the compiler emits it: its module (if any) and its forward expression."""

    def __init__(self, name, a, shape, inplace=False):
        super().__init__()
        op = OPS[name]
        spec = op.module(a, [shape], op.shape(a, [shape]))
        self.mod = eval(spec[0], NS)(*spec[1], **spec[2]) if spec else None
        self.fn = eval(f"lambda self, x: {op.forward(a, ['x'], 'self.mod', inplace)}", NS)

    def forward(self, x):
        return self.fn(self, x)


def run(name, shape, args=(), kw=None, train=False, inplace=False, x=None):
    """Bind, build and run the op on a batch of 2: its shape, weights and MACs as torch has them."""
    op = OPS[name]
    a = op.bind(list(args), kw or {})
    y = op.shape(a, [shape])
    m = Built(name, a, shape, inplace).train(train)
    x = torch.randn(2, *shape) if x is None else x
    with FlopCounterMode(display=False) as fc:
        out = m(x)
    assert tuple(out.shape) == (2, *y), (name, a, shape)
    assert op.weights(a, [shape], y) == (sum(p.numel() for p in m.parameters()), sum(b.numel() for b in m.buffers()))
    assert op.macs(a, [shape], y) == fc.get_total_flops() // 2 // 2, (name, a, shape)
    return a, m, out


def net(body: str, shape=(4, 8, 8)) -> str:
    return f"network t() {{\n    input x: {list(shape)}\n{body}\n}}\n"


# ----------------------------------------------------------------------------- every op vs torch

CASES = [
    ("conv_transpose", (4, 5, 5), (6, 3), {}),
    ("conv_transpose", (4, 5, 5), (6, 4), {"stride": 2, "pad": 1, "bias": False}),
    ("conv_transpose", (4, 5, 6), (6, [3, 2]), {"stride": [2, 3], "pad": [1, 0], "output_pad": [1, 2]}),
    ("conv_transpose", (4, 5, 5), (6, 3), {"dilation": 2, "groups": 2, "output_pad": 1}),
    ("conv_transpose", (4, 7), (2, 5), {"stride": 3, "pad": 2, "output_pad": 2, "groups": 2}),
    ("conv_transpose", (2, 3, 4, 3), (3, 2), {"stride": 2}),
    ("conv_transpose", (4, 3, 3), (4, [3]), {"stride": [2], "groups": 4}),
    ("pixel_shuffle", (8, 3, 4), (2,), {}),
    ("pixel_shuffle", (9, 2, 2), (3,), {}),
    ("pixel_unshuffle", (2, 4, 6), (2,), {}),
    ("pixel_unshuffle", (3, 3, 3), (1,), {}),
    ("instancenorm", (3, 7), (), {}),
    ("instancenorm", (3, 4, 5), (), {"affine": True}),
    ("instancenorm", (3, 4, 5), (), {"track_running_stats": True, "eps": 1e-3, "momentum": 0.2}),
    ("instancenorm", (3, 2, 3, 4), (), {"affine": True, "track_running_stats": True}),
    ("hardsigmoid", (3, 4, 4), (), {}),
    ("hardtanh", (3, 4, 4), (), {}),
    ("hardtanh", (6,), (0.0, 6.0), {}),
    ("clamp", (3, 4, 4), (), {"min": 0}),
    ("clamp", (3, 4, 4), (-0.5, 0.5), {}),
    ("clamp", (3, 4), (), {"max": 0.1}),
    ("mish", (3, 4, 4), (), {}),
    ("elu", (3, 4, 4), (), {}),
    ("elu", (3, 4, 4), (-0.4,), {}),
    ("prelu", (3, 4, 4), (), {}),
    ("prelu", (3, 4, 4), (3,), {"slope": 0.1}),
    ("prelu", (7,), (), {"channels": 7}),
    ("scale", (3, 4, 4), (0.2,), {}),
    ("scale", (3, 4), (1,), {}),
    ("shift", (3, 4, 4), (-1.5,), {}),
    ("shift", (5,), (0,), {}),
]


def test_cases_cover_every_new_op():
    assert {c[0] for c in CASES} == set(NEW) and set(NEW) <= set(OPS)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name,shape,args,kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_torch(name, shape, args, kw, train):
    run(name, shape, args, kw, train=train)


REFERENCES = [
    ("hardsigmoid", (), {}, nn.Hardsigmoid()),
    ("hardtanh", (), {}, nn.Hardtanh()),
    ("hardtanh", (), {"min": -0.3, "max": 0.8}, nn.Hardtanh(-0.3, 0.8)),
    ("clamp", (), {"min": -0.2}, lambda x: x.clamp(min=-0.2)),
    ("clamp", (-1, 0.25), {}, lambda x: x.clamp(-1, 0.25)),
    ("mish", (), {}, lambda x: x * torch.tanh(F.softplus(x))),
    ("elu", (), {}, nn.ELU()),
    ("elu", (0.3,), {}, nn.ELU(0.3)),
    ("elu", (-0.5,), {}, nn.ELU(-0.5)),
    ("scale", (0.25,), {}, lambda x: x * 0.25),
    ("shift", (3,), {}, lambda x: x + 3),
    ("pixel_shuffle", (2,), {}, nn.PixelShuffle(2)),
    ("pixel_unshuffle", (2,), {}, nn.PixelUnshuffle(2)),
]


@pytest.mark.parametrize("name,args,kw,ref", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_numerics(name, args, kw, ref):
    x = torch.randn(2, 8, 6, 4) * 3
    torch.testing.assert_close(run(name, (8, 6, 4), args, kw, x=x)[2], ref(x))


def test_pixel_shuffle_round_trip_and_layout():
    x = torch.arange(2 * 12 * 2 * 3, dtype=torch.float).view(2, 12, 2, 3)
    y = run("pixel_shuffle", (12, 2, 3), (2,), x=x)[2]
    assert y[0, 0, :2, :2].tolist() == [[0, 6], [12, 18]]  # channels c·4 .. c·4 + 3 fill each 2x2 cell
    torch.testing.assert_close(run("pixel_unshuffle", (3, 4, 6), (2,), x=y)[2], x)


# ----------------------------------------------------------------------------- compiled specs

def test_decoder_state_dict_and_numerics():
    """A compiled spec's weights load into torch's own modules and give the same outputs."""
    model = archdsl.loads(net(
        "    up: conv_transpose(6, 4, stride=2, pad=1)\n"
        "    norm: instancenorm(affine=true, track_running_stats=true)\n"
        "    act: prelu(channels=6, slope=0.1)\n"
        "    up3: conv_transpose(2, [3, 1], stride=[1, 2], output_pad=[0, 1], groups=2, bias=false)\n"
        "    shared: prelu"))
    ref = nn.ModuleDict({"up": nn.ConvTranspose2d(4, 6, 4, 2, 1), "norm": nn.InstanceNorm2d(6, affine=True,
                         track_running_stats=True), "act": nn.PReLU(6, 0.1),
                         "up3": nn.ConvTranspose2d(6, 2, (3, 1), (1, 2), output_padding=(0, 1), groups=2, bias=False),
                         "shared": nn.PReLU()})
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert tuple(model.state_dict()["up.weight"].shape) == (4, 6, 4, 4)  # [in, out / groups, *kernel]
    assert tuple(model.state_dict()["up3.weight"].shape) == (6, 1, 3, 1)
    assert model.state_dict()["act.weight"].tolist() == [pytest.approx(0.1)] * 6
    ref.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 8, 8)
    for train in (True, False):
        model.train(train), ref.train(train)
        want = ref["shared"](ref["up3"](ref["act"](ref["norm"](ref["up"](x)))))
        torch.testing.assert_close(model(x), want)
        assert want.shape == (2, 2, 18, 32)
    torch.testing.assert_close(model.state_dict()["norm.running_mean"], ref.state_dict()["norm.running_mean"])


@pytest.mark.parametrize("affine,track,names", [
    (False, False, []), (True, False, ["weight", "bias"]),
    (False, True, ["running_mean", "running_var", "num_batches_tracked"]),
    (True, True, ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"])])
@pytest.mark.parametrize("shape", [(5, 6), (5, 4, 4), (5, 2, 3, 3)])
def test_instancenorm_state_dict(affine, track, names, shape):
    text = net(f"    n: instancenorm(affine={str(affine).lower()}, track_running_stats={str(track).lower()})", shape)
    model = archdsl.loads(text)
    ref = getattr(nn, f"InstanceNorm{len(shape) - 1}d")(shape[0], affine=affine, track_running_stats=track)
    assert list(model.state_dict()) == [f"n.{k}" for k in names] == [f"n.{k}" for k in ref.state_dict()]
    x = torch.randn(2, *shape)
    torch.testing.assert_close(model(x), ref(x))
    s = archdsl.summary(text, text=True)
    assert (s.totals["params"], s.totals["buffers"]) == (2 * 5 * affine, (2 * 5 + 1) * track)


@pytest.mark.parametrize("body,shape", [
    ("conv_transpose(6, 3, stride=2, pad=1, output_pad=1)", (4, 5, 7)),
    ("conv_transpose(6, 4, stride=3, dilation=2, groups=2)", (4, 9)),
    ("conv_transpose(3, [2, 3, 1], stride=2, bias=false)", (2, 3, 4, 5)),
    ("conv(8, 3, stride=2, pad=1) -> conv_transpose(4, 2, stride=2, groups=4) -> prelu(4) -> pixel_shuffle(2)",
     (4, 8, 8)),
])
def test_macs_match_flop_counter(body, shape):
    """The analysis counts conv_transpose as FlopCounterMode does (MACs = FLOPs / 2)."""
    text = net(f"    {body}", shape)
    s = archdsl.summary(text, text=True)
    with torch.device("meta"):
        model = archdsl.loads(text).eval()
        x = torch.empty(1, *shape)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    assert s.totals["macs"] == fc.get_total_flops() // 2 > 0
    assert s.totals["params"] == sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- sizes against torch

def agree(name, a, shape, torch_call):
    """The registry's shape equals torch's, or both refuse (an empty result counts as refusing)."""
    try:
        mine = OPS[name].shape(a, [shape])
    except ShapeProblem:
        mine = None
    try:
        with torch.no_grad():
            theirs = tuple(torch_call(torch.zeros(1, *shape)).shape[1:])
    except (RuntimeError, ValueError):
        theirs = None
    if theirs is not None and 0 in theirs:  # a grouped conv_transpose gives an empty tensor where others refuse
        theirs = None
    assert mine == theirs, (a, shape)


@FEW
@given(st.data())
def test_conv_transpose_sizes(data):
    n = data.draw(st.integers(1, 3))
    c = data.draw(st.sampled_from([2, 4]))
    shape = (c,) + tuple(data.draw(st.integers(1, 6)) for _ in range(n))
    kw = {"kernel": data.draw(st.integers(1, 4)), "stride": data.draw(st.integers(1, 3)),
          "pad": data.draw(st.integers(0, 3)), "output_pad": data.draw(st.integers(0, 2)),
          "dilation": data.draw(st.integers(1, 3)), "groups": data.draw(st.sampled_from([1, 2]))}
    out = data.draw(st.sampled_from([2, 3, 4]))
    a = OPS["conv_transpose"].bind([out], kw)
    cls = getattr(nn, f"ConvTranspose{n}d")
    agree("conv_transpose", a, shape, lambda x: cls(c, out, kw["kernel"], kw["stride"], kw["pad"], kw["output_pad"],
                                                    kw["groups"], dilation=kw["dilation"])(x))


def test_conv_transpose_refuses_an_empty_output():
    """Where torch's grouped ConvTranspose1d returns an empty tensor instead of refusing, as its other paths do."""
    a = OPS["conv_transpose"].bind([2, 1], {"stride": 2, "pad": 1, "output_pad": 1, "groups": 2})
    assert nn.ConvTranspose1d(2, 2, 1, 2, 1, 1, groups=2)(torch.zeros(1, 2, 1)).shape == (1, 2, 0)
    with pytest.raises(ShapeProblem) as e:
        OPS["conv_transpose"].shape(a, [(2, 1)])
    assert e.value.code == "E045" and "output size would be 0" in e.value.message


@FEW
@given(st.sampled_from(["pixel_shuffle", "pixel_unshuffle"]), st.integers(1, 3), st.integers(1, 12),
       st.integers(1, 6), st.integers(1, 6))
def test_pixel_shuffle_sizes(name, r, c, h, w):
    agree(name, OPS[name].bind([r], {}), (c, h, w), lambda x: getattr(F, name)(x, r))


@FEW
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3))
def test_instancenorm_sizes(sizes):
    shape = (2, *sizes)
    cls = getattr(nn, f"InstanceNorm{len(sizes)}d")
    agree("instancenorm", OPS["instancenorm"].bind([], {}), shape, lambda x: cls(2).train()(x))


# ----------------------------------------------------------------------------- in place

INPLACE = [("hardsigmoid", ()), ("hardtanh", ()), ("hardtanh", (0.0, 6.0)), ("mish", ()), ("elu", ()),
           ("elu", (0.0,)), ("elu", (-0.5,))]


@pytest.mark.parametrize("name,args", INPLACE)
def test_inplace_forward_and_backward(name, args):
    leaf = torch.randn(2, 3, 4, 4, requires_grad=True)
    results = []
    for inplace in (False, True):
        leaf.grad = None
        out = run(name, (3, 4, 4), args, inplace=inplace, x=leaf * 1)[2]  # a non-leaf the op may overwrite
        (out * torch.arange(out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), leaf.grad.clone()))
    torch.testing.assert_close(results[0], results[1])


def test_inplace_only_where_torch_has_it():
    def code(name, *args):
        op = OPS[name]
        return op.forward(op.bind(list(args), {}), ["x"], "m", True)
    assert code("hardsigmoid") == "F.hardsigmoid(x, inplace=True)"
    assert code("hardtanh", 0, 6) == "F.hardtanh(x, 0.0, 6.0, inplace=True)"
    assert code("elu", 0.5) == "F.elu(x, 0.5, inplace=True)"
    assert code("elu", -0.5) == "F.elu(x, -0.5)"  # torch's in-place backward rejects negative alphas
    assert code("clamp", 0) == "torch.clamp(x, min=0.0)"
    assert code("scale", 2) == "x * 2.0" and code("scale", 1) == "x * 1.0"  # new tensors, never the input
    assert code("shift", -1) == "x - 1.0" and code("shift", 0.5) == "x + 0.5"
    assert code("prelu") == "m(x)"


CONTRACT = CASES + [("pixel_shuffle", (3, 2, 2), (1,), {})]  # r = 1: a copy all the same


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name,shape,args,kw", CONTRACT, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONTRACT)])
def test_inplace_contract_is_sound(name, shape, args, kw, train):
    """Overwriting an op's output (relu in place after it) breaks backward only where ``keeps`` says
    the op keeps its output; the ops that are not views may hand their output to an in-place op."""
    op = OPS[name]
    for before in (None, torch.sigmoid):
        leaf = torch.randn(2, *shape, requires_grad=True)
        x = leaf * 1 if before is None else before(leaf)
        y = run(name, shape, args, kw, train=train, inplace=before is None, x=x)[2]
        try:
            F.relu(y, inplace=True).sum().backward()
        except RuntimeError as e:
            assert "modified by an inplace operation" in str(e)
            assert op.keeps == "output" and not op.view, name


def test_metadata():
    for name in NEW:
        op = OPS[name]
        assert op.arity == 1 and not op.view and op.helpers == (), name
    assert {n for n in NEW if OPS[n].elementwise} == set(NEW) - {"conv_transpose", "pixel_shuffle", "pixel_unshuffle"}
    assert {n: OPS[n].category for n in NEW} == {
        "conv_transpose": "conv", "pixel_shuffle": "reshape", "pixel_unshuffle": "reshape", "instancenorm": "norm",
        "hardsigmoid": "activation", "hardtanh": "activation", "clamp": "activation", "mish": "activation",
        "elu": "activation", "prelu": "activation", "scale": "other", "shift": "other"}
    assert OPS["elu"].keeps == "output" and OPS["conv_transpose"].keeps == "input"


def test_labels_and_signatures():
    def label(name, *args, **kw):
        return OPS[name].label(OPS[name].bind(list(args), kw))
    assert label("conv_transpose", 64, 4, stride=2, pad=1) == "conv_transpose 4x4, 64, stride=2"
    assert label("conv_transpose", 8, [2, 1], groups=2) == "conv_transpose 2x1, 8, groups=2"
    assert label("pixel_shuffle", 2) == "pixel_shuffle 2"
    assert label("hardtanh") == "hardtanh [-1, 1]"
    assert label("clamp", max=6) == "clamp [-inf, 6]"
    assert label("elu") == "elu" and label("elu", 0.5) == "elu 0.5"
    assert label("prelu") == "prelu" and label("prelu", 64) == "prelu 64"
    assert label("scale", 0.2) == "scale 0.2" and label("shift", 1) == "shift +1"
    assert OPS["conv_transpose"].signature() == \
        "conv_transpose(out, kernel, stride=1, pad=0, output_pad=0, dilation=1, groups=1, bias=true)"
    assert OPS["instancenorm"].signature() == \
        "instancenorm(eps=1e-05, momentum=0.1, affine=false, track_running_stats=false)"
    assert OPS["prelu"].signature() == "prelu(channels=1, slope=0.25)"
    assert OPS["clamp"].signature() == "clamp(min=none, max=none)"


# ----------------------------------------------------------------------------- diagnostics

DIAGNOSTICS = [
    # (body, input shape, code, line, column, wording, hint piece)
    ("    conv_transpose(8, 3, groups=3)", (4, 8, 8), "E042", 3, 26, "groups=3 does not divide the 4 input channels",
     None),
    ("    conv_transpose(6, 3, groups=4)", (4, 8, 8), "E042", 3, 26, "groups=4 does not divide the 6 output channels",
     None),
    ("    conv_transpose(8, 3, stride=2, output_pad=2)", (4, 8, 8), "E043", 3, 36,
     "output_pad 2 must be smaller than the stride 2 or the dilation 1 (as in PyTorch), along spatial dimension 1",
     "from 0 to stride - 1"),
    ("    conv_transpose(8, 3, output_pad=1)", (4, 8), "E043", 3, 26,
     "output_pad 1 must be smaller than the stride 1 or the dilation 1 (as in PyTorch)", None),
    ("    conv_transpose(8, 2, pad=1)", (4, 1, 8), "E045", 3, 26,
     "output size would be 0 along spatial dimension 1: input size 1, kernel 2, stride 1, padding 1, dilation 1",
     "use less padding"),
    ("    conv_transpose(8, kernel=[3, 3, 3])", (4, 8, 8), "E041", 3, 23, "`kernel` has 3 values for an input with 2 spatial",
     None),
    ("    conv_transpose(8, 3)", (100,), "E041", 3, 5,
     "`conv_transpose` needs a feature map with channels first, got the vector [100]", "`reshape(100, 1, 1)`"),
    ("    conv(6, 1) -> pixel_shuffle(2)", (4, 8, 8), "E042", 3, 33,
     "`pixel_shuffle(2)` needs channels divisible by r² = 4, got 6", "conv(4 * c, 3, pad=1)"),
    ("    pixel_shuffle(r=3)", (4, 8, 8), "E042", 3, 19, "`pixel_shuffle(3)` needs channels divisible by r² = 9, got 4",
     None),
    ("    pixel_unshuffle(2)", (4, 8, 7), "E042", 3, 21,
     "`pixel_unshuffle(2)` needs a height and width divisible by 2, got 8x7", "pad or crop"),
    ("    pixel_shuffle(2)", (16, 8), "E041", 3, 5,
     "`pixel_shuffle` needs a [C, H, W] feature map (batch implicit), got [16, 8]", None),
    ("    global_avgpool -> instancenorm", (4, 8, 8), "E041", 3, 23,
     "`instancenorm` normalizes each channel over its spatial positions, and [4, 1, 1] has only one",
     "normalize before the pooling"),
    ("    flatten -> instancenorm", (4, 8, 8), "E041", 3, 16,
     "`instancenorm` needs a feature map with channels first ([C, L], [C, H, W] or [C, D, H, W], batch implicit), "
     "got [256]", "`layernorm` normalizes a vector"),
    ("    prelu(channels=3)", (4, 8, 8), "E024", 3, 11,
     "`prelu` learns one shared slope or one per channel (4 here), not 3", "channels=4 learns one per channel"),
    ("    hardtanh(min=1, max=0)", (4, 8, 8), "E024", 3, 21, "`max` must be above `min`, got min=1.0, max=0.0", None),
    ("    clamp", (4, 8, 8), "E023", 3, 5, "`clamp` needs `min`, `max` or both", "clamp(min=0)"),
    ("    clamp(2, max=1)", (4, 8, 8), "E024", 3, 14, "`min` must not be above `max`, got min=2.0, max=1.0", None),
    ("    scale", (4, 8, 8), "E023", 3, 5, "`scale` needs `factor`", "scale(factor)"),
    ("    shift(\"one\")", (4, 8, 8), "E020", 3, 11, '`offset` must be a number, got string "one"', None),
    ("    instancenorm(momentum=2)", (4, 8, 8), "E024", 3, 18, "`momentum` must be at most 1, got 2", None),
    ("    conv_transpose(8, 3, output_padding=1)", (4, 8, 8), "E022", 3, 26,
     "`conv_transpose` has no parameter `output_padding`", "`output_pad`"),
]


@pytest.mark.parametrize("body,shape,code,line,col,wording,hint", DIAGNOSTICS,
                         ids=[f"{d[2]}-{i}" for i, d in enumerate(DIAGNOSTICS)])
def test_diagnostic(body, shape, code, line, col, wording, hint):
    e = error_of(net(body, shape))
    rendered = e.render()
    assert (e.code, e.span.line, e.span.col) == (code, line, col), rendered
    assert wording in e.message, rendered
    assert hint is None or hint in e.hint, rendered
    assert "Traceback" not in rendered and "^" in rendered


# ----------------------------------------------------------------------------- aliases and docs

def test_aliases_point_at_ops():
    for name, hint in ALIASES.items():
        assert name not in OPS, name
        target = re.fullmatch(r"did you mean `(\w+)`\?(?: \((.+)\))?", hint)
        assert target and target.group(1) in OPS, hint
    wanted = {"deconv": "conv_transpose", "upconv": "conv_transpose", "transposed_conv": "conv_transpose",
              "ConvTranspose1d": "conv_transpose", "ConvTranspose2d": "conv_transpose",
              "ConvTranspose3d": "conv_transpose", "PixelShuffle": "pixel_shuffle", "swish": "silu",
              "InstanceNorm2d": "instancenorm", "hard_sigmoid": "hardsigmoid", "Hardsigmoid": "hardsigmoid",
              "hard_tanh": "hardtanh", "PReLU": "prelu"}
    for name, op in wanted.items():
        assert ALIASES[name].startswith(f"did you mean `{op}`?"), name
    assert ALIASES["ConvTranspose2d"] == "did you mean `conv_transpose`? (PyTorch's ConvTranspose2d)"



def test_every_new_op_exports_and_compiles_in_one_graph():
    """The emitted forward code traces without graph breaks, in place or not."""
    model = archdsl.loads(net(
        "    conv_transpose(8, 2, stride=2) -> instancenorm(affine=true) -> prelu(channels=8) -> hardsigmoid\n"
        "    conv(8, 1) -> hardtanh(min=-0.5, max=2) -> conv(8, 1) -> mish -> conv(8, 1) -> elu(0.5)\n"
        "    clamp(max=1) -> scale(2) -> shift(-1) -> pixel_unshuffle(2) -> pixel_shuffle(2)", (4, 4, 4))).eval()
    x = torch.randn(2, 4, 4, 4)
    torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), model(x))
    torch.compile(model.train(), fullgraph=True, backend="eager")(x)
