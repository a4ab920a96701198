"""Joins: ops with several inputs (concat, add, mean, mul)."""
from __future__ import annotations

from ..values import show
from .base import BadArgument, Op, P, register, same_shapes, ShapeProblem, _show


# ----------------------------------------------------------------------------- joins

@register
class Concat(Op):
    """Channel concatenation; every other dimension must agree."""

    name, arity, category, fresh = "concat", None, "join", True

    def shape(self, a, xs):
        first = xs[0]
        for i, x in enumerate(xs[1:], 2):
            if len(x) != len(first) or x[1:] != first[1:]:
                raise ShapeProblem(f"concat inputs differ beyond the channel dimension: "
                                   f"input 1 is {list(first)}, input {i} is {list(x)}", code="E044")
        return (sum(x[0] for x in xs), *first[1:])

    def forward(self, a, args, mod, inplace):
        return f"torch.cat([{', '.join(args)}], 1)"


@register
class Add(Op):
    """Sum of same-shape inputs, input i scaled by ``scale[i]`` after drop-path with ``survival[i]``."""

    name, arity, category, fresh = "add", None, "join", True
    elementwise = True
    helpers = ("drop_path",)
    params = (P("scale", "floats"), P("survival", "floats", min=0, max=1))

    def check(self, a):
        if a["survival"] is not None and min(a["survival"]) <= 0:
            raise BadArgument(f"`survival` values must be above 0, got {_show(a['survival'])}",
                              where="survival", code="E024")

    def shape(self, a, xs):
        for key in ("scale", "survival"):
            if a[key] is not None and len(a[key]) != len(xs):
                raise ShapeProblem(f"`{key}` has {len(a[key])} value{'s' if len(a[key]) != 1 else ''} "
                                   f"for {len(xs)} inputs", hint="give one value per input", arg=key, code="E046")
        return same_shapes("add", xs)

    def forward(self, a, args, mod, inplace):
        terms = []
        for i, x in enumerate(args):
            if a["survival"] is not None and a["survival"][i] != 1:
                x = f"drop_path({x}, {a['survival'][i]!r}, self.training)"
            if a["scale"] is not None and a["scale"][i] != 1:
                x = f"{a['scale'][i]!r} * {x}"
            terms.append(x)
        return " + ".join(terms)


@register
class Mean(Op):
    """Element-wise mean of same-shape inputs, with FractalNet's local drop-path in training
    (Larsson et al. 2017): inputs dropped with probability ``drop_path``, at least one kept."""

    name, arity, category, fresh = "mean", None, "join", True
    elementwise = True
    helpers = ("fractal_join",)
    params = (P("drop_path", "float", 0.0, min=0, max=1),)

    def check(self, a):
        if a["drop_path"] >= 1:
            raise BadArgument(f"`drop_path` must be below 1, got {show(a['drop_path'])}", where="drop_path", code="E024")

    def shape(self, a, xs):
        return same_shapes("mean", xs)

    def forward(self, a, args, mod, inplace):
        if a["drop_path"]:
            return f"fractal_join([{', '.join(args)}], {show(a['drop_path'])}, self.training)"
        return args[0] if len(args) == 1 else f"({' + '.join(args)}) / {len(args)}"


@register
class Mul(Op):
    """Element-wise product, broadcasting size-1 dims (squeeze-excitation: (C, H, W) * (C, 1, 1))."""

    name, arity, category, keeps, fresh = "mul", None, "join", "input", True
    elementwise = True

    def shape(self, a, xs):
        out = xs[0]
        for x in xs[1:]:
            if len(x) != len(out) or any(p != q and 1 not in (p, q) for p, q in zip(x, out)):
                raise ShapeProblem("`mul` inputs do not broadcast: " + ", ".join(str(list(x)) for x in xs),
                                   hint="each dimension must match or be 1, with equal ranks (batch excluded)",
                                   code="E044")
            out = tuple(q if p == 1 else p for p, q in zip(x, out))
        return out

    def forward(self, a, args, mod, inplace):
        return " * ".join(args)
