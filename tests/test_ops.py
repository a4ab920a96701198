"""The op registry against PyTorch: every op's shape, weight and MAC rules are checked by
running the torch code it emits on a real batch."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings, strategies as st
from torch.utils.flop_counter import FlopCounterMode

from archdsl.ops import HELPERS, OPS, BadArgument, ShapeProblem, type_name
from conftest import error_of

NS = {"torch": torch, "nn": nn, "F": F}
for _src in HELPERS.values():
    exec(_src, NS)

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")

BATCH = 2
CATEGORIES = {"conv", "linear", "norm", "activation", "pool", "join", "reshape", "regularize", "io", "param", "other"}


class Built(nn.Module):
    """One op as the compiler would emit it: its module (if any) and its forward expression."""

    def __init__(self, name, a, shapes, inplace=False):
        super().__init__()
        op = OPS[name]
        y = op.shape(a, shapes)
        spec = op.module(a, shapes, y)
        self.mod = eval(spec[0], NS)(*spec[1], **spec[2]) if spec else None
        names = [f"x{i}" for i in range(len(shapes))]
        self.expr = op.forward(a, names, "self.mod", inplace)
        self.fn = eval(f"lambda self, {', '.join(names)}: {self.expr}", NS)

    def forward(self, *xs):
        return self.fn(self, *xs)


def run(name, shapes, args=(), kw=None, train=False, inplace=False, inputs=None):
    """Bind, build and run the op on a batch; check shape, weights and MACs against torch."""
    op = OPS[name]
    a = op.bind(list(args), kw or {})
    y = op.shape(a, shapes)
    m = Built(name, a, shapes, inplace).train(train)
    xs = inputs if inputs is not None else [torch.randn(BATCH, *s) for s in shapes]
    with FlopCounterMode(display=False) as fc:
        out = m(*xs)
    assert tuple(out.shape) == (xs[0].shape[0], *y), (name, a, shapes)
    params = sum(p.numel() for p in m.parameters())
    buffers = sum(b.numel() for b in m.buffers())
    assert op.weights(a, shapes, y) == (params, buffers), (name, a, shapes)
    assert op.macs(a, shapes, y) == fc.get_total_flops() // 2 // xs[0].shape[0], (name, a, shapes)
    return a, m, out


def problem(name, shapes, args=(), kw=None) -> ShapeProblem:
    op = OPS[name]
    with pytest.raises(ShapeProblem) as e:
        op.shape(op.bind(list(args), kw or {}), shapes)
    return e.value


def bad(name, args=(), kw=None) -> BadArgument:
    with pytest.raises(BadArgument) as e:
        OPS[name].bind(list(args), kw or {})
    return e.value


# ----------------------------------------------------------------------------- every op vs torch

CASES = [
    ("conv_transpose", [(4, 5, 5)], (6, 3), {"stride": 2, "pad": 1, "output_pad": 1}),
    ("conv_transpose", [(4, 7)], (2, 5), {"stride": 3, "pad": 2, "output_pad": 2, "groups": 2, "bias": False}),
    ("conv_transpose", [(2, 3, 4, 3)], (3, [2, 1, 3]), {"dilation": 2}),
    ("pixel_shuffle", [(8, 3, 4)], (2,), {}),
    ("pixel_unshuffle", [(2, 4, 6)], (2,), {}),
    ("instancenorm", [(3, 4, 5)], (), {}),
    ("instancenorm", [(3, 7)], (), {"affine": True, "track_running_stats": True}),
    ("hardsigmoid", [(3, 4, 4)], (), {}),
    ("hardtanh", [(3, 4, 4)], (-0.5, 2.0), {}),
    ("clamp", [(3, 4, 4)], (), {"min": 0}),
    ("mish", [(3, 4, 4)], (), {}),
    ("elu", [(3, 4, 4)], (0.5,), {}),
    ("prelu", [(3, 4, 4)], (3,), {}),
    ("scale", [(3, 4, 4)], (0.2,), {}),
    ("shift", [(3, 4, 4)], (-1.0,), {}),
    ("identity", [(3, 5, 5)], (), {}),
    ("conv", [(4, 9, 9)], (8, 3), {}),
    ("conv", [(4, 9, 9)], (8, 3), {"stride": 2, "pad": 1, "bias": False}),
    ("conv", [(4, 9, 9)], (8, [3, 1]), {"pad": [1, 0], "dilation": [2, 1], "groups": 2}),
    ("conv", [(4, 9, 9)], (4, 3), {"groups": 4, "pad": 1, "padding_mode": "reflect"}),
    ("conv", [(4, 9, 9)], (8, 4), {"pad": "same", "dilation": 3}),
    ("conv", [(4, 6, 7)], (8, 5), {"pad": "same", "padding_mode": "circular"}),
    ("conv", [(4, 6, 7)], (8, 2), {"pad": "valid", "stride": [1, 2]}),
    ("conv", [(4, 6, 7)], (8, [3]), {"pad": [1], "stride": [2], "padding_mode": "replicate"}),
    ("conv", [(4, 11)], (6, 3), {"stride": 2}),
    ("conv", [(2, 5, 6, 7)], (3, 3), {"pad": 1}),
    ("linear", [(12,)], (5,), {}),
    ("linear", [(12,)], (5, False), {}),
    ("bn", [(6,)], (), {}),
    ("bn", [(6, 7)], (), {"eps": 1e-3, "momentum": 0.01}),
    ("bn", [(6, 5, 5)], (), {}),
    ("bn", [(6, 5, 5)], (), {"affine": False}),
    ("bn", [(6, 3, 4, 5)], (), {}),
    ("layernorm", [(6, 5, 5)], (), {}),
    ("layernorm", [(6, 5, 5)], (3,), {"eps": 1e-6}),
    ("layernorm", [(16,)], (), {"affine": False}),
    ("groupnorm", [(8, 5, 5)], (4,), {}),
    ("groupnorm", [(8, 5)], (2,), {"affine": False, "eps": 1e-3}),
    ("groupnorm", [(8,)], (8,), {}),
    ("lrn", [(8, 5, 5)], (5,), {}),
    ("lrn", [(8, 5)], (3,), {"alpha": 1e-3, "beta": 0.5, "k": 2.0}),
    ("relu", [(3, 4, 4)], (), {}),
    ("relu6", [(3, 4, 4)], (), {}),
    ("leaky_relu", [(3, 4, 4)], (), {}),
    ("leaky_relu", [(3, 4, 4)], (-0.2,), {}),
    ("gelu", [(3, 4, 4)], (), {}),
    ("gelu", [(7,)], ("tanh",), {}),
    ("silu", [(3, 4, 4)], (), {}),
    ("sigmoid", [(3, 4, 4)], (), {}),
    ("tanh", [(3, 4, 4)], (), {}),
    ("hardswish", [(3, 4, 4)], (), {}),
    ("softmax", [(10,)], (), {}),
    ("softmax", [(3, 4, 5)], (2,), {}),
    ("softmax", [(3, 4, 5)], (-2,), {}),
    ("log_softmax", [(10,)], (), {}),
    ("log_softmax", [(3, 4)], (1,), {}),
    ("maxpool", [(3, 9, 9)], (3,), {"stride": 2}),
    ("maxpool", [(3, 8, 8)], (2,), {}),
    ("maxpool", [(3, 8, 9)], (3, 2, 1), {"ceil": True}),
    ("maxpool", [(3, 8, 9)], ([3, 2],), {"dilation": 2, "pad": [1, 0]}),
    ("maxpool", [(3, 10)], (3, 2), {"ceil": True}),
    ("maxpool", [(3, 5, 6, 7)], (2,), {}),
    ("avgpool", [(3, 9, 9)], (3, 2, 1), {}),
    ("avgpool", [(3, 8, 9)], (3, 2, 1), {"ceil": True, "count_include_pad": False}),
    ("avgpool", [(3, 10)], (2,), {}),
    ("avgpool", [(3, 8, 9)], ([3, 2], [1, 2]), {}),
    ("avgpool", [(3, 3, 4, 5)], ([3, 2, 1],), {}),
    ("avgpool", [(3, 5, 6, 7)], (2,), {"ceil": True}),
    ("adaptive_avgpool", [(3, 9, 9)], (4,), {}),
    ("adaptive_avgpool", [(3, 9, 9)], ([2, 3],), {}),
    ("adaptive_avgpool", [(3, 9)], (12,), {}),
    ("adaptive_maxpool", [(3, 9, 9)], (4,), {}),
    ("adaptive_maxpool", [(3, 4, 5, 6)], ([1, 2, 3],), {}),
    ("global_avgpool", [(3, 9, 9)], (), {}),
    ("global_avgpool", [(3, 9)], (), {}),
    ("global_avgpool", [(3, 4, 5, 6)], (), {}),
    ("global_maxpool", [(3, 9, 9)], (), {}),
    ("global_maxpool", [(3, 9)], (), {}),
    ("upsample", [(3, 4, 5)], (2,), {}),
    ("upsample", [(3, 4, 5)], (1.5,), {"mode": "bilinear"}),
    ("upsample", [(3, 4, 5)], (), {"size": [7, 3], "mode": "bilinear", "align_corners": True}),
    ("upsample", [(3, 4, 5)], ([2, 0.5],), {"mode": "bicubic", "align_corners": False}),
    ("upsample", [(3, 7)], (), {"size": 11, "mode": "linear"}),
    ("upsample", [(3, 2, 3, 4)], (2,), {"mode": "trilinear"}),
    ("upsample", [(3, 5, 5)], (0.5,), {"mode": "nearest-exact"}),
    ("flatten", [(3, 4, 5)], (), {}),
    ("flatten", [(7,)], (), {}),
    ("channel_shuffle", [(6, 4, 4)], (3,), {}),
    ("pad", [(3, 4, 4)], (), {"channels": [0, 5]}),
    ("pad", [(3, 4, 4)], (), {"channels": 1, "spatial": [1, 2], "value": 0.5}),
    ("pad", [(3, 7)], (), {"spatial": 2}),
    ("channel_shuffle", [(8, 5)], (2,), {}),
    ("dropout", [(3, 4, 4)], (), {}),
    ("dropout", [(10,)], (0.1,), {}),
    ("droppath", [(3, 4, 4)], (0.8,), {}),
    ("droppath", [(3, 4, 4)], (1,), {}),
    ("concat", [(3, 4, 4), (5, 4, 4)], (), {}),
    ("concat", [(3,), (5,), (1,)], (), {}),
    ("add", [(3, 4, 4), (3, 4, 4)], (), {}),
    ("add", [(3, 4, 4)], (), {}),
    ("add", [(3, 4, 4), (3, 4, 4), (3, 4, 4)], ([1, 0.5, -2],), {}),
    ("add", [(3, 4, 4), (3, 4, 4)], ([0.2, 1], [1, 0.8]), {}),
    ("mean", [(3, 4, 4), (3, 4, 4)], (), {}),
    ("mean", [(3, 4, 4)], (), {}),
    ("mean", [(3, 4, 4), (3, 4, 4), (3, 4, 4)], (0.15,), {}),
    ("mul", [(3, 4, 4), (3, 1, 1)], (), {}),
    ("mul", [(3, 1, 4), (1, 5, 1), (3, 5, 4)], (), {}),
    ("mul", [(6,), (6,)], (), {}),
]


def test_cases_cover_every_op():
    """Every op is run against torch by a case here or in the test file of its family."""
    import test_ops_conv_elementwise
    import test_ops_layout
    covered = {c[0] for c in CASES + test_ops_layout.CASES + test_ops_conv_elementwise.CASES}
    covered |= test_ops_layout.NEW_OPS | {"attention", "sdpa"}  # (test_attention builds its own cases)
    covered |= {"param"}  # declared tensors: tests/test_params.py
    assert covered >= set(OPS) - {"input"}, sorted(set(OPS) - {"input"} - covered)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name,shapes,args,kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_torch(name, shapes, args, kw, train):
    run(name, shapes, args, kw, train=train)


# reference results for the ops whose numerics come from a forward expression
REFERENCES = [
    ("relu6", (), {}, lambda x: nn.ReLU6()(x)),
    ("leaky_relu", (0.2,), {}, lambda x: nn.LeakyReLU(0.2)(x)),
    ("gelu", ("tanh",), {}, lambda x: nn.GELU("tanh")(x)),
    ("silu", (), {}, lambda x: x * torch.sigmoid(x)),
    ("hardswish", (), {}, lambda x: nn.Hardswish()(x)),
    ("softmax", (), {}, lambda x: torch.softmax(x, 1)),
    ("softmax", (-1,), {}, lambda x: torch.softmax(x, -1)),
    ("log_softmax", (2,), {}, lambda x: torch.log_softmax(x, 3)),
    ("lrn", (3,), {"k": 2.0}, lambda x: nn.LocalResponseNorm(3, k=2.0)(x)),
    ("global_avgpool", (), {}, lambda x: nn.AdaptiveAvgPool2d((1, 1))(x)),
    ("global_avgpool", (), {}, lambda x: x.mean((2, 3), keepdim=True)),
    ("global_maxpool", (), {}, lambda x: x.amax((2, 3), keepdim=True)),
    ("maxpool", (3, 2, 1), {"ceil": True}, lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    ("channel_shuffle", (2,), {}, lambda x: nn.ChannelShuffle(2)(x)),
    ("pad", (), {"channels": [1, 2], "spatial": 1}, lambda x: F.pad(x, (1, 1, 1, 1, 1, 2))),
    ("flatten", (), {}, lambda x: x.reshape(x.shape[0], -1)),
    ("upsample", (2,), {"mode": "bilinear"}, lambda x: nn.Upsample(scale_factor=2, mode="bilinear")(x)),
    ("dropout", (0.3,), {}, lambda x: x),  # eval mode
    ("droppath", (0.3,), {}, lambda x: x),
]


@pytest.mark.parametrize("name,args,kw,ref", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_numerics(name, args, kw, ref):
    x = torch.randn(BATCH, 4, 6, 5)
    _, _, out = run(name, [(4, 6, 5)], args, kw, inputs=[x])
    torch.testing.assert_close(out, ref(x), rtol=1e-5, atol=1e-5)


def test_join_numerics():
    a, b, c = (torch.randn(BATCH, 3, 4, 4) for _ in range(3))
    s = [(3, 4, 4)] * 3
    torch.testing.assert_close(run("add", s, ([1, 0.5, -2],), inputs=[a, b, c])[2], a + 0.5 * b - 2 * c)
    torch.testing.assert_close(run("mean", s, inputs=[a, b, c])[2], (a + b + c) / 3)
    torch.testing.assert_close(run("mean", s, (0.5,), inputs=[a, b, c])[2], (a + b + c) / 3)
    torch.testing.assert_close(run("mul", [(3, 4, 4), (3, 1, 1)], inputs=[a, c[:, :, :1, :1]])[2],
                               a * c[:, :, :1, :1])
    torch.testing.assert_close(run("concat", s[:2], inputs=[a, b])[2], torch.cat([a, b], 1))


def test_plain_add_is_plain():
    op = OPS["add"]
    assert op.forward(op.bind([], {}), ["a", "b"], None, False) == "a + b"
    assert op.forward(op.bind([], {}), ["a", "b"], None, True) == "a.add_(b)"   # into a fresh first input
    assert op.forward(op.bind([[1, 0.2]], {}), ["a", "b"], None, True) == "a.add_(b, alpha=0.2)"
    assert op.forward(op.bind([[0.2, 1]], {}), ["a", "b"], None, True) == "0.2 * a + b"
    assert op.forward(op.bind([[1, 1], [1, 1]], {}), ["a", "b"], None, False) == "a + b"
    assert op.forward(op.bind([[2, 1], [1, 0.5]], {}), ["a", "b"], None, False) == \
        "2.0 * a + drop_path(b, 0.5, self.training)"
    assert OPS["mean"].forward(OPS["mean"].bind([], {}), ["a", "b"], None, False) == "(a + b) / 2"


ACTIVATIONS = [("relu", ()), ("relu6", ()), ("leaky_relu", ()), ("leaky_relu", (0.0,)), ("leaky_relu", (-0.1,)),
               ("silu", ()), ("hardswish", ()), ("sigmoid", ()), ("tanh", ()), ("gelu", ())]


@pytest.mark.parametrize("name,args", ACTIVATIONS)
def test_inplace_forward_and_backward(name, args):
    leaf = torch.randn(BATCH, 3, 4, 4, requires_grad=True)
    grads = []
    for inplace in (False, True):
        leaf.grad = None
        x = leaf * 1  # a non-leaf the op may overwrite
        a, m, out = run(name, [(3, 4, 4)], args, inplace=inplace, inputs=[x])
        (out * torch.arange(out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), leaf.grad.clone()))
    torch.testing.assert_close(grads[0], grads[1])


SINGLE = list({c[0]: c for c in reversed(CASES) if len(c[1]) == 1}.values())  # the first such case of each op


def _overwrite_after(name, shapes, args=(), kw=None, train=True, before=None):
    """Run the op (in place if it can, unless behind ``before``), then relu in place on its output,
    then backward: True when autograd complains that a saved tensor was overwritten."""
    leaf = torch.randn(BATCH, *shapes[0], requires_grad=True)
    x = leaf * 1 if before is None else before(leaf)
    _, m, y = run(name, shapes, args, kw, train=train, inplace=before is None, inputs=[x])
    try:
        F.relu(y, inplace=True).sum().backward()
    except RuntimeError as e:
        assert "modified by an inplace operation" in str(e)
        return True
    return False


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name,shapes,args,kw", SINGLE, ids=[f"{c[0]}-{i}" for i, c in enumerate(SINGLE)])
def test_inplace_contract_is_sound(name, shapes, args, kw, train):
    """Overwriting an op's output breaks backward only where ``keeps == "output"`` or ``view`` says so."""
    op = OPS[name]
    view = op.view or op.arity is None  # a join given a single input may return it
    assert _overwrite_after(name, shapes, args, kw, train) <= (op.keeps == "output" or view)
    # behind an op that saves its output, only a view can expose that one
    assert _overwrite_after(name, shapes, args, kw, train, before=torch.sigmoid) <= (op.keeps == "output" or view)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax"])
