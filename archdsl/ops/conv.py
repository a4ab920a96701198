"""Convolutions."""
from __future__ import annotations
import math


from .base import numel, Op, P, register, req, same_padding, ShapeProblem, size_text, spatial, torch_kwargs, torch_size, tup, window_out, _show


@register
class Conv(Op):
    """Convolution over 1-3 spatial dims (conv1d / conv2d / conv3d chosen by the input rank)."""

    name, category, keeps, fresh = "conv", "conv", "input", True
    params = (req("out", min=1), req("kernel", "size", min=1), P("stride", "size", 1, min=1),
              P("pad", "padding", 0, min=0), P("dilation", "size", 1, min=1), P("groups", "int", 1, min=1),
              P("bias", "bool", True),
              P("padding_mode", "str", "zeros", choices=("zeros", "reflect", "replicate", "circular")))

    def shape(self, a, xs):
        x = spatial(xs, "conv")
        c, sizes = x[0], x[1:]
        n = len(sizes)
        g = a["groups"]
        if c % g:
            raise ShapeProblem(f"groups={g} does not divide the {c} input channels", arg="groups", code="E042")
        if a["out"] % g:
            raise ShapeProblem(f"groups={g} does not divide the {a['out']} output channels", arg="groups", code="E042")
        k, s, d = tup(a["kernel"], n, "kernel"), tup(a["stride"], n, "stride"), tup(a["dilation"], n, "dilation")
        if a["pad"] == "same":
            if any(v != 1 for v in s):
                raise ShapeProblem('pad="same" needs stride 1 (as in PyTorch)', arg="pad", code="E043")
            p = tuple(max(same_padding(kk, dd)) for kk, dd in zip(k, d))
        else:
            p = (0,) * n if a["pad"] == "valid" else tup(a["pad"], n, "pad")
        mode = a["padding_mode"]
        for size, q in zip(sizes, p):
            if mode in ("reflect", "circular") and q > size - (mode == "reflect"):
                raise ShapeProblem(f"{mode} padding of {q} needs an input size of at least "
                                   f"{q + (mode == 'reflect')}, got {size}", arg="pad", code="E043")
        if a["pad"] == "same":
            return (a["out"], *sizes)
        return (a["out"], *window_out(sizes, k, s, p, d))

    def weights(self, a, xs, y):
        k = math.prod(tup(a["kernel"], len(xs[0]) - 1))
        return a["out"] * (xs[0][0] // a["groups"]) * k + (a["out"] if a["bias"] else 0), 0

    def macs(self, a, xs, y):
        k = math.prod(tup(a["kernel"], len(xs[0]) - 1))
        return numel(y) * (xs[0][0] // a["groups"]) * k

    def module(self, a, xs, y):
        return f"nn.Conv{len(xs[0]) - 1}d", (xs[0][0], a["out"], torch_size(a["kernel"])), \
            torch_kwargs(self, a, pad="padding")

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        extra = "".join(f", {n}={_show(a[n])}" for n in ("stride", "dilation", "groups") if a[n] != 1)
        return f"conv {size_text(a['kernel'])}, {a['out']}{extra}"
