"""The op registry: every op declared once, with its signature, shape rule, weight
count, MAC count, torch code and drawing category.

Shapes exclude the batch dimension: ``(C, H, W)`` for images, ``(C, L)`` for
sequences, ``(F,)`` for vectors. Shape rules follow PyTorch's formulas exactly.

Adding an op is adding one class here::

    @register
    class Relu(Op):
        name, category = "relu", "activation"
        def forward(self, a, args, mod, inplace):
            return f"F.relu({args[0]}, inplace={inplace})"

Nothing in this module imports torch: builders are *source text* (a constructor
name with arguments, and a forward expression) that ``compile.py`` turns into a
module, and that ``archdsl compile -o`` writes out as a standalone file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

OPS: dict[str, "Op"] = {}


class ShapeProblem(Exception):
    """Raised by a shape rule; the elaborator turns it into a located ShapeError.

    ``arg`` names the attribute the problem is about (the caret goes there), ``code``
    is the diagnostic code.
    """

    def __init__(self, message: str, hint: str | None = None, arg: str | None = None, code: str = "E040"):
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
        raise BadArgument(f"{what} must be an integer, got {v!r}",
                          hint="use `//` for integer division, or int(...) / round(...)")
    raise BadArgument(f"{what} must be an integer, got {type_name(v)} {v!r}")


def type_name(v) -> str:
    from .values import type_name as tn
    return tn(v)


@dataclass(frozen=True)
class P:
    """One parameter of an op: name, kind, default (``REQUIRED`` if none) and bounds."""

    name: str
    kind: str = "int"           # int | float | bool | str | size | padding | floats | any
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
                raise BadArgument(f"{what} must be a number, got {type_name(v)} {v!r}")
            v = float(v)
            if not math.isfinite(v):
                raise BadArgument(f"{what} must be finite, got {v!r}", code="E025")
        elif k == "bool":
            if not isinstance(v, bool):
                raise BadArgument(f"{what} must be true or false, got {v!r}")
        elif k == "str":
            if not isinstance(v, str):
                raise BadArgument(f"{what} must be a string, got {type_name(v)} {v!r}")
        elif k in ("size", "padding"):
            if k == "padding" and isinstance(v, str):
                if v not in ("same", "valid"):
                    raise BadArgument(f'{what} must be a size, "same" or "valid", got {v!r}')
                return v
            if isinstance(v, (list, tuple)):
                if not 1 <= len(v) <= 3:
                    raise BadArgument(f"{what} must have 1 to 3 entries, got {len(v)}")
                v = tuple(as_int(x, what) for x in v)
                for x in v:
                    self._bounds(x, what)
                return v
            v = as_int(v, what)
        elif k == "floats":
            if _is_number(v):
                v = (float(v),)
            elif isinstance(v, (list, tuple)) and all(_is_number(x) for x in v):
                v = tuple(float(x) for x in v)
            else:
                raise BadArgument(f"{what} must be a number or a list of numbers, got {v!r}")
            for x in v:
                if not math.isfinite(x):
                    raise BadArgument(f"{what} must be finite, got {x!r}", code="E025")
                self._bounds(x, what)
            return v
        if self.choices and v not in self.choices:
            raise BadArgument(f"{what} must be one of {', '.join(map(repr, self.choices))}, got {v!r}")
        if _is_number(v):
            self._bounds(v, what)
        return v

    def _bounds(self, v, what):
        if self.min is not None and v < self.min:
            raise BadArgument(f"{what} must be at least {self.min:g}, got {v!r}", code="E024")
        if self.max is not None and v > self.max:
            raise BadArgument(f"{what} must be at most {self.max:g}, got {v!r}", code="E024")


def req(name: str, kind: str = "int", **kw) -> P:
    """A required parameter."""
    return P(name, kind, required=True, **kw)


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
    helpers: tuple[str, ...] = ()  # prelude functions (compile.HELPERS) the forward code uses
    elementwise: bool = False    # counted as elementwise work (reported apart from MACs)

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
                from .errors import did_you_mean
                raise BadArgument(f"`{self.name}` has no parameter `{key}`", where=key, code="E022",
                                  hint=did_you_mean(key, names) or
                                  (f"its parameters are: {', '.join(names)}" if names else "it takes no arguments"))
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
        """``("nn.Conv2d", args, kwargs)`` for ops that own a module, else None."""
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
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    return repr(v) if isinstance(v, str) else str(v)


def tup(v, n: int) -> tuple:
    """Expand an int or a 1-tuple to an n-tuple (PyTorch's _ntuple)."""
    if isinstance(v, tuple):
        if len(v) == 1:
            return v * n
        if len(v) != n:
            raise ShapeProblem(f"expected {n} values for a {n}-d input, got {len(v)}")
        return v
    return (v,) * n


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


def conv_out(size: int, k: int, s: int, p: int, d: int, ceil: bool = False) -> int:
    """PyTorch's output length for conv and pooling windows."""
    span = size + 2 * p - d * (k - 1) - 1
    if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
            out -= 1
        return out
    return span // s + 1


def same_padding(k: int, d: int) -> tuple[int, int]:
    total = d * (k - 1)
    return total // 2, total - total // 2


# ----------------------------------------------------------------------------- ops
# Sources: PyTorch's documented shape formulas (torch.nn.Conv2d, MaxPool2d, ...).

@register
class Input(Op):
    name, arity, category = "input", 0, "io"


@register
class Identity(Op):
    name, category = "identity", "other"


@register
class Conv(Op):
    """Convolution over 1-3 spatial dims (conv1d / conv2d / conv3d chosen by the input rank)."""

    name, category = "conv", "conv"
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
        k, s, d = tup(a["kernel"], n), tup(a["stride"], n), tup(a["dilation"], n)
        if a["pad"] == "same":
            if any(v != 1 for v in s):
                raise ShapeProblem('pad="same" needs stride 1 (as in PyTorch)', arg="pad", code="E043")
            return (a["out"], *sizes)
        p = (0,) * n if a["pad"] == "valid" else tup(a["pad"], n)
        out = tuple(conv_out(*t) for t in zip(sizes, k, s, p, d))
        return (a["out"], *out)

    def weights(self, a, xs, y):
        k = math.prod(tup(a["kernel"], len(xs[0]) - 1))
        return a["out"] * (xs[0][0] // a["groups"]) * k + (a["out"] if a["bias"] else 0), 0

    def macs(self, a, xs, y):
        k = math.prod(tup(a["kernel"], len(xs[0]) - 1))
        return numel(y) * (xs[0][0] // a["groups"]) * k

    def module(self, a, xs, y):
        n = len(xs[0]) - 1
        kw = {}
        for key, torch_key, default in (("stride", "stride", 1), ("pad", "padding", 0),
                                        ("dilation", "dilation", 1), ("groups", "groups", 1),
                                        ("bias", "bias", True), ("padding_mode", "padding_mode", "zeros")):
            if a[key] != default:
                kw[torch_key] = a[key]
        return f"nn.Conv{n}d", (xs[0][0], a["out"], a["kernel"]), kw

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        k = a["kernel"]
        ks = "x".join(map(str, k)) if isinstance(k, tuple) else f"{k}x{k}"
        extra = "".join(f", {n}={_show(a[n])}" for n in ("stride", "dilation", "groups") if a[n] != 1)
        return f"conv {ks}, {a['out']}{extra}"


@register
class Relu(Op):
    name, category = "relu", "activation"
    elementwise = True

    def forward(self, a, args, mod, inplace):
        return f"F.relu({args[0]}, inplace=True)" if inplace else f"F.relu({args[0]})"


@register
class Concat(Op):
    """Channel concatenation; every other dimension must agree."""

    name, arity, category = "concat", None, "join"

    def shape(self, a, xs):
        first = xs[0]
        for i, x in enumerate(xs[1:], 2):
            if len(x) != len(first) or x[1:] != first[1:]:
                raise ShapeProblem(f"concat inputs differ beyond the channel dimension: "
                                   f"input 1 is {list(first)}, input {i} is {list(x)}", code="E044")
        return (sum(x[0] for x in xs), *first[1:])

    def forward(self, a, args, mod, inplace):
        return f"torch.cat([{', '.join(args)}], 1)"