def test_keeps_output_is_needed(name):
    assert OPS[name].keeps == "output" and _overwrite_after(name, [(4, 3)])


@pytest.mark.parametrize("name,args", [("identity", ()), ("flatten", ()), ("channel_shuffle", (1,)),
                                       ("dropout", ()), ("droppath", (0.5,))])
def test_view_is_needed(name, args):
    assert OPS[name].view and _overwrite_after(name, [(4, 3, 3)], args, train=False, before=torch.sigmoid)


# ----------------------------------------------------------------------------- sizes, exhaustively

def torch_or_problem(name, shape, args, kw):
    """('ok', registry shape) or ('problem', code), and torch's shape or None if it raised."""
    op = OPS[name]
    a = op.bind(args, kw)
    try:
        mine = ("ok", op.shape(a, [shape]))
    except ShapeProblem as e:
        mine = ("problem", e.code)
    try:
        with torch.no_grad():
            theirs = tuple(Built(name, a, [shape])(torch.zeros(1, *shape)).shape[1:]) \
                if mine[0] == "ok" else _raw_torch(name, a, shape)
    except (RuntimeError, ValueError):
        theirs = None
    return mine, theirs


def _raw_torch(name, a, shape):
    """Torch's own verdict when the registry refused: call the torch op directly."""
    n = len(shape) - 1
    x = torch.zeros(1, *shape)
    if name == "conv":
        m = getattr(nn, f"Conv{n}d")(shape[0], a["out"], a["kernel"], a["stride"], a["pad"], a["dilation"],
                                     a["groups"], padding_mode=a["padding_mode"])
        return tuple(m(x).shape[1:])
    if name == "maxpool":
        return tuple(getattr(F, f"max_pool{n}d")(x, a["kernel"], a["stride"], a["pad"], a["dilation"],
                                                 ceil_mode=a["ceil"]).shape[1:])
    if name == "avgpool":
        return tuple(getattr(F, f"avg_pool{n}d")(x, a["kernel"], a["stride"], a["pad"], a["ceil"]).shape[1:])
    if name == "upsample":
        return tuple(F.interpolate(x, scale_factor=a["scale"][0], mode=a["mode"]).shape[1:])
    raise AssertionError(name)


