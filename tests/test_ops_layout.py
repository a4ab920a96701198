"""Layout, indexing, reductions, the last dim and the new joins against PyTorch: permute,
reshape, flatten(start, end), transpose, roll, select, slice, narrow, chunk, reduce_*,
linear over the last dim, layernorm_channels, concat(dim), sub, matmul, stack, and the one
dim rule (batch excluded, negative from the end) every op with a dim follows."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings, strategies as st
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.ops import HELPERS, OPS, BadArgument, ShapeProblem
from conftest import checked, error_of

NS = {"torch": torch, "nn": nn, "F": F}
for _src in HELPERS.values():
    exec(_src, NS)

FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NEW_OPS = {"permute", "reshape", "transpose", "roll", "select", "slice", "narrow", "chunk", "reduce_mean",
           "reduce_sum", "reduce_max", "layernorm_channels", "sub", "matmul", "stack"}


class Built(nn.Module):
    """One op as the compiler emits it: its module (if any) and its forward expression."""

    def __init__(self, name, a, shapes):
        super().__init__()
        op = OPS[name]
        spec = op.module(a, shapes, op.shape(a, shapes))
        self.mod = eval(spec[0], NS)(*spec[1], **spec[2]) if spec else None
        names = [f"x{i}" for i in range(len(shapes))]
        self.fn = eval(f"lambda self, {', '.join(names)}: {op.forward(a, names, 'self.mod', False)}", NS)

    def forward(self, *xs):
        return self.fn(self, *xs)


def run(name, shapes, args=(), kw=None, inputs=None, batch=2):
    """Bind, build and run the op; its shape, weights and MACs must be torch's."""
    op = OPS[name]
    a = op.bind(list(args), kw or {})
    y = op.shape(a, shapes)
    m = Built(name, a, shapes)
    xs = inputs if inputs is not None else [torch.randn(batch, *s) for s in shapes]
    with FlopCounterMode(display=False) as fc:
        out = m(*xs)
    assert tuple(out.shape) == (xs[0].shape[0], *y), (name, a, shapes)
    assert op.weights(a, shapes, y) == (sum(p.numel() for p in m.parameters()),
                                        sum(b.numel() for b in m.buffers())), (name, a, shapes)
    assert op.macs(a, shapes, y) == fc.get_total_flops() // 2 // xs[0].shape[0], (name, a, shapes)
    return m, out


def problem(name, shapes, args=(), kw=None) -> ShapeProblem:
    op = OPS[name]
    with pytest.raises(ShapeProblem) as e:
        op.shape(op.bind(list(args), kw or {}), shapes)
    return e.value


def shape_or_none(name, shapes, args=(), kw=None):
    op = OPS[name]
    try:
        return tuple(op.shape(op.bind(list(args), kw or {}), shapes))
    except ShapeProblem:
        return None


def torch_shape(f, *shapes):
    try:
        with torch.no_grad():
            return tuple(f(*(torch.zeros(1, *s) for s in shapes)).shape[1:])
    except (RuntimeError, IndexError, ValueError):
        return None


# ----------------------------------------------------------------------------- every op vs torch

