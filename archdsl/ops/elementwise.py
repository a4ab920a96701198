"""Elementwise and scalar ops: clamp, and multiplying by or adding a constant. (The elementwise
activations, hardsigmoid, hardtanh, mish, elu, prelu and the others, are in ``activation``.)"""
from __future__ import annotations

from ..values import show
from .base import BadArgument, Op, P, register, req


@register
class Clamp(Op):
    """Values limited to [min, max]; either bound may be left open (``clamp(min=0)`` is relu)."""

    name, category, elementwise, keeps = "clamp", "activation", True, "input"
    params = (P("min", "float"), P("max", "float"))

    def check(self, a):
        lo, hi = a["min"], a["max"]
        if lo is None and hi is None:
            raise BadArgument("`clamp` needs `min`, `max` or both", code="E023",
                              hint="clamp(min=0), clamp(max=6), clamp(-1, 1)")
        if lo is not None and hi is not None and lo > hi:
            raise BadArgument(f"`min` must not be above `max`, got min={show(lo)}, max={show(hi)}",
                              where="max", code="E024")

    def forward(self, a, args, mod, inplace):
        bounds = [f"{k}={a[k]!r}" for k in ("min", "max") if a[k] is not None]
        return f"torch.clamp({args[0]}, {', '.join(bounds)})"

    def label(self, a):
        lo, hi = a["min"], a["max"]
        return f"clamp [{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"


@register
class Scale(Op):
    """Multiplication by a constant (a residual branch's 0.2 in Inception-ResNet, 1/√d in attention)."""

    name, category, elementwise, fresh = "scale", "other", True, True
    params = (req("factor", "float"),)

    def forward(self, a, args, mod, inplace):
        return f"{args[0]} * {a['factor']!r}"  # (always a new tensor: consumers may overwrite it)

    def label(self, a):
        return f"scale {a['factor']:g}"


@register
class Shift(Op):
    """Addition of a constant."""

    name, category, elementwise, fresh = "shift", "other", True, True
    params = (req("offset", "float"),)

    def forward(self, a, args, mod, inplace):
        o = a["offset"]
        return f"{args[0]} - {-o!r}" if o < 0 else f"{args[0]} + {o!r}"

    def label(self, a):
        return f"shift {a['offset']:+g}"