def agree(mine, theirs):
    if mine[0] == "ok":
        assert theirs == mine[1], (mine, theirs)
    else:
        assert theirs is None, (mine, theirs)


FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
rank = st.integers(1, 3)


@FAST
@given(st.data())
def test_conv_sizes(data):
    n = data.draw(rank)
    shape = (data.draw(st.sampled_from([2, 4])),) + tuple(data.draw(st.integers(1, 8)) for _ in range(n))
    kw = {"kernel": data.draw(st.integers(1, 4)), "stride": data.draw(st.integers(1, 3)),
          "dilation": data.draw(st.integers(1, 3)), "groups": data.draw(st.sampled_from([1, 2])),
          "pad": data.draw(st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"]))),
          "padding_mode": data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))}
    agree(*torch_or_problem("conv", shape, [4], kw))


@FAST
@given(st.data())
def test_pool_sizes(data):
    name = data.draw(st.sampled_from(["maxpool", "avgpool"]))
    n = data.draw(rank)
    shape = (2,) + tuple(data.draw(st.integers(1, 9)) for _ in range(n))
    kw = {"kernel": data.draw(st.integers(1, 4)), "stride": data.draw(st.sampled_from([None, 1, 2, 3])),
          "pad": data.draw(st.integers(0, 2)), "ceil": data.draw(st.booleans())}
    if name == "maxpool":
        kw["dilation"] = data.draw(st.integers(1, 3))
    agree(*torch_or_problem(name, shape, [], kw))