CASES = [  # (op, input shapes, args, kwargs): the cases test_ops.CASES lacks for these ops
    ("permute", [(3, 4, 5)], (1, 2, 0), {}),
    ("permute", [(3, 4, 5)], ([2, -3, 1],), {}),
    ("permute", [(6,)], (0,), {}),
    ("reshape", [(3, 4, 5)], (12, -1), {}),
    ("reshape", [(3, 4, 5)], (5, 2, 6), {}),
    ("reshape", [(12,)], ([2, 3, 2],), {}),
    ("flatten", [(3, 4, 5)], (1,), {}),
    ("flatten", [(2, 3, 4, 5)], (), {"start": 1, "end": 2}),
    ("flatten", [(3, 4, 5)], (0, -2), {}),
    ("transpose", [(3, 4, 5)], (0, 2), {}),
    ("transpose", [(7, 5)], (-1, -2), {}),
    ("roll", [(3, 4, 5)], (2, 1), {}),
    ("roll", [(3, 4, 5)], ([-1, 3], [1, 2]), {}),
    ("select", [(7, 5)], (0, 0), {}),
    ("select", [(3, 4, 5)], (-1, -2), {}),
    ("slice", [(7, 5)], (1,), {}),
    ("slice", [(3, 8, 5)], (-6, 7), {"dim": 1, "step": 2}),
    ("slice", [(3, 8, 5)], (0, 100), {"dim": -1}),
    ("narrow", [(3, 8, 5)], (1, 2, 4), {}),
    ("narrow", [(3, 8, 5)], (-1, -3, 3), {}),
    ("chunk", [(6, 4, 4)], (3, 2), {}),
    ("chunk", [(7, 4, 4)], (3, -1), {}),
    ("chunk", [(3, 4, 9)], (4, 1), {"dim": -1}),
    ("reduce_mean", [(3, 4, 5)], (0,), {}),
    ("reduce_mean", [(3, 4, 5)], ([1, 2],), {"keepdim": True}),
    ("reduce_sum", [(2, 3, 4)], (0,), {}),
    ("reduce_sum", [(2, 3, 4)], ([-1, 0],), {}),
    ("reduce_max", [(3, 4, 5)], (-1,), {}),
    ("reduce_max", [(3, 4, 5)], ([0, 1, 2],), {"keepdim": True}),
    ("linear", [(6, 12)], (5,), {}),
    ("linear", [(6, 12)], (5, False), {"dim": 1}),
    ("linear", [(2, 6, 12)], (5,), {"dim": -1}),
    ("linear", [(12,)], (5,), {"dim": 0}),
    ("layernorm_channels", [(6, 5, 5)], (), {}),
    ("layernorm_channels", [(6, 5)], (1e-6,), {}),
    ("layernorm_channels", [(6, 2, 3, 4)], (), {"affine": False}),
    ("softmax", [(3, 4, 5)], (-1,), {}),
    ("concat", [(3, 4, 4), (3, 2, 4)], (), {"dim": 1}),
    ("concat", [(3, 4, 4), (3, 4, 1), (3, 4, 2)], (), {"dim": -1}),
    ("sub", [(3, 4, 4), (3, 1, 1)], (), {}),
    ("sub", [(1, 4), (3, 1)], (), {}),
    ("matmul", [(5, 3), (3, 7)], (), {}),
    ("matmul", [(2, 5, 3), (2, 3, 4)], (), {}),
    ("matmul", [(2, 1, 5, 3), (1, 4, 3, 2)], (), {}),
    ("stack", [(3, 4), (3, 4)], (), {}),
    ("stack", [(3, 4), (3, 4), (3, 4)], (), {"dim": -1}),
    ("stack", [(3, 4)], (), {"dim": 1}),
]


def test_cases_cover_the_new_ops():
    assert {c[0] for c in CASES} >= NEW_OPS and NEW_OPS <= set(OPS)


