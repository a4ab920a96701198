"""Selecting and reducing along a dim: select, slice, narrow, chunk, reductions. Every dim
counts with the batch excluded (``base.dim_of``)."""
from __future__ import annotations

from .base import _show, dim_of, dims_of, Op, P, register, req, ShapeProblem, torch_dim, torch_dims


def _index_source(d: int, piece: str) -> str:
    """``[:, :, piece]`` for dim 1 (batch excluded), ``[..., piece, :]`` for dim -2: an indexing
    that needs no rank."""
    if d >= 0:
        return "[" + ":, " * (d + 1) + piece + "]"
    return "[..., " + piece + ", :" * (-d - 1) + "]"


def _keeps_a_dim(op: str, x, removed: int, hint: str):
    if len(x) - removed < 1:
        raise ShapeProblem(f"`{op}` would leave no dimension of the input {list(x)} (a single number per image)",
                           hint=hint, code="E041")


@register
class Select(Op):
    """One index along a dim, the dim removed: the class token of a ``[L, E]`` sequence is
    ``select(0, 0)``."""

    name, category, view = "select", "reshape", True
    params = (req("dim"), req("index"))

    def shape(self, a, xs):
        x = xs[0]
        d = dim_of(a["dim"], x)
        _keeps_a_dim("select", x, 1, "a vector has one dim only; `slice` keeps it, with size 1")
        if not -x[d] <= a["index"] < x[d]:
            raise ShapeProblem(f"index {a['index']} is out of range for dim {a['dim']} of size {x[d]} "
                               f"(input {list(x)})", arg="index", code="E054")
        return x[:d] + x[d + 1:]

    def forward(self, a, args, mod, inplace):
        return f"{args[0]}.select({torch_dim(a['dim'])}, {a['index']})"

    def label(self, a):
        return f"select {a['index']} of dim {a['dim']}"


@register
class Slice(Op):
    """``start:end:step`` along a dim, with Python's slice semantics (negative ends count from
    the end, ends past the size are clamped), as torch indexes."""

    name, category, view = "slice", "reshape", True
    params = (req("start"), P("end", "int", None), P("dim", "int", 0), P("step", "int", 1, min=1))

    def shape(self, a, xs):
        x = list(xs[0])
        d = dim_of(a["dim"], x)
        n = len(range(*slice(a["start"], a["end"], a["step"]).indices(x[d])))
        if n == 0:
            raise ShapeProblem(f"`slice` {self.piece(a)} of dim {a['dim']} (size {x[d]}) is empty "
                               f"(input {list(xs[0])})", arg="start", code="E045")
        x[d] = n
        return tuple(x)

    @staticmethod
    def piece(a) -> str:
        return (f"{a['start']}:{'' if a['end'] is None else a['end']}"
                + (f":{a['step']}" if a["step"] != 1 else ""))

    def forward(self, a, args, mod, inplace):
        return args[0] + _index_source(a["dim"], self.piece(a))

    def label(self, a):
        return f"slice {self.piece(a)}" + (f" dim={a['dim']}" if a["dim"] else "")


@register
class Narrow(Op):
    """``length`` entries from ``start`` along a dim, as ``torch.narrow`` (a negative start counts
    from the end)."""

    name, category, view = "narrow", "reshape", True
    params = (req("dim"), req("start"), req("length", min=1))

    def shape(self, a, xs):
        x = list(xs[0])
        d = dim_of(a["dim"], x)
        if not -x[d] <= a["start"] <= x[d]:
            raise ShapeProblem(f"start {a['start']} is out of range for dim {a['dim']} of size {x[d]} "
                               f"(input {list(xs[0])})", arg="start", code="E054")
        start = a["start"] % x[d] if a["start"] < 0 else a["start"]
        if start + a["length"] > x[d]:
            raise ShapeProblem(f"`narrow` from {start} for {a['length']} runs past the end of dim {a['dim']} of "
                               f"size {x[d]} (input {list(xs[0])})", arg="length", code="E054")
        x[d] = a["length"]
        return tuple(x)

    def forward(self, a, args, mod, inplace):
        return f"{args[0]}.narrow({torch_dim(a['dim'])}, {a['start']}, {a['length']})"

    def label(self, a):
        return f"narrow {a['start']}+{a['length']}" + (f" dim={a['dim']}" if a["dim"] else "")


@register
class Chunk(Op):
    """The ``index``-th of ``torch.chunk``'s pieces: ``chunks`` pieces of ceil(size / chunks), the
    last one smaller (and fewer pieces where the sizes run out first, as torch)."""

    name, category, view = "chunk", "reshape", True
    params = (req("chunks", min=1), req("index"), P("dim", "int", 0))

    def shape(self, a, xs):
        x = list(xs[0])
        d = dim_of(a["dim"], x)
        each = -(-x[d] // a["chunks"])
        pieces = -(-x[d] // each)
        if not -pieces <= a["index"] < pieces:
            few = f" (torch.chunk gives only {pieces} of size {each})" if pieces < a["chunks"] else ""
            raise ShapeProblem(f"chunk {a['index']} is out of range: dim {a['dim']} of size {x[d]} splits into "
                               f"{pieces} piece{'s' if pieces != 1 else ''}{few}", arg="index", code="E054")
        i = a["index"] % pieces
        x[d] = min(each, x[d] - i * each)
        return tuple(x)

    def forward(self, a, args, mod, inplace):
        return f"{args[0]}.chunk({a['chunks']}, {torch_dim(a['dim'])})[{a['index']}]"

    def label(self, a):
        return f"chunk {a['index']} of {a['chunks']}" + (f" dim={a['dim']}" if a["dim"] else "")


# ----------------------------------------------------------------------------- reductions

class Reduce(Op):
    """A reduction along one dim or several (``dim`` an int or a list), the dims removed, or kept
    with size 1 (``keepdim=true``). Named ``reduce_*``: ``mean`` is a join, ``max`` and ``sum``
    are builtins."""

    category, fresh = "pool", True
    method = ""
    params = (req("dim", "ints"), P("keepdim", "bool", False))

    def shape(self, a, xs):
        x = xs[0]
        ds = dims_of(a["dim"], x, "dim") if len(a["dim"]) > 1 else (dim_of(a["dim"][0], x),)
        if a["keepdim"]:
            return tuple(1 if i in ds else n for i, n in enumerate(x))
        _keeps_a_dim(self.name, x, len(ds), "keep the reduced dims with `keepdim=true`")
        return tuple(n for i, n in enumerate(x) if i not in ds)

    def forward(self, a, args, mod, inplace):
        return f"{args[0]}.{self.method}({torch_dims(a['dim'])}{', keepdim=True' if a['keepdim'] else ''})"

    def label(self, a):
        return f"{self.name[7:]} dim={_show(a['dim'][0] if len(a['dim']) == 1 else list(a['dim']))}"


@register
class ReduceMean(Reduce):
    name, method = "reduce_mean", "mean"


@register
class ReduceSum(Reduce):
    name, method = "reduce_sum", "sum"


@register
class ReduceMax(Reduce):
    name, method, keeps, fresh = "reduce_max", "amax", "output", False  # its backward reads the output