@FAST
@given(st.data())
def test_upsample_sizes(data):
    n = data.draw(rank)
    shape = (2,) + tuple(data.draw(st.integers(1, 9)) for _ in range(n))
    scale = data.draw(st.one_of(st.floats(0.1, 3.5), st.integers(1, 3)))
    agree(*torch_or_problem("upsample", shape, [scale], {}))


# ----------------------------------------------------------------------------- diagnostics

def test_zero_output_size():
    e = problem("conv", [(3, 2, 2)], (8, 3))
    assert e.code == "E045" and "output size would be 0" in e.message and "input size 2" in e.message
    assert problem("maxpool", [(3, 2, 2)], (3,)).code == "E045"
    assert problem("avgpool", [(3, 1, 9)], (2,), {"stride": 1}).code == "E045"
    e = problem("upsample", [(3, 5, 5)], (0.1,))
    assert e.code == "E045" and "[5, 5]" in e.message


@pytest.mark.parametrize("name,shapes,args,kw,code,arg", [
    ("conv", [(4, 8, 8)], (8, 3), {"groups": 3}, "E042", "groups"),
    ("conv", [(4, 8, 8)], (6, 3), {"groups": 4}, "E042", "groups"),
    ("conv", [(4, 8, 8)], (8, [3, 3, 3]), {}, "E041", "kernel"),
    ("conv", [(4,)], (8, 3), {}, "E041", None),
    ("conv", [(4, 8, 8)], (8, 3), {"pad": "same", "stride": 2}, "E043", "pad"),
    ("conv", [(4, 3, 8)], (8, 3), {"pad": 3, "padding_mode": "reflect"}, "E043", "pad"),
    ("groupnorm", [(8, 4, 4)], (3,), {}, "E042", "groups"),
    ("channel_shuffle", [(8, 4, 4)], (3,), {}, "E042", "groups"),
    ("maxpool", [(3, 8, 8)], (3,), {"pad": 2}, "E043", "pad"),
    ("maxpool", [(3, 8, 8)], ([4, 2],), {"pad": [2, 2]}, "E043", "pad"),
    ("avgpool", [(3, 8, 8)], (2,), {"pad": 2}, "E043", "pad"),
    ("bn", [(3, 2, 2, 2, 2)], (), {}, "E041", None),
    ("lrn", [(8,)], (3,), {}, "E041", None),
    ("layernorm", [(3, 4, 4)], (4,), {}, "E041", "dims"),
    ("softmax", [(3, 4, 4)], (3,), {}, "E041", "dim"),
    ("upsample", [(3, 8)], (2,), {"mode": "bilinear"}, "E041", "mode"),
    ("add", [(3, 4, 4), (3, 4, 4)], ([1, 2, 3],), {}, "E046", "scale"),
    ("add", [(3, 4, 4), (3, 4, 4)], (), {"survival": 0.5}, "E046", "survival"),
    ("mean", [(3, 4, 4), (3, 4, 5)], (), {}, "E044", None),
    ("mul", [(3, 4, 4), (2, 1, 1)], (), {}, "E044", None),
    ("mul", [(3, 4, 4), (3,)], (), {}, "E044", None),
    ("concat", [(3, 4, 4), (3, 4, 5)], (), {}, "E044", None),
])
def test_shape_problems(name, shapes, args, kw, code, arg):
    e = problem(name, shapes, args, kw)
    assert (e.code, e.arg) == (code, arg), e.message