@pytest.mark.parametrize("name,shapes,args,kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_torch(name, shapes, args, kw):
    run(name, shapes, args, kw)


REFERENCES = [  # (op, shapes, args, kwargs, torch on the batched inputs)
    ("permute", [(3, 4, 5)], (1, 2, 0), {}, lambda x: x.permute(0, 2, 3, 1)),
    ("permute", [(3, 4, 5)], (-1, 0, 1), {}, lambda x: x.permute(0, 3, 1, 2)),
    ("reshape", [(3, 4, 5)], (-1, 10), {}, lambda x: x.reshape(2, 6, 10)),
    ("flatten", [(3, 4, 5)], (), {}, lambda x: x.reshape(2, -1)),
    ("flatten", [(3, 4, 5)], (1, 2), {}, lambda x: x.reshape(2, 3, 20)),
    ("transpose", [(3, 4, 5)], (0, -1), {}, lambda x: x.transpose(1, 3)),
    ("roll", [(3, 4, 5)], ([1, -2], [0, -1]), {}, lambda x: torch.roll(x, (1, -2), (1, 3))),
    ("select", [(7, 5)], (0, 0), {}, lambda x: x[:, 0]),
    ("select", [(3, 4, 5)], (-1, -2), {}, lambda x: x[..., -2]),
    ("slice", [(3, 8, 5)], (1, -1), {"dim": 1, "step": 3}, lambda x: x[:, :, 1:-1:3]),
    ("slice", [(3, 8, 5)], (2,), {"dim": -2}, lambda x: x[:, :, 2:]),
    ("narrow", [(3, 8, 5)], (-2, -5, 2), {}, lambda x: torch.narrow(x, 2, 3, 2)),
    ("chunk", [(7, 4)], (3, 2), {}, lambda x: x[:, 6:]),
    ("reduce_mean", [(3, 4, 5)], ([1, 2],), {}, lambda x: x.mean((2, 3))),
    ("reduce_sum", [(3, 4, 5)], (0,), {"keepdim": True}, lambda x: x.sum(1, keepdim=True)),
    ("reduce_max", [(3, 4, 5)], (-1,), {}, lambda x: x.max(-1).values),
    ("softmax", [(3, 4, 5)], (1,), {}, lambda x: torch.softmax(x, 2)),
    ("log_softmax", [(3, 4, 5)], (-2,), {}, lambda x: torch.log_softmax(x, -2)),
    ("sub", [(3, 4, 4), (3, 1, 4)], (), {}, lambda a, b: a - b),
    ("matmul", [(2, 5, 3), (1, 3, 4)], (), {}, lambda a, b: a @ b),
    ("stack", [(3, 4), (3, 4)], (), {"dim": 1}, lambda a, b: torch.stack([a, b], 2)),
    ("concat", [(3, 4), (3, 2)], (), {"dim": -1}, lambda a, b: torch.cat([a, b], -1)),
]


@pytest.mark.parametrize("name,shapes,args,kw,ref", REFERENCES, ids=[f"{r[0]}-{i}" for i, r in enumerate(REFERENCES)])
def test_numerics(name, shapes, args, kw, ref):
    xs = [torch.randn(2, *s) for s in shapes]
    _, out = run(name, shapes, args, kw, inputs=xs)
    torch.testing.assert_close(out, ref(*xs), rtol=0, atol=0)


@pytest.mark.parametrize("name,shapes,args,kw", [c for c in CASES if len(c[1]) == 1 and c[0] in NEW_OPS])
def test_inplace_contract_is_sound(name, shapes, args, kw):
    """Overwriting an op's output in place breaks backward only where ``keeps`` or ``view`` say so."""
    op = OPS[name]
    leaf = torch.randn(2, *shapes[0], requires_grad=True)
    _, y = run(name, shapes, args, kw, inputs=[torch.sigmoid(leaf)])
    try:
        F.relu(y, inplace=True).sum().backward()
        broke = False
    except RuntimeError as e:
        assert "modified by an inplace operation" in str(e) or "view and is being modified inplace" in str(e)
        broke = True
    assert broke <= (op.keeps == "output" or op.view), name
    assert not (op.view and op.fresh), name


def test_registry_metadata():
    for name in NEW_OPS:
        op = OPS[name]
        assert (op.arity is None) == (op.category == "join"), name
    assert {n for n in NEW_OPS if OPS[n].elementwise} == {"sub", "layernorm_channels"}
    assert OPS["flatten"].signature() == "flatten(start=0, end=-1)"
    assert OPS["linear"].signature() == "linear(out, bias=true, dim=none)"
    assert OPS["slice"].signature() == "slice(start, end=none, dim=0, step=1)"


def test_labels():
    def label(name, *args, **kw):
        return OPS[name].label(OPS[name].bind(list(args), kw))
    assert label("flatten") == "flatten" and label("flatten", 1, 2) == "flatten 1..2"
    assert label("permute", 1, 2, 0) == "permute 1, 2, 0"
    assert label("reduce_mean", [1, 2]) == "mean dim=[1, 2]"
    assert label("concat") == "concat" and label("concat", dim=1) == "concat dim=1"
    assert label("select", 0, 0) == "select 0 of dim 0"


# ----------------------------------------------------------------------------- shape rules, by hypothesis
# Dims are drawn one past either end: torch takes -(n + 1) as the batch, archdsl refuses it.

def inside(x, *ds, new=False) -> bool:
    n = len(x) + new
    return all(-n <= d < n for d in ds)


small = st.integers(1, 5)
shapes = st.lists(small, min_size=1, max_size=4).map(tuple)


@FAST
@given(shapes, st.data())
def test_permute_transpose_flatten_sizes(x, data):
    order = data.draw(st.permutations(range(len(x))))
    neg = [d - len(x) if data.draw(st.booleans()) else d for d in order]
    assert shape_or_none("permute", [x], neg) == torch_shape(lambda t: t.permute(0, *(d + 1 for d in order)), x)
    d0, d1 = (data.draw(st.integers(-len(x) - 1, len(x))) for _ in range(2))
    tdim = [d + 1 if d >= 0 else d for d in (d0, d1)]
    assert shape_or_none("transpose", [x], (d0, d1)) == \
        (torch_shape(lambda t: t.transpose(*tdim), x) if inside(x, d0, d1) else None)
    s, e = (data.draw(st.integers(-len(x) - 1, len(x))) for _ in range(2))
    ts, te = (d + 1 if d >= 0 else d for d in (s, e))
    assert shape_or_none("flatten", [x], (s, e)) == \
        (torch_shape(lambda t: torch.flatten(t, ts, te), x) if inside(x, s, e) else None)


@FAST
@given(shapes, st.data())
def test_reshape_sizes(x, data):
    want = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    if data.draw(st.booleans()):
        want[data.draw(st.integers(0, len(want) - 1))] = -1
    assert shape_or_none("reshape", [x], want) == torch_shape(lambda t: t.reshape(1, *want), x)


@FAST
@given(shapes, st.data())
def test_index_sizes(x, data):
    d = data.draw(st.integers(-len(x) - 1, len(x)))
    td = d + 1 if d >= 0 else d
    i = data.draw(st.integers(-6, 6))
    ok = inside(x, d) and len(x) > 1  # `select` keeps at least one dim
    assert shape_or_none("select", [x], (d, i)) == (torch_shape(lambda t: t.select(td, i), x) if ok else None)
    start, end = data.draw(st.integers(-7, 7)), data.draw(st.one_of(st.none(), st.integers(-7, 7)))
    step = data.draw(st.integers(1, 3))
    ix = lambda t: t[(slice(None),) * (td if d >= 0 else 1) + ((Ellipsis,) if d < 0 else ()) +  # noqa: E731
                     (slice(start, end, step),) + (slice(None),) * (-d - 1 if d < 0 else 0)]
    theirs = torch_shape(ix, x) if inside(x, d) else None
    assert shape_or_none("slice", [x], (start, end), {"dim": d, "step": step}) == \
        (theirs if theirs is None or 0 not in theirs else None)  # an empty slice is refused
    length = data.draw(st.integers(1, 6))
    assert shape_or_none("narrow", [x], (d, i, length)) == \
        (torch_shape(lambda t: t.narrow(td, i, length), x) if inside(x, d) else None)
    chunks = data.draw(st.integers(1, 6))
    assert shape_or_none("chunk", [x], (chunks, i), {"dim": d}) == \
        (torch_shape(lambda t: t.chunk(chunks, td)[i], x) if inside(x, d) else None)


@FAST
@given(shapes, st.data())
def test_reduction_and_roll_sizes(x, data):
    ds = data.draw(st.lists(st.integers(-len(x) - 1, len(x)), min_size=1, max_size=3))
    keep = data.draw(st.booleans())
    tds = tuple(d + 1 if d >= 0 else d for d in ds)
    for name, method in (("reduce_mean", "mean"), ("reduce_sum", "sum"), ("reduce_max", "amax")):
        mine = shape_or_none(name, [x], (ds,), {"keepdim": keep})
        theirs = torch_shape(lambda t: getattr(t, method)(tds, keepdim=keep), x) if inside(x, *ds) else None
        assert mine == (theirs if theirs != () else None)  # a single number per image is refused
    shifts = [data.draw(st.integers(-7, 7)) for _ in ds]
    assert shape_or_none("roll", [x], (shifts, ds)) == \
        (torch_shape(lambda t: torch.roll(t, shifts, tds), x) if inside(x, *ds) and
         len({d % len(x) for d in ds}) == len(ds) else None)


@FAST
@given(st.data())
def test_join_sizes(data):
    rank = data.draw(st.integers(1, 3))
    x = tuple(data.draw(st.integers(1, 4)) for _ in range(rank))
    ys = [tuple(data.draw(st.sampled_from([n, 1, n + 1])) for n in x) for _ in range(data.draw(st.integers(1, 2)))]
    d = data.draw(st.integers(-rank - 2, rank + 1))
    td = d + 1 if d >= 0 else d
    assert shape_or_none("concat", [x, *ys], (), {"dim": d}) == \
        (torch_shape(lambda *t: torch.cat(t, td), x, *ys) if inside(x, d) else None)
    assert shape_or_none("stack", [x, *ys], (), {"dim": d}) == \
        (torch_shape(lambda *t: torch.stack(t, td), x, *ys) if inside(x, d, new=True) else None)
    y = ys[0]
    assert shape_or_none("sub", [x, y]) == torch_shape(lambda a, b: a - b, x, y)
    if rank >= 2:
        k = data.draw(st.integers(1, 4))
        right = tuple(data.draw(st.sampled_from([n, 1])) for n in x[:-2]) + (data.draw(st.sampled_from([x[-1], 2])), k)
        assert shape_or_none("matmul", [x, right]) == torch_shape(torch.matmul, x, right)


@FAST
@given(st.lists(small, min_size=1, max_size=3).map(tuple), st.integers(1, 4), st.sampled_from([None, -1, 0]))
def test_linear_sizes(x, out, dim):
    mine = shape_or_none("linear", [x], (out,), {"dim": dim})
    last = dim == -1 or (dim == 0 and len(x) == 1) or (dim is None and len(x) <= 2)
    assert mine == (tuple(nn.Linear(x[-1], out)(torch.zeros(1, *x)).shape[1:]) if last else None)


# ----------------------------------------------------------------------------- specs, weights, numerics

def net(body: str, shape="[3, 8, 8]") -> str:
    return f"network t() {{\n    input x: {shape}\n{body}\n}}\n"


def macs(spec: str, x) -> int:
    """The summary's MACs of a spec, which must be FlopCounterMode's count over 2."""
    with FlopCounterMode(display=False) as fc:
        archdsl.loads(spec)(x)
    assert archdsl.summary(spec).totals["macs"] == fc.get_total_flops() // 2
    return fc.get_total_flops() // 2


def test_linear_on_tokens_is_nn_linear():
    m = archdsl.loads(net("    fc: linear(6)", "[5, 4]"))
    state = m.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {"fc.weight": (6, 4), "fc.bias": (6,)}
    ref = nn.Linear(4, 6)
    ref.load_state_dict({k[3:]: v for k, v in state.items()})
    x = torch.randn(1, 5, 4)
    torch.testing.assert_close(m(x), ref(x), rtol=0, atol=0)
    assert macs(net("    fc: linear(6)", "[5, 4]"), x) == 5 * 4 * 6


def test_linear_last_dim_of_a_feature_map():
    m = archdsl.loads(net("    fc: linear(5, dim=-1)", "[2, 3, 4]"))
    assert tuple(m.state_dict()["fc.weight"].shape) == (5, 4)
    x = torch.randn(1, 2, 3, 4)
    torch.testing.assert_close(m(x), F.linear(x, m.state_dict()["fc.weight"], m.state_dict()["fc.bias"]))
    assert macs(net("    fc: linear(5, dim=-1)", "[2, 3, 4]"), x) == 2 * 3 * 4 * 5


def test_layernorm_channels_is_convnext_layernorm2d():
    from torchvision.models.convnext import LayerNorm2d
    m = archdsl.loads(net("    conv(6, 1)\n    ln: layernorm_channels(eps=1e-6)"))
    state = m.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if k.startswith("ln.")} == {"ln.weight": (6,),
                                                                                  "ln.bias": (6,)}
    ref = LayerNorm2d(6, eps=1e-6)
    with torch.no_grad():
        ref.weight.normal_(), ref.bias.normal_()
        state["ln.weight"].copy_(ref.weight), state["ln.bias"].copy_(ref.bias)
    m.load_state_dict(state)
    x = torch.randn(2, 3, 8, 8)
    conv = getattr(m, "0")
    assert torch.equal(m(x), ref(conv(x)))  # the same kernels in the same order: bit for bit


