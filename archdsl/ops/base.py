"""The Op base: argument kinds, binding, the rules every op declares, the registry ``OPS``
and the shape helpers shared by the op modules. See ``archdsl/ops/__init__.py`` for the
package as a whole."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..values import describe, show

OPS: dict[str, "Op"] = {}


class ShapeProblem(Exception):
    """Raised by a shape rule; the elaborator turns it into a located ShapeError.

    ``arg`` names the attribute the problem is about (the caret goes there), ``code``
    is the diagnostic code.
    """

    def __init__(self, message: str, hint: str | None = None, arg: str | None = None, *, code: str):
        super().__init__(message)
        self.message, self.hint, self.arg, self.code = message, hint, arg, code


class BadArgument(Exception):
    """Raised while binding arguments; ``where`` is a parameter name or a positional index."""

    def __init__(self, message: str, where: str | int | None = None, hint: str | None = None, code: str = "E020"):
        super().__init__(message)
        self.message, self.where, self.hint, self.code = message, where, hint, code


# ----------------------------------------------------------------------------- argument kinds

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def as_int(v, what: str) -> int:
    """An integer, accepting floats with an integral value (``in.c / 2``)."""
    if _is_int(v):
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    if isinstance(v, float):
        raise BadArgument(f"{what} must be an integer, got {show(v)}",
                          hint="use `//` for integer division, or int(...) / round(...)")
    raise BadArgument(f"{what} must be an integer, got {describe(v)}")


def type_name(v) -> str:
    from ..values import type_name as tn
    return tn(v)


@dataclass(frozen=True)
class P:
    """One parameter of an op: name, kind, default (or ``required``), bounds and choices."""

    name: str
    kind: str = "int"           # int | float | bool | str | size | padding | floats | ints | any
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    required: bool = False

    def coerce(self, v):
        what = f"`{self.name}`"
        if v is None and not self.required and self.default is None:
            return None
        k = self.kind
        if k == "int":
            v = as_int(v, what)
        elif k == "float":
            if not _is_number(v):
                raise BadArgument(f"{what} must be a number, got {describe(v)}")
            v = float(v)
            if not math.isfinite(v):
                raise BadArgument(f"{what} must be finite, got {show(v)}", code="E050")
        elif k == "bool":
            if not isinstance(v, bool):
                raise BadArgument(f"{what} must be true or false, got {show(v)}")
        elif k == "str":
            if not isinstance(v, str):
                raise BadArgument(f"{what} must be a string, got {describe(v)}")
        elif k in ("size", "padding"):
            if k == "padding" and isinstance(v, str):
                if v not in ("same", "valid"):
                    raise BadArgument(f'{what} must be a size, "same" or "valid", got {show(v)}')
                return v
            if isinstance(v, (list, tuple)):
                if not 1 <= len(v) <= 3:
                    raise BadArgument(f"{what} must have 1 to 3 entries, got {len(v)}")
                v = tuple(as_int(x, what) for x in v)
                for x in v:
                    self._bounds(x, what)
                return v
            v = as_int(v, what)
        elif k == "ints":   # an int or a list of ints, of any length: a tuple of ints
            if isinstance(v, (list, tuple)):
                if not v:
                    raise BadArgument(f"{what} must not be empty")
                v = tuple(as_int(x, what) for x in v)
            else:
                v = (as_int(v, what),)
            for x in v:
                self._bounds(x, what)
            return v
        elif k == "floats":
            if _is_number(v):
                v = (float(v),)
            elif isinstance(v, (list, tuple)) and all(_is_number(x) for x in v):
                v = tuple(float(x) for x in v)
            else:
                raise BadArgument(f"{what} must be a number or a list of numbers, got {show(v)}")
            for x in v:
                if not math.isfinite(x):
                    raise BadArgument(f"{what} must be finite, got {show(x)}", code="E050")
                self._bounds(x, what)
            return v
        if self.choices and v not in self.choices:
            raise BadArgument(f"{what} must be one of {', '.join(map(repr, self.choices))}, got {show(v)}")
        if _is_number(v):
            self._bounds(v, what)
        return v

    def _bounds(self, v, what):
        if self.min is not None and v < self.min:
            raise BadArgument(f"{what} must be at least {self.min:g}, got {show(v)}", code="E024")
        if self.max is not None and v > self.max:
            raise BadArgument(f"{what} must be at most {self.max:g}, got {show(v)}", code="E024")


def req(name: str, kind: str = "int", **kw) -> P:
    """A required parameter."""
    return P(name, kind, required=True, **kw)


# PyTorch's keyword names that archdsl spells differently, for "did you mean" hints
TORCH_NAMES = {"padding": "pad", "kernel_size": "kernel", "out_channels": "out", "out_features": "out",
               "ceil_mode": "ceil", "negative_slope": "slope", "num_groups": "groups", "scale_factor": "scale",
               "inplace": None}


# ----------------------------------------------------------------------------- the Op base

class Op:
    """Base of every op. Subclasses set ``name``, ``params``, ``arity``, ``category``
    and override the rules they need; the defaults describe a shape-preserving,
    weight-free, MAC-free op."""

    name: str = ""
    params: tuple[P, ...] = ()
    arity: int | None = 1        # inputs; None: one or more (joins)
    category: str = "other"      # drawing and summary group: conv, linear, norm, activation,
                                 # pool, join, reshape, regularize, io
    helpers: tuple[str, ...] = ()  # prelude functions (HELPERS) the forward code uses
    elementwise: bool = False    # counted as elementwise work (reported apart from MACs)
    # Memory behaviour, read by the compiler (in-place ops) and the analysis (memory estimates):
    # ``keeps``: what the op's backward keeps besides weights: "input", "output" or None.
    # ``view``: the output may alias input 0 (so may any join given a single input).
    # ``fresh``: the output is a new tensor its backward does not read, so the one op that
    # consumes it may overwrite it (``forward(..., inplace=True)``); joins only with 2+ inputs.
    keeps: str | None = None
    view: bool = False
    fresh: bool = False

    def fresh_output(self, inputs: int) -> bool:
        """May the single consumer of this op's output overwrite it in place?"""
        return self.fresh and (self.arity is not None or inputs > 1)

    # --- binding
    def bind(self, args: list, kwargs: dict) -> dict:
        """Match positional and keyword arguments to ``params``; coerce and check each."""
        names = [p.name for p in self.params]
        if len(args) > len(self.params):
            raise BadArgument(f"`{self.name}` takes at most {len(self.params)} positional "
                              f"argument{'s' if len(self.params) != 1 else ''}, got {len(args)}",
                              where=len(self.params), code="E021")
        values = dict(zip(names, args))
        for key, v in kwargs.items():
            if key not in names:
                from ..errors import did_you_mean
                alias = TORCH_NAMES.get(key)
                hint = (f"did you mean `{alias}`? (PyTorch's `{key}`)" if alias in names else
                        did_you_mean(key, names) or
                        (f"its parameters are: {', '.join(names)}" if names else "it takes no arguments"))
                raise BadArgument(f"`{self.name}` has no parameter `{key}`", where=key, code="E022", hint=hint)
            if key in values:
                raise BadArgument(f"`{key}` given twice", where=key, code="E021")
            values[key] = v
        attrs = {}
        for i, p in enumerate(self.params):
            if p.name in values:
                try:
                    attrs[p.name] = p.coerce(values[p.name])
                except BadArgument as e:
                    e.where = p.name if p.name in kwargs else i
                    raise
            elif p.required:
                raise BadArgument(f"`{self.name}` needs `{p.name}`", code="E023",
                                  hint=f"signature: {self.signature()}")
            else:
                attrs[p.name] = p.default
        self.check(attrs)
        return attrs

    def signature(self) -> str:
        return f"{self.name}(" + ", ".join(
            p.name if p.required else f"{p.name}={_show(p.default)}" for p in self.params) + ")"

    def check(self, a: dict) -> None:
        """Cross-argument validation after binding (raise BadArgument)."""

    # --- rules
    def shape(self, a: dict, xs: list[tuple]) -> tuple:
        """Output shape from attributes and input shapes (raise ShapeProblem)."""
        return xs[0]

    def weights(self, a: dict, xs: list[tuple], y: tuple) -> tuple[int, int]:
        """(trainable parameters, buffer elements) of the op."""
        return 0, 0

    def macs(self, a: dict, xs: list[tuple], y: tuple) -> int:
        """Multiply-accumulates of one forward pass for one image."""
        return 0

    # --- torch, as source text
    def module(self, a: dict, xs: list[tuple], y: tuple) -> tuple[str, tuple, dict] | None:
        """``("nn.Conv2d", args, kwargs)`` for ops that own a module, else None. Ops own one
        when they have weights or buffers, or when the torch class depends on the input
        rank (``nn.MaxPool1d/2d/3d``), which ``forward`` does not see."""
        return None

    def forward(self, a: dict, args: list[str], mod: str | None, inplace: bool) -> str:
        """A Python expression computing the op from input expressions ``args``."""
        return args[0]

    # --- display
    def label(self, a: dict) -> str:
        """Short text for diagrams and tables, with the key hyperparameters."""
        return self.name


