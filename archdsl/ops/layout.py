"""Layout: flatten, permute, reshape, transpose, roll, pad, channel shuffle. Every dim counts
with the batch excluded (``base.dim_of``)."""
from __future__ import annotations

from .base import _show, BadArgument, dim_of, dims_of, numel, Op, P, register, req, ShapeProblem, spatial, torch_dim


# ----------------------------------------------------------------------------- reshaping

class Variadic(Op):
    """An op whose first parameter takes every positional argument: ``permute(1, 2, 0)`` is
    ``permute([1, 2, 0])``."""

    def bind(self, args, kwargs):
        if len(args) > 1 or (args and not isinstance(args[0], (list, tuple))):
            args = [list(args)]
        return super().bind(args, kwargs)


@register
class Flatten(Op):
    """Dims ``start`` to ``end`` (inclusive, batch excluded) merged into one; by default all of
    them, ``[C, H, W]`` -> ``[C*H*W]``."""

    name, category, view = "flatten", "reshape", True
    params = (P("start", "int", 0), P("end", "int", -1))

    def span(self, a, x) -> tuple[int, int]:
        s, e = dim_of(a["start"], x, "start"), dim_of(a["end"], x, "end")
        if s > e:
            raise ShapeProblem(f"`flatten` from dim {a['start']} to dim {a['end']} runs backwards for an input of "
                               f"shape {list(x)}", hint="`start` must not come after `end`", arg="start",
                               code="E041")
        return s, e

    def shape(self, a, xs):
        s, e = self.span(a, xs[0])
        return (*xs[0][:s], numel(xs[0][s:e + 1]), *xs[0][e + 1:])

    def forward(self, a, args, mod, inplace):
        if a["end"] == -1:
            return f"torch.flatten({args[0]}, {torch_dim(a['start'])})"
        return f"torch.flatten({args[0]}, {torch_dim(a['start'])}, {torch_dim(a['end'])})"

    def label(self, a):
        return "flatten" if (a["start"], a["end"]) == (0, -1) else f"flatten {a['start']}..{a['end']}"


@register
class Permute(Variadic):
    """The non-batch dims reordered: ``permute(1, 2, 0)`` turns ``[C, H, W]`` into ``[H, W, C]``."""

    name, category, view = "permute", "reshape", True
    params = (req("dims", "ints"),)

    def shape(self, a, xs):
        x = xs[0]
        if len(a["dims"]) != len(x):
            raise ShapeProblem(f"`permute` got {len(a['dims'])} dim{'s' if len(a['dims']) != 1 else ''} for an input "
                               f"of shape {list(x)}", hint=f"name each of its {len(x)} dims once, e.g. "
                               f"permute({', '.join(map(str, range(len(x))))}) keeps them", arg="dims", code="E041")
        order = dims_of(a["dims"], x)
        return tuple(x[d] for d in order)

    def forward(self, a, args, mod, inplace):
        return f"{args[0]}.permute(0, {', '.join(str(torch_dim(d)) for d in a['dims'])})"

    def label(self, a):
        return f"permute {', '.join(map(str, a['dims']))}"