def test_linear_needs_a_vector():
    e = problem("linear", [(3, 4, 4)], (10,))
    assert e.code == "E041" and e.hint == "insert `flatten` before `linear`"


def test_add_lists_shapes():
    e = problem("add", [(64, 8, 8), (32, 8, 8)])
    assert e.code == "E044" and "[64, 8, 8]" in e.message and "[32, 8, 8]" in e.message


def test_bind_errors():
    e = bad("conv", (8,), {"kernal": 3})
    assert e.code == "E022" and e.where == "kernal" and "`kernel`" in e.hint
    e = bad("relu", (1,))
    assert e.code == "E021"
    e = bad("linear", (8, True, 3))
    assert e.code == "E021"
    e = bad("conv", (8,))
    assert e.code == "E023" and "conv(out, kernel" in e.hint
    assert bad("conv", (8, 3), {"stride": 2, "out": 4}).code == "E021"  # given twice
    assert bad("relu", (), {"inplace": True}).hint == "it takes no arguments"
    assert bad("conv", (8, 2.5)).where == 1
    assert bad("conv", (8, 3), {"stride": 0}).code == "E024"
    assert "integer" in bad("conv", (8, None)).message
    assert bad("gelu", ("fast",)).where == 0
    assert bad("upsample", (2,), {"size": 4}).code == "E023"
    assert bad("upsample").code == "E023"
    assert bad("upsample", (0,)).code == "E024"
    assert bad("upsample", (2,), {"align_corners": True}).where == "align_corners"
    assert bad("dropout", (1,)).code == "E024"
    assert bad("droppath", (0,)).code == "E024"
    assert bad("droppath", (1.5,)).code == "E024"
    assert bad("add", ([1, 1], [1, 0])).code == "E024"
    assert bad("mean", (1,)).code == "E024"
    assert bad("conv", (8, 3), {"pad": "full"}).where == "pad"
    assert bad("bn", (), {"eps": float("inf")}).code == "E050"
    assert OPS["conv"].bind([16.0, [3, 3]], {"pad": "same"})["out"] == 16