def test_selective_kernel_attention():
    """SKNet's fuse and select (Li et al. 2019): softmax across the branches, per channel."""
    spec = net("""    u1 = a: conv(8, 3, pad=1)
    u2 = @x -> b: conv(8, 3, pad=2, dilation=2)
    add { @u1; @u2 } -> global_avgpool -> fc: conv(4, 1) -> relu
    z = {}
    mul {
        stack { @u1; @u2 }
        stack { @z -> fa: conv(8, 1); @z -> fb: conv(8, 1) } -> softmax(0)
    } -> reduce_sum(0)""", "[8, 6, 6]")
    m = archdsl.loads(spec)
    p = {k: v for k, v in m.state_dict().items()}
    x = torch.randn(2, 8, 6, 6)
    u1 = F.conv2d(x, p["a.weight"], p["a.bias"], padding=1)
    u2 = F.conv2d(x, p["b.weight"], p["b.bias"], padding=2, dilation=2)
    z = F.relu(F.conv2d((u1 + u2).mean((2, 3), keepdim=True), p["fc.weight"], p["fc.bias"]))
    logits = torch.stack([F.conv2d(z, p["fa.weight"], p["fa.bias"]), F.conv2d(z, p["fb.weight"], p["fb.bias"])], 1)
    att = logits.softmax(1)
    ref = (att * torch.stack([u1, u2], 1)).sum(1)
    torch.testing.assert_close(m(x), ref)
    assert tuple(m(x).shape) == (2, 8, 6, 6)
    assert macs(spec, x[:1]) == 2 * 8 * 8 * 9 * 36 + 8 * 4 + 2 * 4 * 8


