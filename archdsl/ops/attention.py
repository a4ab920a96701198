"""Attention: multi-head self-attention (nn.MultiheadAttention) and scaled dot-product attention.

Both work on token sequences, batch excluded: ``attention`` on ``[L, E]`` (L tokens of E
features, as torchvision's ViT feeds its encoder), ``sdpa`` on ``[L, D]`` or ``[H, L, D]``.

MACs (docs/analysis.md): the matrix products only, per image. Softmax, the ``1/sqrt(d)``
scaling, masking and dropout count nothing, as ``FlopCounterMode`` counts on the unfused
(math) path it takes on the meta device.
"""
from __future__ import annotations

import math

from ..values import show
from .base import BadArgument, Op, P, register, req, ShapeProblem, torch_kwargs


def _dropout_below_one(a: dict) -> None:
    if a["dropout"] >= 1:
        raise BadArgument(f"`dropout` must be below 1, got {show(a['dropout'])}", where="dropout", code="E024")


@register
class Attention(Op):
    """Multi-head self-attention over ``[L, E]``, torch's ``nn.MultiheadAttention(E, heads,
    batch_first=True)`` called as ``mod(x, x, x, need_weights=False)[0]``: the call torchvision's
    ViT encoder block makes, so a compiled ViT runs the kernels torchvision's does and loads its
    state dict (``in_proj_weight [3E, E]``, ``in_proj_bias [3E]``, ``out_proj.weight [E, E]``,
    ``out_proj.bias [E]``)."""

    name, category, fresh = "attention", "linear", True
    # What backward keeps: the input x (for the gradient of in_proj_weight), the projected q, k
    # and v (3·L·E), the attention's output before out_proj (L·E, for out_proj's weight gradient)
    # and, on the fused path, one logsumexp per head and token (on the math path the whole
    # [heads, L, L] weights instead). Only the input is a tensor of the graph; the intermediates
    # live inside the module and are not modelled, like lrn's (docs/analysis.md). The output
    # comes out of out_proj, a linear whose backward does not read it: ``fresh``.
    keeps = "input"
    params = (req("heads", min=1), P("dropout", "float", 0.0, min=0, max=1), P("bias", "bool", True))

    def check(self, a):
        _dropout_below_one(a)

    def shape(self, a, xs):
        x = xs[0]
        if len(x) != 2:
            raise ShapeProblem(f"`attention` needs a token sequence [L, E] (batch excluded), got {list(x)}",
                               hint="for a feature map [C, H, W], `flatten(1) -> transpose(0, 1)` gives its "
                                    "[H·W, C] tokens", code="E041")
        e, h = x[1], a["heads"]
        if e % h:
            divisors = {d for i in range(1, math.isqrt(e) + 1) if e % i == 0 for d in (i, e // i)}
            near = sorted(divisors, key=lambda d: (abs(d - h), d))[:2]
            raise ShapeProblem(f"heads={h} does not divide the embedding size {e}", arg="heads", code="E042",
                               hint=f"each head takes E / heads features; {e} divides into "
                                    f"{' or '.join(map(str, sorted(near)))} head{'s' if near != [1] else ''}")
        return x

    def weights(self, a, xs, y):
        e = xs[0][1]
        return 4 * e * e + (4 * e if a["bias"] else 0), 0

    def macs(self, a, xs, y):
        seq, e = xs[0]
        # q, k, v and out projections; scores q·kᵀ over all heads (L·L·E/heads each); weighted sum
        return 4 * seq * e * e + 2 * seq * seq * e

    def module(self, a, xs, y):
        return "nn.MultiheadAttention", (xs[0][1], a["heads"]), {**torch_kwargs(self, a, skip=("heads",)),
                                                                  "batch_first": True}

    def forward(self, a, args, mod, inplace):
        x = args[0]
        return f"{mod}({x}, {x}, {x}, need_weights=False)[0]"

    def label(self, a):
        return f"attention {a['heads']} head{'s' if a['heads'] != 1 else ''}"


@register
class Sdpa(Op):
    """Scaled dot-product attention, ``F.scaled_dot_product_attention``, as a join of three
    branches ``sdpa { q; k; v }``: ``softmax(q·kᵀ · scale [+ causal mask]) · v`` over inputs
    ``[L, D]`` or ``[H, L, D]`` (batch excluded, one rank for all three). k and v share L, q and
    k share D; the leading dims broadcast (each equal or 1)."""

    name, arity, category = "sdpa", None, "join"
    # Backward keeps q, k and v (counted) and, on the fused kernels, the output and a logsumexp
    # per row (not modelled: ``keeps`` names one side). The output is read by the fused kernels'
    # backward, so it is not ``fresh``.
    keeps = "input"
    params = (P("dropout", "float", 0.0, min=0, max=1), P("causal", "bool", False), P("scale", "float", None))

    def check(self, a):
        _dropout_below_one(a)

    def shape(self, a, xs):
        if len(xs) != 3:
            raise ShapeProblem(f"`sdpa` takes three branches, q, k and v, got {len(xs)}",
                               hint="e.g. `sdpa { linear(64); linear(64); linear(64) }`", code="E044")
        q, k, v = xs
        shapes = ", ".join(f"{n} {list(s)}" for n, s in zip("qkv", xs))
        if any(len(s) not in (2, 3) for s in xs):
            raise ShapeProblem(f"`sdpa` needs q, k and v as [L, D] or [heads, L, D] (batch excluded), got {shapes}",
                               hint="tokens [L, E] split into heads with `reshape([L, heads, E // heads]) -> "
                                    "transpose(0, 1)`", code="E041")
        if not len(q) == len(k) == len(v):
            raise ShapeProblem(f"`sdpa` needs q, k and v of one rank, got {shapes}", code="E044",
                               hint="give all three a heads dimension, or none")
        if k[-2] != v[-2]:
            raise ShapeProblem(f"`sdpa` needs k and v with the same number of tokens, got {shapes}", code="E044",
                               hint="k and v are [..., L, D]: one key per value")
        if q[-1] != k[-1]:
            raise ShapeProblem(f"`sdpa` needs q and k with the same feature size, got {shapes}", code="E044",
                               hint="q and k are [..., L, D] with one D: the scores are their dot products")
        lead = []
        for sizes in zip(q[:-2], k[:-2], v[:-2]):
            big = {s for s in sizes if s != 1}
            if len(big) > 1:
                raise ShapeProblem(f"`sdpa` inputs do not broadcast: {shapes}", code="E044",
                                   hint="each leading (heads) dimension must match or be 1")
            lead.append(big.pop() if big else 1)
        return (*lead, q[-2], v[-1])

    def macs(self, a, xs, y):
        q, k, v = xs
        # q·kᵀ for every leading index q and k broadcast to, then the weights times v for every
        # leading index of the output (a v with heads broadcasts scores shared by one q and k)
        scores = math.prod(max(s, t) for s, t in zip(q[:-2], k[:-2]))
        return q[-2] * k[-2] * (scores * q[-1] + math.prod(y[:-2]) * v[-1])

    def forward(self, a, args, mod, inplace):
        extra = ""
        if a["dropout"]:
            extra += f", dropout_p={show(a['dropout'])} if self.training else 0.0"
        if a["causal"]:
            extra += ", is_causal=True"
        if a["scale"] is not None:
            extra += f", scale={a['scale']!r}"
        return f"F.scaled_dot_product_attention({', '.join(args)}{extra})"

    def label(self, a):
        return "sdpa causal" if a["causal"] else "sdpa"