def test_type_names():
    assert [type_name(v) for v in (True, 1, 1.0, "s", [], (), {}, None)] == \
        ["bool", "int", "float", "string", "list", "tuple", "dict", "none"]


# ----------------------------------------------------------------------------- training behaviour

def test_droppath_training_and_eval():
    x = torch.ones(4000, 3)
    a, m, out = run("droppath", [(3,)], (0.75,), train=True, inputs=[x])
    rows = out.unique(dim=0)
    torch.testing.assert_close(rows, torch.tensor([[0.0] * 3, [1 / 0.75] * 3]))
    assert abs((out[:, 0] == 0).float().mean().item() - 0.25) < 0.04
    m.eval()
    assert torch.equal(m(x), x) and torch.equal(m(x), m(x))


def test_add_droppath_in_training():
    x, y = torch.ones(2000, 2), torch.zeros(2000, 2)
    _, m, out = run("add", [(2,), (2,)], (None, [0.5, 1]), train=True, inputs=[x, y])
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(m.eval()(x, y), x)


def test_mean_drop_path_keeps_one_input():
    values = (1.0, 2.0, 4.0)
    xs = [torch.full((3000, 2), v) for v in values]
    subsets = {sum(s) / len(s) for s in ([1.0], [2.0], [4.0], [1.0, 2.0], [1.0, 4.0], [2.0, 4.0], [1.0, 2.0, 4.0])}
    for drop in (0.5, 0.95):
        _, m, out = run("mean", [(2,)] * 3, (drop,), train=True, inputs=xs)
        seen = {round(v, 5) for v in out[:, 0].tolist()}
        assert seen <= {round(v, 5) for v in subsets} and 0.0 not in seen
        assert torch.equal(out[:, 0], out[:, 1])  # one decision per sample and input
        if drop == 0.95:  # nearly always all dropped: the rescued input is a random one
            assert {1.0, 2.0, 4.0} <= seen
        else:
            assert len(seen) == len(subsets)
    m.eval()
    assert torch.equal(m(*xs), m(*xs))
    torch.testing.assert_close(m(*xs), torch.full((3000, 2), 7 / 3))