def test_class_token_and_attention_over_tokens():
    spec = net("""    tokens = permute(1, 2, 0) -> flatten(0, 1)
    scores = matmul { linear(8, bias=false); linear(8, bias=false) -> transpose(0, 1) } -> softmax(-1)
    matmul { @scores; @tokens }
    select(0, 0)""", "[4, 3, 3]")
    g = checked(spec)
    assert g.node(g.outputs[0].node)["shape"] == (4,)
    m = archdsl.loads(spec)
    x = torch.randn(1, 4, 3, 3)
    t = x.permute(0, 2, 3, 1).flatten(1, 2)
    w = [v for k, v in m.state_dict().items()]
    s = torch.softmax((t @ w[0].T) @ (t @ w[1].T).transpose(1, 2), -1)
    torch.testing.assert_close(m(x), (s @ t)[:, 0])


def test_matmul_macs_match_flop_counter():
    spec = net("    matmul { reshape(2, 3, 4); slice(0, 20) -> reshape(1, 4, 5) -> slice(0, 3, dim=-1) }", "[24]")
    assert checked(spec).node(checked(spec).outputs[0].node)["shape"] == (2, 3, 3)
    assert macs(spec, torch.randn(1, 24)) == 2 * 3 * 4 * 3


def test_dense_and_plain_concat_unchanged():
    g = checked(net("    dense { conv(4, 3, pad=1); conv(4, 3, pad=1) }"))
    assert g.node(g.outputs[0].node)["shape"] == (11, 8, 8)
    assert OPS["concat"].forward({}, ["a", "b"], None, False) == "torch.cat([a, b], 1)"
    assert OPS["flatten"].forward(OPS["flatten"].bind([], {}), ["x"], None, False) == "torch.flatten(x, 1)"