def register(cls):
    """Class decorator adding one instance of an Op subclass to ``OPS``."""
    op = cls()
    assert op.name and op.name not in OPS, op.name
    OPS[op.name] = op
    return cls


def _show(v) -> str:
    """A value as the language writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(map(_show, v)) + "]"
    return f'"{v}"' if isinstance(v, str) else str(v)


def tup(v, n: int, arg: str | None = None) -> tuple:
    """Expand an int or a 1-tuple to an n-tuple (PyTorch's _ntuple); ``arg`` names the attribute."""
    if isinstance(v, tuple):
        if len(v) == 1:
            return v * n
        if len(v) != n:
            raise ShapeProblem(f"{'`' + arg + '` has' if arg else 'got'} {len(v)} values for an input "
                               f"with {n} spatial dimension{'s' if n != 1 else ''}",
                               hint=f"give one value, or {n}", arg=arg, code="E041")
        return v
    return (v,) * n


def torch_size(v):
    """A size as torch source takes it: a 1-tuple becomes its value (torch does not expand it)."""
    return v[0] if isinstance(v, tuple) and len(v) == 1 else v


def size_text(v) -> str:
    """``3x3`` for a kernel of 3, ``3x1`` for (3, 1)."""
    return "x".join(map(str, v)) if isinstance(v, tuple) else f"{v}x{v}"


def numel(shape) -> int:
    return math.prod(shape)


def spatial(xs, op: str, ranks=(2, 3, 4)) -> tuple:
    """The one input's shape, checked to have a channel dimension and 1-3 spatial ones."""
    x = xs[0]
    if len(x) not in ranks:
        want = " or ".join(f"{r}-d" for r in ranks)
        raise ShapeProblem(f"`{op}` needs a {want} input (channels first, batch implicit), got {list(x)}",
                           hint="`flatten` turns a feature map into a vector; `linear` works on vectors",
                           code="E041")
    return x


DIM_HINT = "dims count from 0, the first dim after the batch; -1 is the last"


def dim_of(d: int, shape, arg: str = "dim", new: bool = False) -> int:
    """The one dim rule: ``d`` counted with the batch excluded (0 is the first non-batch dim,
    negative from the end) as a non-negative index into ``shape``; E041 when out of range.
    ``new``: a dim inserted in the output (``stack``), one more position than ``shape`` has."""
    n = len(shape) + (1 if new else 0)
    if not -n <= d < n:
        what = f"stacking inputs of shape {list(shape)}" if new else f"an input of shape {list(shape)}"
        raise ShapeProblem(f"{arg}={d} is out of range for {what}", hint=DIM_HINT, arg=arg, code="E041")
    return d % n


def dims_of(ds, shape, arg: str = "dims") -> tuple:
    """Several dims by :func:`dim_of`, each at most once."""
    out = []
    for d in ds:
        if not -len(shape) <= d < len(shape):
            raise ShapeProblem(f"dim {d} in `{arg}` is out of range for an input of shape {list(shape)}",
                               hint=DIM_HINT, arg=arg, code="E041")
        k = d % len(shape)
        if k in out:
            raise ShapeProblem(f"`{arg}` names dim {k} twice (as {_show(list(ds))}) for an input of shape "
                               f"{list(shape)}", arg=arg, code="E020")
        out.append(k)
    return tuple(out)


def torch_dim(d: int) -> int:
    """Torch's dim for a batch-excluded one: ``d + 1`` for ``d >= 0``, ``d`` otherwise."""
    return d + 1 if d >= 0 else d


def torch_dims(ds) -> str:
    """Source of torch's dim argument for one dim or several (a tuple)."""
    if not isinstance(ds, (list, tuple)):
        return str(torch_dim(ds))
    if len(ds) == 1:
        return str(torch_dim(ds[0]))
    return "(" + ", ".join(str(torch_dim(d)) for d in ds) + ")"


def conv_out(size: int, k: int, s: int, p: int, d: int, ceil: bool = False) -> int:
    """PyTorch's output length for conv and pooling windows."""
    span = size + 2 * p - d * (k - 1) - 1
    if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
            out -= 1
        return out
    return span // s + 1


def window_out(sizes, k, s, p, d, ceil: bool = False) -> tuple:
    """Output sizes of a sliding window over ``sizes``; E045 where one would be empty."""
    out = tuple(conv_out(*t, ceil) for t in zip(sizes, k, s, p, d))
    for i, o in enumerate(out):
        if o < 1:
            raise ShapeProblem(
                f"output size would be {o} along spatial dimension {i + 1}: input size {sizes[i]}, "
                f"kernel {k[i]}, stride {s[i]}, padding {p[i]}, dilation {d[i]}",
                hint="use a smaller kernel, stride or dilation, more padding, or a larger input",
                arg="kernel", code="E045")
    return out


def same_padding(k: int, d: int) -> tuple[int, int]:
    """(left, right) padding of PyTorch's ``padding="same"``: the extra one goes right."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def torch_kwargs(op: "Op", a: dict, skip=(), **rename) -> dict:
    """Optional attributes that differ from their defaults, under torch's keyword names."""
    return {rename.get(p.name, p.name): torch_size(a[p.name]) for p in op.params
            if not p.required and p.name not in skip and a[p.name] != p.default}


def same_shapes(op: str, xs) -> tuple:
    """The one shape all inputs share (E044 otherwise)."""
    if any(x != xs[0] for x in xs[1:]):
        raise ShapeProblem(f"`{op}` needs inputs of one shape, got " + ", ".join(str(list(x)) for x in xs),
                           hint="`conv` with kernel 1 or a pool can match channels or sizes", code="E044")
    return xs[0]


# ----------------------------------------------------------------------------- prelude helpers
# Source of the functions forward code may call; the compiler pastes in those an op names.

HELPERS: dict[str, str] = {
    "drop_path": '''\
def drop_path(x, survival: float, training: bool):
    """Stochastic depth: in training, keep each sample with probability survival and scale it
    by 1 / survival, zero it otherwise; the identity in eval."""
    if not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(survival)
    return x * keep.div_(survival)
''',
    "fractal_join": '''\
def fractal_join(xs: list, drop: float, training: bool):
    """FractalNet's join with local drop-path: the mean of the inputs; in training each input
    is dropped per sample with probability drop, one random input is kept where all were
    dropped, and the kept ones are averaged."""
    x = torch.stack(xs)
    if not training:
        return x.mean(0)
    n, b = x.shape[0], x.shape[1]
    keep = torch.rand(n, b, device=x.device) >= drop
    pick = torch.arange(n, device=x.device).unsqueeze(1) == torch.randint(n, (1, b), device=x.device)
    keep = (keep | (pick & ~keep.any(0))).to(x.dtype).view((n, b) + (1,) * (x.dim() - 2))
    return (x * keep).sum(0) / keep.sum(0)
''',
}