def test_fractal_join_gradient():
    xs = [torch.randn(4, 3, requires_grad=True) for _ in range(2)]
    NS["fractal_join"](xs, 0.5, True).sum().backward()
    assert all(x.grad is not None for x in xs)


# ----------------------------------------------------------------------------- compile and export

class Chain(nn.Module):
    """Stateless ops chained in one graph, to check the forward code traces without breaks."""

    def __init__(self):
        super().__init__()
        s = [(4, 6, 6)]
        self.ops = [Built(n, OPS[n].bind(list(a), k), sh) for n, sh, a, k in [
            ("droppath", s, (0.8,), {}), ("add", s * 2, ([1, 0.5], [0.9, 1]), {}), ("mean", s * 2, (0.3,), {}),
            ("mul", s * 2, (), {}), ("channel_shuffle", s, (2,), {}), ("upsample", s, (2,), {"mode": "bilinear"}),
            ("dropout", s, (), {}), ("hardswish", s, (), {}), ("softmax", s, (), {}), ("maxpool", s, (2,), {}),
        ]]
        for i, b in enumerate(self.ops):
            self.add_module(f"b{i}", b)

    def forward(self, x):
        d, add, mean, mul, shuffle, up, drop, hsw, soft, pool = self.ops
        y = add(d(x), x)
        y = mul(mean(y, x), x)
        return pool(soft(hsw(drop(up(shuffle(y))))))