@register
class Reshape(Variadic):
    """A new shape for the non-batch dims, as ``torch.reshape``; one size may be -1."""

    name, category, view = "reshape", "reshape", True
    params = (req("shape", "ints"),)

    def check(self, a):
        if any(v < 1 and v != -1 for v in a["shape"]):
            raise BadArgument(f"`reshape` sizes must be positive or -1, got {_show(list(a['shape']))}", where=0,
                              code="E024")
        if a["shape"].count(-1) > 1:
            raise BadArgument(f"`reshape` takes at most one -1, got {_show(list(a['shape']))}", where=0,
                              hint="-1 stands for the one size the others leave")

    def shape(self, a, xs):
        x, want = xs[0], a["shape"]
        known = numel(v for v in want if v != -1)
        if -1 in want:
            if numel(x) % known:
                raise ShapeProblem(f"`reshape` to {_show(list(want))}: {numel(x)} elements (input {list(x)}) do not "
                                   f"divide by {known}", arg="shape", code="E041")
            return tuple(numel(x) // known if v == -1 else v for v in want)
        if known != numel(x):
            raise ShapeProblem(f"`reshape` to {_show(list(want))} needs {known} elements, the input {list(x)} has "
                               f"{numel(x)}", hint="the sizes must multiply up to the input's; one may be -1",
                               arg="shape", code="E041")
        return want

    def forward(self, a, args, mod, inplace):
        return f"{args[0]}.reshape({args[0]}.shape[0], {', '.join(map(str, a['shape']))})"

    def label(self, a):
        return f"reshape {list(a['shape'])}"


@register
class Transpose(Op):
    """Two non-batch dims swapped."""

    name, category, view = "transpose", "reshape", True
    params = (req("dim0"), req("dim1"))

    def shape(self, a, xs):
        x = list(xs[0])
        i, j = dim_of(a["dim0"], x, "dim0"), dim_of(a["dim1"], x, "dim1")
        x[i], x[j] = x[j], x[i]
        return tuple(x)

    def forward(self, a, args, mod, inplace):
        return f"{args[0]}.transpose({torch_dim(a['dim0'])}, {torch_dim(a['dim1'])})"

    def label(self, a):
        return f"transpose {a['dim0']}, {a['dim1']}"


@register
class Roll(Op):
    """``torch.roll`` over non-batch dims: each of ``dims`` shifted by its ``shifts`` entry, wrapping
    around (Swin's shifted windows)."""

    name, category, fresh = "roll", "reshape", True
    params = (req("shifts", "ints"), req("dims", "ints"))

    def check(self, a):
        if len(a["shifts"]) != len(a["dims"]):
            raise BadArgument(f"`roll` needs one shift per dim, got {len(a['shifts'])} shift"
                              f"{'s' if len(a['shifts']) != 1 else ''} for {len(a['dims'])} dim"
                              f"{'s' if len(a['dims']) != 1 else ''}", where="shifts")

    def shape(self, a, xs):
        dims_of(a["dims"], xs[0])
        return xs[0]

    def forward(self, a, args, mod, inplace):
        shifts, dims = a["shifts"], tuple(torch_dim(d) for d in a["dims"])
        if len(dims) == 1:
            return f"torch.roll({args[0]}, {shifts[0]}, {dims[0]})"
        return f"torch.roll({args[0]}, {shifts}, {dims})"

    def label(self, a):
        return f"roll {_show(list(a['shifts']))} dims={_show(list(a['dims']))}"


@register
class Pad(Op):
    """Constant padding: ``channels`` / ``spatial`` give ``n`` (each side) or ``[before, after]``.

    ResNet's option-A shortcut (He et al. 2015) pads the channels with zeros.
    """

    name, category = "pad", "reshape"
    params = (P("channels", "size", 0, min=0), P("spatial", "size", 0, min=0), P("value", "float", 0.0))

    def check(self, a):
        for key in ("channels", "spatial"):
            if isinstance(a[key], tuple) and len(a[key]) > 2:
                raise BadArgument(f"`{key}` takes n or [before, after], got {len(a[key])} values", where=key,
                                  code="E020")

    @staticmethod
    def sides(v) -> tuple:
        return v * 2 if isinstance(v, tuple) and len(v) == 1 else v if isinstance(v, tuple) else (v, v)

    def shape(self, a, xs):
        (cb, ca), (sb, sa) = self.sides(a["channels"]), self.sides(a["spatial"])
        x = spatial(xs, "pad", ranks=(1, 2, 3))  # torch's ConstantPad modules go up to 3 dims
        return (x[0] + cb + ca, *(n + sb + sa for n in x[1:]))

    def module(self, a, xs, y):
        (cb, ca), (sb, sa) = self.sides(a["channels"]), self.sides(a["spatial"])
        rank = len(xs[0])  # ConstantPad{rank}d pads the last `rank` dims: channels and spatial ones
        return f"nn.ConstantPad{rank}d", ((sb, sa) * (rank - 1) + (cb, ca), a["value"]), {}

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        return f"pad c{list(self.sides(a['channels']))} s{list(self.sides(a['spatial']))}"


@register
class ChannelShuffle(Op):
    """ShuffleNet's channel shuffle: channels as (groups, C / groups), transposed."""

    name, category, view = "channel_shuffle", "reshape", True  # with groups 1 or C
    params = (req("groups", min=1),)

    def shape(self, a, xs):
        if xs[0][0] % a["groups"]:
            raise ShapeProblem(f"groups={a['groups']} does not divide the {xs[0][0]} channels",
                               arg="groups", code="E042")
        return xs[0]

    def forward(self, a, args, mod, inplace):
        return f"{args[0]}.unflatten(1, ({a['groups']}, -1)).transpose(1, 2).flatten(1, 2)"

    def label(self, a):
        return f"channel_shuffle {a['groups']}"
