"""`attention` (nn.MultiheadAttention, batch first) and the `sdpa` join against torch: state-dict
names and shapes, numerics, shape rules, MACs against FlopCounterMode and the diagnostics."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.ops import OPS

from conftest import checked, error_of


def tokens(body: str, shape=(10, 16)) -> str:
    return f"network t() {{\n    input x: {list(shape)}\n{body}\n}}\n"


def meta_macs(model, *shapes) -> int:
    """FlopCounterMode / 2 for one image, as tests/test_analyze.py counts: on the meta device
    with gradients off, where attention takes the unfused path whose matmuls torch counts."""
    with torch.device("meta"):
        xs = [torch.empty(1, *s) for s in shapes]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*xs)
    return counter.get_total_flops() // 2


def reference_mha(e, heads, **kw) -> nn.MultiheadAttention:
    return nn.MultiheadAttention(e, heads, batch_first=True, **kw)


# ----------------------------------------------------------------------------- attention

@pytest.mark.parametrize("bias", [True, False])
def test_attention_state_dict_is_multihead_attentions(bias):
    spec = tokens(f"    attn: attention(4, bias={'true' if bias else 'false'})", (10, 16))
    model = archdsl.loads(spec)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {f"attn.{k}": tuple(v.shape) for k, v in reference_mha(16, 4, bias=bias).state_dict().items()}
    assert ours == theirs
    expected = {"attn.in_proj_weight": (48, 16), "attn.out_proj.weight": (16, 16)}
    if bias:
        expected.update({"attn.in_proj_bias": (48,), "attn.out_proj.bias": (16,)})
    assert ours == expected
    g = checked(spec)
    params = 4 * 16 * 16 + (4 * 16 if bias else 0)
    assert g.total_params == params == sum(p.numel() for p in model.parameters())


def test_attention_numerics_equal_multihead_attention():
    model = archdsl.loads(tokens("    attn: attention(4, dropout=0.1)", (10, 16))).eval()
    ref = reference_mha(16, 4, dropout=0.1).eval()
    ref.load_state_dict({k.removeprefix("attn."): v for k, v in model.state_dict().items()})
    x = torch.randn(2, 10, 16)
    out = model(x)
    assert out.shape == (2, 10, 16)
    torch.testing.assert_close(out, ref(x, x, x, need_weights=False)[0], rtol=0, atol=0)
    with torch.no_grad():   # eval without grad: torch's fused fast path, the same numbers
        torch.testing.assert_close(model(x), ref(x, x, x)[0], rtol=1e-6, atol=1e-6)
    model.train(), ref.train()   # dropout on the attention weights, in training only
    torch.manual_seed(1)
    dropped = model(x)
    torch.manual_seed(1)
    torch.testing.assert_close(dropped, ref(x, x, x, need_weights=False)[0], rtol=0, atol=0)
    assert not torch.allclose(dropped, out)


def test_vit_encoder_block_loads_torchvisions_weights():
    """A ViT encoder block written with torchvision's names: its state dict loads strictly into
    ours and both give the same output."""
    vision_transformer = pytest.importorskip("torchvision.models.vision_transformer")
    spec = """