def test_compile_fullgraph():
    m = Chain().train()
    torch.compile(m, fullgraph=True, backend="eager")(torch.randn(BATCH, 4, 6, 6))


def test_export():
    m = Chain().eval()
    x = torch.randn(BATCH, 4, 6, 6)
    ep = torch.export.export(m, (x,))
    torch.testing.assert_close(ep.module()(x), m(x))


# ----------------------------------------------------------------------------- registry hygiene

def test_registry_metadata():
    elementwise = {n for n, op in OPS.items() if op.elementwise}
    assert elementwise == {"bn", "layernorm", "groupnorm", "lrn", "relu", "relu6", "leaky_relu", "gelu", "silu",
                           "sigmoid", "tanh", "hardswish", "softmax", "log_softmax", "add", "mean", "mul",
                           "instancenorm", "hardsigmoid", "hardtanh", "clamp", "mish", "elu", "prelu", "scale", "shift",
                           "sub", "layernorm_channels"}
    for op in OPS.values():
        assert op.category in CATEGORIES, op.name
        assert set(op.helpers) <= set(HELPERS), op.name
        assert (op.arity is None) == (op.category == "join"), op.name
    for name, src in HELPERS.items():
        ns = {"torch": torch, "F": F}
        exec(src, ns)
        assert callable(ns[name]) and ns[name].__name__ == name


def test_labels():
    def label(name, *args, **kw):
        return OPS[name].label(OPS[name].bind(list(args), kw))
    assert label("maxpool", 3, 2) == "maxpool 3x3/2"
    assert label("maxpool", 2) == "maxpool 2x2"
    assert label("linear", 1000) == "linear 1000"
    assert label("bn") == "bn"
    assert label("conv", 64, 3, stride=2) == "conv 3x3, 64, stride=2"
    assert label("conv", 64, [1, 7]) == "conv 1x7, 64"
    assert label("upsample", 2) == "upsample x2 nearest"
    assert label("dropout", 0.2) == "dropout 0.2"
    assert OPS["conv"].signature() == \
        'conv(out, kernel, stride=1, pad=0, dilation=1, groups=1, bias=true, padding_mode="zeros")'


def test_no_torch_import():
    code = "import sys, archdsl.ops; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name,hint", [
    ("deconv", "did you mean `conv_transpose`? (a transposed convolution)"),
    ("ConvTranspose2d", "`conv_transpose`"),
    ("swish", "`silu`"),
])
def test_names_from_elsewhere_hint_the_op(name, hint):
    e = error_of(f"network n() {{\n  input x: [3, 8, 8]\n  {name}(3, 2)\n}}\n")
    assert (e.code, e.span.line, e.span.col, e.message) == ("E010", 3, 3, f"unknown op or block `{name}`")
    assert hint in e.hint