def test_join_keywords_leave_names_alone():
    g = checked(net("    stacked = conv(4, 1)\n    sub1 = @x -> conv(4, 1)\n    sub { @stacked; @sub1 }"))
    assert g.node(g.outputs[0].node)["shape"] == (4, 8, 8)
    for word in ("sub", "stack", "matmul", "sdpa"):  # now keywords, as `concat` is
        assert error_of(net(f"    {word} = conv(4, 1)")).code == "E001"
        assert error_of(net(f"    let {word} = 3")).code == "E001"
    assert error_of(net("    sub(1)")).hint == "expected `{`"  # a join takes branches
    g = checked(net("    stack: conv(4, 1)"))  # labels are not names: `stack:` stays a label
    assert [g.node(n)["name"] for n in g.nodes()][-1] == "stack"


EVERYTHING = net("""    u1 = conv(8, 3, pad=1)
    u2 = @x -> conv(8, 3, pad=2, dilation=2)
    z = add { @u1; @u2 } -> global_avgpool -> conv(4, 1) -> relu
    mul { stack { @u1; @u2 }; stack { @z -> conv(8, 1); @z -> conv(8, 1) } -> softmax(0) } -> reduce_sum(0)
    layernorm_channels -> roll([1, -1], [1, 2]) -> slice(1, -1, dim=1) -> narrow(2, 0, 4) -> chunk(2, 1)
    tokens = permute(1, 2, 0) -> flatten(0, 1) -> linear(8)
    s = sub {
        matmul { {}; transpose(0, 1) } -> softmax(-1)
        matmul { {}; transpose(0, 1) } -> reduce_mean(0, keepdim=true)
    }
    concat(dim=1) { @s; @tokens } -> select(1, 0) -> reshape(4, 4) -> reduce_max(1, keepdim=true)""", "[8, 6, 6]")