network encoder_block(dim = 32, heads = 4, mlp = 64) {
    input x: [10, dim]
    residual { ln_1: layernorm(eps=1e-6) -> self_attention: attention(heads) -> dropout(0.0) }
    residual {
        ln_2: layernorm(eps=1e-6)
        mlp: { linear(mlp) -> gelu -> dropout(0.0) -> linear(dim) -> dropout(0.0) }
    }
}
"""
    model = archdsl.loads(spec).eval()
    torch.manual_seed(0)
    ref = vision_transformer.EncoderBlock(4, 32, 64, 0.0, 0.0).eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 10, 32)
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
    s = archdsl.summary(spec)
    assert s.totals["macs"] == 4 * 10 * 32 * 32 + 2 * 10 * 10 * 32 + 2 * 10 * 32 * 64
    assert s.totals["params"] == sum(p.numel() for p in ref.parameters())
    with torch.device("meta"):
        meta = archdsl.loads(spec).eval()
    assert s.totals["macs"] == meta_macs(meta, (10, 32))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 6), st.integers(1, 4))
def test_attention_macs_and_shape_against_torch(length, head_dim, heads):
    e = head_dim * heads
    op = OPS["attention"]
    a = op.bind([heads], {})
    y = op.shape(a, [(length, e)])
    assert y == (length, e)
    with torch.device("meta"):
        ref = reference_mha(e, heads)
    assert op.macs(a, [(length, e)], y) == 4 * length * e * e + 2 * length * length * e == \
        meta_macs(lambda x: ref(x, x, x, need_weights=False)[0], (length, e))
    assert op.weights(a, [(length, e)], y) == (sum(p.numel() for p in ref.parameters()), 0)
    x = torch.randn(1, length, e)
    with torch.no_grad():
        assert tuple(reference_mha(e, heads)(x, x, x, need_weights=False)[0].shape[1:]) == y


def test_attention_summary_equals_flop_counter():
    spec = tokens("    layernorm -> attention(2) -> attention(8, bias=false)", (12, 16))
    s = archdsl.summary(spec)
    with torch.device("meta"):
        model = archdsl.loads(spec).eval()
    assert s.totals["macs"] == 2 * (4 * 12 * 16 * 16 + 2 * 12 * 12 * 16) == meta_macs(model, (12, 16))
    assert [r.op for r in s.rows][-2:] == ["attention 2 heads", "attention 8 heads"]
    # backward keeps each op's input: x (layernorm's), layernorm's output and the first attention's
    assert s.totals["saved_bytes"] == 3 * 12 * 16 * 4


def test_vit_b_16_macs_from_the_rules():
    """docs/analysis.md: the registry's rules give torchvision's vit_b_16 its published 17.56
    GFLOPS, FlopCounterMode / 2 on the meta device (the class token and position embedding
    are additions, no MACs)."""
    vision = pytest.importorskip("torchvision.models")

    def macs(name, shapes, *args, **kw):
        op = OPS[name]
        a = op.bind(list(args), kw)
        return op.macs(a, shapes, op.shape(a, shapes))
    length, e = 197, 768
    layer = (macs("attention", [(length, e)], 12) + macs("linear", [(length, e)], 3072)
             + macs("linear", [(length, 3072)], e))
    total = macs("conv", [(3, 224, 224)], e, 16, stride=16) + 12 * layer + macs("linear", [(e,)], 1000)
    with torch.device("meta"):
        model = vision.vit_b_16().eval()
    assert total == 17_563_828_224 == meta_macs(model, (3, 224, 224))


def test_flop_counter_misses_the_fused_cpu_kernels():
    """What docs/analysis.md states: on CPU with real tensors torch runs fused attention kernels
    that FlopCounterMode has no formula for."""
    ref = reference_mha(16, 4).eval()
    x = torch.randn(1, 10, 16)
    projections = 4 * 10 * 16 * 16
    with FlopCounterMode(display=False) as counter:   # grad on: the projections, then the fused sdpa
        ref(x, x, x, need_weights=False)
    assert counter.get_total_flops() // 2 == projections
    with torch.no_grad(), FlopCounterMode(display=False) as counter:   # no grad: the fast path, nothing
        ref(x, x, x, need_weights=False)
    assert counter.get_total_flops() == 0
    q = torch.randn(1, 2, 10, 8)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        F.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 0


# ----------------------------------------------------------------------------- sdpa

def test_sdpa_numerics_and_options():
    spec = tokens("    sdpa(causal=true, scale=0.3) { identity; k: layernorm; v: layernorm(dims=2) }", (6, 8))
    model = archdsl.loads(spec).eval()
    x = torch.randn(2, 6, 8)
    q, k, v = x, model.k(x), model.v(x)
    mask = torch.ones(6, 6, dtype=torch.bool).tril()
    weights = torch.softmax((q @ k.transpose(-2, -1) * 0.3).masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(model(x), weights @ v)
    plain = archdsl.loads(tokens("    sdpa { identity; identity; identity }", (6, 8))).eval()
    torch.testing.assert_close(plain(x), torch.softmax(x @ x.transpose(-2, -1) / math.sqrt(8), -1) @ x)


MHSA = """
block mhsa(heads, causal = false) {
    let tokens = in.shape[0]
    let dim = in.shape[1]
    sdpa(causal=causal) {
        q: linear(dim) -> reshape([tokens, heads, dim // heads]) -> transpose(0, 1)
        k: linear(dim) -> reshape([tokens, heads, dim // heads]) -> transpose(0, 1)
        v: linear(dim) -> reshape([tokens, heads, dim // heads]) -> transpose(0, 1)
    }
    transpose(0, 1) -> reshape([tokens, dim])
    out_proj: linear(dim)
}

network custom_attention(dim = 32, heads = 4) {
    input x: [10, dim]
    attn: mhsa(heads)
}
"""


def test_sdpa_block_is_multihead_attention():
    """Multi-head attention written out with `sdpa` computes what `attention` does, with
    in_proj split into q, k and v, and counts the same MACs."""
    model = archdsl.loads(MHSA).eval()
    ref = reference_mha(32, 4).eval()
    sd = model.state_dict()
    ref.load_state_dict({"in_proj_weight": torch.cat([sd[f"attn.{n}.weight"] for n in "qkv"]),
                         "in_proj_bias": torch.cat([sd[f"attn.{n}.bias"] for n in "qkv"]),
                         "out_proj.weight": sd["attn.out_proj.weight"], "out_proj.bias": sd["attn.out_proj.bias"]})
    x = torch.randn(2, 10, 32)
    torch.testing.assert_close(model(x), ref(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-6)
    assert archdsl.summary(MHSA).totals["macs"] == archdsl.summary(tokens("    attention(4)", (10, 32))).totals["macs"]
    with torch.device("meta"):
        meta = archdsl.loads(MHSA).eval()
    assert archdsl.summary(MHSA).totals["macs"] == meta_macs(meta, (10, 32)) == 4 * 10 * 32 * 32 + 2 * 10 * 10 * 32


def test_sdpa_dropout_only_in_training():
    model = archdsl.loads(tokens("    sdpa(dropout=0.5) { identity; identity; identity }", (6, 8)))
    x = torch.randn(1, 6, 8)
    model.eval()
    torch.testing.assert_close(model(x), F.scaled_dot_product_attention(x, x, x))
    model.train()
    torch.manual_seed(0)
    assert not torch.allclose(model(x), F.scaled_dot_product_attention(x, x, x))


def _sdpa_shapes():
    """(q, k, v) shapes, batch excluded: equal ranks, k and v share L, q and k share D, leading
    dims equal or 1."""
    def build(rank, heads, ones, lq, lk, d, dv):
        if rank == 2:
            return (lq, d), (lk, d), (lk, dv)
        h = [1 if one else heads for one in ones]
        return (h[0], lq, d), (h[1], lk, d), (h[2], lk, dv)
    return st.builds(build, st.sampled_from([2, 3]), st.integers(1, 3), st.tuples(st.booleans(), st.booleans(),
                     st.booleans()), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5))


@settings(max_examples=30, deadline=None)
@given(_sdpa_shapes(), st.booleans())
def test_sdpa_shape_and_macs_against_torch(shapes, causal):
    op = OPS["sdpa"]
    a = op.bind([], {"causal": causal})
    y = op.shape(a, list(shapes))
    xs = [torch.randn(1, *s) for s in shapes]
    out = F.scaled_dot_product_attention(*xs, is_causal=causal)
    assert tuple(out.shape[1:]) == y
    (lq, d), (lk, dv) = shapes[0][-2:], shapes[2][-2:]
    scores = math.prod(max(s, t) for s, t in zip(shapes[0][:-2], shapes[1][:-2]))   # q, k broadcast
    assert op.macs(a, list(shapes), y) == scores * lq * lk * d + math.prod(y[:-2]) * lq * lk * dv == \
        meta_macs(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal), *shapes)


def test_sdpa_summary_equals_flop_counter():
    spec = tokens("    sdpa { identity; layernorm; layernorm(dims=2) }", (3, 7, 8))
    s = archdsl.summary(spec)
    with torch.device("meta"):
        model = archdsl.loads(spec).eval()
    assert s.totals["macs"] == 3 * 7 * 7 * (8 + 8) == meta_macs(model, (3, 7, 8))
    assert s.rows[-1].op == "sdpa" and s.rows[-1].output == (3, 7, 8)


# ----------------------------------------------------------------------------- diagnostics

@pytest.mark.parametrize("body, shape, code, line, col, wording, hint", [
    ("    attention(3)", (10, 16), "E042", 3, 15, "heads=3 does not divide the embedding size 16",
     "16 divides into 2 or 4 heads"),
    ("    attention(heads=6)", (10, 16), "E042", 3, 15, "heads=6 does not divide the embedding size 16",
     "16 divides into 4 or 8 heads"),
    ("    attention(4)", (16, 8, 8), "E041", 3, 5,
     "`attention` needs a token sequence [L, E] (batch excluded), got [16, 8, 8]",
     "`flatten(1) -> transpose(0, 1)`"),
    ("    attention(4, dropout=1)", (10, 16), "E024", 3, 18, "`dropout` must be below 1, got 1.0", None),
    ("    sdpa { identity; identity }", (10, 16), "E044", 3, 5, "`sdpa` takes three branches, q, k and v, got 2",
     None),
    ("    sdpa { identity; identity; layernorm(dims=2) -> flatten }", (10, 16), "E041", 3, 5,
     "`sdpa` needs q, k and v as [L, D] or [heads, L, D] (batch excluded), got q [10, 16], k [10, 16], v [160]",
     None),
    ("    sdpa { identity; identity; pad(channels=1) }", (10, 16), "E044", 3, 5,
     "`sdpa` needs k and v with the same number of tokens, got q [10, 16], k [10, 16], v [12, 16]", None),
    ("    sdpa { identity; pad(spatial=1); pad(spatial=1) }", (10, 16), "E044", 3, 5,
     "`sdpa` needs q and k with the same feature size, got q [10, 16], k [10, 18], v [10, 18]", None),
    ("    sdpa { identity; pad(channels=[0, 1]); pad(channels=[0, 1]) }", (2, 10, 16), "E044", 3, 5,
     "`sdpa` inputs do not broadcast: q [2, 10, 16], k [3, 10, 16], v [3, 10, 16]", None),
    ("    sdpa(dropout=1.5) { identity; identity; identity }", (10, 16), "E024", 3, 10,
     "`dropout` must be at most 1, got 1.5", None),
])
def test_attention_diagnostics(body, shape, code, line, col, wording, hint):
    err = error_of(tokens(body, shape))
    rendered = err.render()
    assert (err.code, err.span.line, err.span.col) == (code, line, col), rendered
    assert wording in err.message, rendered
    if hint is not None:
        assert hint in (err.hint or ""), rendered
    assert "Traceback" not in rendered


def test_labels_and_signatures():
    assert OPS["attention"].signature() == "attention(heads, dropout=0.0, bias=true)"
    assert OPS["sdpa"].signature() == "sdpa(dropout=0.0, causal=false, scale=none)"
    assert OPS["attention"].label(OPS["attention"].bind([1], {})) == "attention 1 head"
    assert OPS["sdpa"].label(OPS["sdpa"].bind([], {"causal": True})) == "sdpa causal"
