"""Joins: ops with several inputs (concat, add, mean, mul, sub, matmul, stack)."""
from __future__ import annotations

from ..values import show
from .base import BadArgument, dim_of, numel, Op, P, register, same_shapes, ShapeProblem, _show, torch_dim


# ----------------------------------------------------------------------------- joins

@register
class Concat(Op):
    """Concatenation along ``dim`` (by default the channels); every other dimension must agree."""

    name, arity, category, fresh = "concat", None, "join", True
    params = (P("dim", "int", 0),)

    def shape(self, a, xs):
        first, dim = xs[0], a.get("dim", 0)  # `dense` makes its concats with no attributes
        d = dim_of(dim, first)
        where = "beyond the channel dimension" if d == 0 else f"outside dim {dim}"
        for i, x in enumerate(xs[1:], 2):
            if len(x) != len(first) or x[:d] + x[d + 1:] != first[:d] + first[d + 1:]:
                raise ShapeProblem(f"concat inputs differ {where}: input 1 is {list(first)}, input {i} is {list(x)}",
                                   code="E044")
        return (*first[:d], sum(x[d] for x in xs), *first[d + 1:])

    def forward(self, a, args, mod, inplace):
        return f"torch.cat([{', '.join(args)}], {torch_dim(a.get('dim', 0))})"

    def label(self, a):
        return "concat" if not a.get("dim", 0) else f"concat dim={a['dim']}"


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
        scale = a["scale"] or [1] * len(args)
        if inplace and a["survival"] is None and scale[0] == 1 and len(args) > 1:
            # the first input is a fresh tensor only this join reads: add into it, as torchvision's
            # blocks do (`out += identity`), which saves an allocation and a pass over memory
            return args[0] + "".join(f".add_({x})" if s == 1 else f".add_({x}, alpha={s!r})"
                                     for x, s in zip(args[1:], scale[1:]))
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


def broadcast(op: str, xs) -> tuple:
    """The shape inputs of one rank broadcast to, each dim equal or 1 (E044 otherwise)."""
    out = xs[0]
    for x in xs[1:]:
        if len(x) != len(out) or any(p != q and 1 not in (p, q) for p, q in zip(x, out)):
            raise ShapeProblem(f"`{op}` inputs do not broadcast: " + ", ".join(str(list(x)) for x in xs),
                               hint="each dimension must match or be 1, with equal ranks (batch excluded)",
                               code="E044")
        out = tuple(q if p == 1 else p for p, q in zip(x, out))
    return out


def two(op: str, xs, what: str) -> None:
    if len(xs) != 2:
        raise ShapeProblem(f"`{op}` takes exactly two branches ({what}), got {len(xs)}", code="E021")


@register
class Mul(Op):
    """Element-wise product, broadcasting size-1 dims (squeeze-excitation: (C, H, W) * (C, 1, 1))."""

    name, arity, category, keeps, fresh = "mul", None, "join", "input", True
    elementwise = True

    def shape(self, a, xs):
        return broadcast("mul", xs)

    def forward(self, a, args, mod, inplace):
        return " * ".join(args)


@register
class Sub(Op):
    """The first branch minus the second, broadcasting size-1 dims as ``mul``."""

    name, arity, category, fresh = "sub", None, "join", True
    elementwise = True

    def shape(self, a, xs):
        two("sub", xs, "the first minus the second")
        return broadcast("sub", xs)

    def forward(self, a, args, mod, inplace):
        return f"{args[0]} - {args[1]}"


@register
class Matmul(Op):
    """The matrix product of two branches per image, as ``torch.matmul`` on inputs of one rank (at
    least 2, batch excluded): the last two dims multiply, leading ones broadcast (each equal or 1)."""

    name, arity, category, keeps, fresh = "matmul", None, "join", "input", True

    def shape(self, a, xs):
        two("matmul", xs, "the left and the right factor")
        x, y = xs
        if len(x) != len(y) or len(x) < 2:
            raise ShapeProblem(f"`matmul` needs two inputs of one rank, at least 2 (batch excluded), got {list(x)} "
                               f"and {list(y)}", hint="`reshape` a vector to [1, n] or [n, 1] first", code="E044")
        if x[-1] != y[-2]:
            raise ShapeProblem(f"`matmul` of {list(x)} and {list(y)}: the left's last dim ({x[-1]}) must equal the "
                               f"right's second to last ({y[-2]})", hint="`transpose(-2, -1)` swaps a matrix's dims",
                               code="E044")
        lead = broadcast("matmul", [x[:-2], y[:-2]]) if len(x) > 2 else ()
        return (*lead, x[-2], y[-1])

    def macs(self, a, xs, y):
        return numel(y) * xs[0][-1]

    def forward(self, a, args, mod, inplace):
        return f"torch.matmul({args[0]}, {args[1]})"


@register
class Stack(Op):
    """Inputs of one shape stacked along a new dim ``dim`` of the output (``torch.stack``)."""

    name, arity, category, fresh = "stack", None, "join", True
    params = (P("dim", "int", 0),)

    def shape(self, a, xs):
        x = same_shapes("stack", xs)
        d = dim_of(a["dim"], x, new=True)
        return (*x[:d], len(xs), *x[d:])

    def forward(self, a, args, mod, inplace):
        return f"torch.stack([{', '.join(args)}], {torch_dim(a['dim'])})"

    def label(self, a):
        return "stack" if not a["dim"] else f"stack dim={a['dim']}"