def test_export_and_backward():
    """Every new op in one spec: it exports, and the compiler's in-place choices let backward run."""
    g = checked(EVERYTHING)
    assert NEW_OPS <= {g.node(n)["op"] for n in g.nodes()}
    m = archdsl.loads(EVERYTHING)
    x = torch.randn(2, 8, 6, 6)
    ep = torch.export.export(m.eval(), (x,))
    torch.testing.assert_close(ep.module()(x), m(x))
    m.train()(x.requires_grad_()).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- diagnostics

@pytest.mark.parametrize("body,shape,code,line,col,wording", [
    ("    softmax(dim=3)", "[3, 4, 4]", "E041", 3, 13, "dim=3 is out of range for an input of shape [3, 4, 4]"),
    ("    permute(dims=[1, 0])", "[3, 4, 4]", "E041", 3, 13, "`permute` got 2 dims for an input of shape [3, 4, 4]"),
    ("    permute(1, 1, 0)", "[3, 4, 4]", "E020", 3, 13, "`dims` names dim 1 twice"),
    ("    reshape(shape=[5, -1])", "[3, 4, 4]", "E041", 3, 13, "48 elements (input [3, 4, 4]) do not divide by 5"),
    ("    reshape(5, 10)", "[3, 4, 4]", "E041", 3, 13, "`reshape` to [5, 10] needs 50 elements, the input"),
    ("    reshape(-1, -1)", "[3, 4, 4]", "E020", 3, 13, "`reshape` takes at most one -1"),
    ("    reshape(0, 3)", "[3, 4, 4]", "E024", 3, 13, "`reshape` sizes must be positive or -1"),
    ("    flatten(start=2, end=1)", "[3, 4, 4]", "E041", 3, 13, "`flatten` from dim 2 to dim 1 runs backwards"),
    ("    flatten(end=3)", "[3, 4, 4]", "E041", 3, 13, "end=3 is out of range for an input of shape [3, 4, 4]"),
    ("    transpose(0, dim1=-4)", "[3, 4, 4]", "E041", 3, 18, "dim1=-4 is out of range"),
    ("    roll(shifts=[1, 2], dims=0)", "[3, 4, 4]", "E020", 3, 10,
     "`roll` needs one shift per dim, got 2 shifts for 1 dim"),
    ("    roll(1, dims=3)", "[3, 4, 4]", "E041", 3, 13, "dim 3 in `dims` is out of range"),
    ("    select(0, index=3)", "[3, 4, 4]", "E054", 3, 15, "index 3 is out of range for dim 0 of size 3"),
    ("    select(0, 0)", "[3]", "E041", 3, 5, "`select` would leave no dimension of the input [3]"),
    ("    slice(start=5, dim=1)", "[3, 4, 4]", "E045", 3, 11, "`slice` 5: of dim 1 (size 4) is empty"),
    ("    slice(0, step=0)", "[3, 4, 4]", "E024", 3, 14, "`step` must be at least 1"),
    ("    narrow(1, 2, length=3)", "[3, 4, 4]", "E054", 3, 18, "`narrow` from 2 for 3 runs past the end of dim 1"),
    ("    narrow(1, start=-5, length=1)", "[3, 4, 4]", "E054", 3, 15, "start -5 is out of range for dim 1 of size 4"),
    ("    linear(10, dim=2)", "[5, 4]", "E041", 3, 16, "dim=2 is out of range for an input of shape [5, 4]"),
    ("    chunk(4, index=3)", "[5, 4, 4]", "E054", 3, 14, "splits into 3 pieces (torch.chunk gives only 3 of size 2)"),
    ("    reduce_sum([0, 1, 2])", "[3, 4, 4]", "E041", 3, 5, "`reduce_sum` would leave no dimension"),
    ("    reduce_max(dim=[0, -3])", "[3, 4, 4]", "E020", 3, 16, "`dim` names dim 0 twice"),
    ("    conv(8, 3) -> linear(10)", "[3, 8, 8]", "E041", 3, 19, "`linear` needs a vector input, got [8, 6, 6]"),
    ("    linear(10, dim=0)", "[5, 4]", "E041", 3, 16, "`linear` works on the last dim, got dim=0"),
    ("    linear(10, true, -1)", "[5, 4]", "E021", 3, 22, "`linear` takes at most 2 positional arguments"),
    ("    layernorm_channels", "[6]", "E041", 3, 5, "`layernorm_channels` needs a feature map [C, ...], got [6]"),
    ("    concat(dim=1) { conv(4, 1); conv(4, 1, stride=2) }", "[3, 8, 8]", "E044", 3, 5,
     "concat inputs differ outside dim 1: input 1 is [4, 8, 8], input 2 is [4, 4, 4]"),
    ("    concat(dim=3) { {}; {} }", "[3, 8, 8]", "E041", 3, 12, "dim=3 is out of range for an input of shape"),
    ("    sub { {}; {}; {} }", "[3, 8, 8]", "E021", 3, 5, "`sub` takes exactly two branches (the first minus"),
    ("    sub { {}; conv(4, 1) }", "[3, 8, 8]", "E044", 3, 5, "`sub` inputs do not broadcast: [3, 8, 8], [4, 8, 8]"),
    ("    matmul { {}; {} }", "[3, 4]", "E044", 3, 5, "the left's last dim (4) must equal the right's second"),
    ("    matmul { {}; {} }", "[4]", "E044", 3, 5, "`matmul` needs two inputs of one rank, at least 2"),
    ("    stack(dim=4) { {}; {} }", "[3, 8, 8]", "E041", 3, 11, "dim=4 is out of range for stacking inputs of"),
    ("    stack { {}; conv(4, 1) }", "[3, 8, 8]", "E044", 3, 5, "`stack` needs inputs of one shape"),
])
def test_diagnostics(body, shape, code, line, col, wording):
    e = error_of(net(body, shape))
    assert e.code == code, e.render()
    assert wording in e.message, e.message
    assert (e.span.line, e.span.col) == (line, col), e.render()
    assert "Traceback" not in e.render()


def test_dim_hint_states_the_rule():
    e = error_of(net("    softmax(-4)"))
    assert e.hint == "dims count from 0, the first dim after the batch; -1 is the last"
    assert "input shape: [3, 8, 8]" in e.render()


def test_bind_errors():
    with pytest.raises(BadArgument) as e:
        OPS["permute"].bind([1, 2.5], {})
    assert e.value.code == "E020" and "integer" in e.value.message
    with pytest.raises(BadArgument) as e:
        OPS["reduce_mean"].bind([[]], {})
    assert "must not be empty" in e.value.message
    assert math.prod(OPS["reshape"].bind([2.0, 3], {})["shape"]) == 6  # integral floats, as everywhere
