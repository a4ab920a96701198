"""The op registry: every op declared once, with its signature, shape rule, weight
count, MAC count, torch code and drawing category.

Shapes exclude the batch dimension: ``(C, H, W)`` for images, ``(C, L)`` for
sequences, ``(F,)`` for vectors. Shape rules follow PyTorch's formulas exactly.

Adding an op is adding one class here::

    @register
    class Relu(Activation):
        name = "relu"
        def forward(self, a, args, mod, inplace):
            return f"F.relu({args[0]}, inplace=True)" if inplace else f"F.relu({args[0]})"

Nothing in this module imports torch: builders are *source text* (a constructor
name with arguments, and a forward expression) that ``compile.py`` turns into a
module, and that ``archdsl compile -o`` writes out as a standalone file. Functions that
forward code calls besides torch and F are named in ``Op.helpers`` and their source is in
``HELPERS``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .values import describe, show

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
    from .values import type_name as tn
    return tn(v)


@dataclass(frozen=True)
class P:
    """One parameter of an op: name, kind, default (or ``required``), bounds and choices."""

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
                from .errors import did_you_mean
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


# ----------------------------------------------------------------------------- ops
# Sources: PyTorch's documented shape formulas (torch.nn.Conv2d, MaxPool2d, ...).

@register
class Input(Op):
    name, arity, category = "input", 0, "io"


@register
class Identity(Op):
    name, category = "identity", "other"
    view = True


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


@register
class Linear(Op):
    """Fully connected layer on a vector."""

    name, category, keeps, fresh = "linear", "linear", "input", True
    params = (req("out", min=1), P("bias", "bool", True))

    def shape(self, a, xs):
        if len(xs[0]) != 1:
            raise ShapeProblem(f"`linear` needs a vector input, got {list(xs[0])}",
                               hint="insert `flatten` before `linear`", code="E041")
        return (a["out"],)

    def weights(self, a, xs, y):
        return xs[0][0] * a["out"] + (a["out"] if a["bias"] else 0), 0

    def macs(self, a, xs, y):
        return xs[0][0] * a["out"]

    def module(self, a, xs, y):
        return "nn.Linear", (xs[0][0], a["out"]), torch_kwargs(self, a)

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        return f"linear {a['out']}"


# ----------------------------------------------------------------------------- normalization

class Norm(Op):
    """Shared by the normalizations: shape-preserving, elementwise work."""

    category, elementwise, keeps, fresh = "norm", True, "input", True

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"


@register
class BatchNorm(Norm):
    """Batch normalization: BatchNorm1d for vectors and sequences, 2d for images, 3d for volumes."""

    name = "bn"
    params = (P("eps", "float", 1e-5, min=0), P("momentum", "float", 0.1, min=0, max=1), P("affine", "bool", True))

    def shape(self, a, xs):
        return spatial(xs, "bn", ranks=(1, 2, 3, 4))

    def weights(self, a, xs, y):
        c = xs[0][0]
        return (2 * c if a["affine"] else 0), 2 * c + 1  # running mean and var, num_batches_tracked

    def module(self, a, xs, y):
        return f"nn.BatchNorm{max(1, len(xs[0]) - 1)}d", (xs[0][0],), torch_kwargs(self, a)


@register
class LayerNorm(Norm):
    """Layer normalization over the last ``dims`` dimensions."""

    name = "layernorm"
    params = (P("dims", "int", 1, min=1), P("eps", "float", 1e-5, min=0), P("affine", "bool", True))

    def shape(self, a, xs):
        if a["dims"] > len(xs[0]):
            raise ShapeProblem(f"`layernorm` over the last {a['dims']} dimensions needs an input of that rank, "
                               f"got {list(xs[0])}", arg="dims", code="E041")
        return xs[0]

    def weights(self, a, xs, y):
        return (2 * numel(xs[0][-a["dims"]:]) if a["affine"] else 0), 0

    def module(self, a, xs, y):
        return "nn.LayerNorm", (xs[0][-a["dims"]:],), torch_kwargs(self, a, skip=("dims",), affine="elementwise_affine")


@register
class GroupNorm(Norm):
    """Group normalization; ``groups`` must divide the channels."""

    name = "groupnorm"
    params = (req("groups", min=1), P("eps", "float", 1e-5, min=0), P("affine", "bool", True))

    def shape(self, a, xs):
        c = spatial(xs, "groupnorm", ranks=(1, 2, 3, 4))[0]
        if c % a["groups"]:
            raise ShapeProblem(f"groups={a['groups']} does not divide the {c} channels", arg="groups", code="E042")
        return xs[0]

    def weights(self, a, xs, y):
        return (2 * xs[0][0] if a["affine"] else 0), 0

    def module(self, a, xs, y):
        return "nn.GroupNorm", (a["groups"], xs[0][0]), torch_kwargs(self, a)

    def label(self, a):
        return f"groupnorm {a['groups']}"


@register
class LocalResponseNorm(Norm):
    """AlexNet's local response normalization across ``size`` neighbouring channels."""

    name = "lrn"
    params = (req("size", min=1), P("alpha", "float", 1e-4), P("beta", "float", 0.75), P("k", "float", 1.0))

    def shape(self, a, xs):
        return spatial(xs, "lrn")

    def forward(self, a, args, mod, inplace):
        return f"F.local_response_norm({args[0]}, {a['size']}, {a['alpha']!r}, {a['beta']!r}, {a['k']!r})"

    def label(self, a):
        return f"lrn {a['size']}"


# ----------------------------------------------------------------------------- activations

class Activation(Op):
    """Shared by the activations: stateless, shape-preserving, elementwise work."""

    category, elementwise, keeps = "activation", True, "input"


@register
class Relu(Activation):
    name, keeps = "relu", "output"

    def forward(self, a, args, mod, inplace):
        return f"F.relu({args[0]}, inplace=True)" if inplace else f"F.relu({args[0]})"


@register
class Relu6(Activation):
    name = "relu6"

    def forward(self, a, args, mod, inplace):
        return f"F.relu6({args[0]}, inplace=True)" if inplace else f"F.relu6({args[0]})"


@register
class LeakyRelu(Activation):
    name, keeps = "leaky_relu", "output"  # when run in place
    params = (P("slope", "float", 0.01),)

    def forward(self, a, args, mod, inplace):
        # torch's in-place backward rejects negative slopes
        tail = ", inplace=True" if inplace and a["slope"] >= 0 else ""
        return f"F.leaky_relu({args[0]}, {a['slope']!r}{tail})"

    def label(self, a):
        return f"leaky_relu {a['slope']:g}"


@register
class Gelu(Activation):
    name = "gelu"
    params = (P("approximate", "str", "none", choices=("none", "tanh")),)

    def forward(self, a, args, mod, inplace):
        return f"F.gelu({args[0]}, approximate='tanh')" if a["approximate"] == "tanh" else f"F.gelu({args[0]})"

    def label(self, a):
        return "gelu tanh" if a["approximate"] == "tanh" else "gelu"


@register
class Silu(Activation):
    name = "silu"

    def forward(self, a, args, mod, inplace):
        return f"F.silu({args[0]}, inplace=True)" if inplace else f"F.silu({args[0]})"


@register
class Sigmoid(Activation):
    name, keeps = "sigmoid", "output"

    def forward(self, a, args, mod, inplace):
        return f"torch.sigmoid({args[0]})"


@register
class Tanh(Activation):
    name, keeps = "tanh", "output"

    def forward(self, a, args, mod, inplace):
        return f"torch.tanh({args[0]})"


@register
class Hardswish(Activation):
    name = "hardswish"

    def forward(self, a, args, mod, inplace):
        return f"F.hardswish({args[0]}, inplace=True)" if inplace else f"F.hardswish({args[0]})"


@register
class Softmax(Activation):
    """Softmax along ``dim``, counted without the batch (0 is the channels)."""

    name, function, keeps = "softmax", "F.softmax", "output"
    params = (P("dim", "int", 0),)

    def shape(self, a, xs):
        if not -len(xs[0]) <= a["dim"] < len(xs[0]):
            raise ShapeProblem(f"dim={a['dim']} is out of range for an input of shape {list(xs[0])}",
                               hint="dimensions count from 0 (channels), batch excluded", arg="dim", code="E041")
        return xs[0]

    def forward(self, a, args, mod, inplace):
        d = a["dim"]
        return f"{self.function}({args[0]}, dim={d + 1 if d >= 0 else d})"

    def label(self, a):
        return self.name if a["dim"] == 0 else f"{self.name} dim={a['dim']}"


@register
class LogSoftmax(Softmax):
    name, function = "log_softmax", "F.log_softmax"


# ----------------------------------------------------------------------------- pooling

class Pool(Op):
    """Shared by maxpool and avgpool: a window over 1-3 spatial dims (torch class by rank)."""

    category, torch_class, fresh = "pool", "", True

    def shape(self, a, xs):
        x = spatial(xs, self.name)
        n = len(x) - 1
        k = tup(a["kernel"], n, "kernel")
        s = k if a["stride"] is None else tup(a["stride"], n, "stride")
        p = tup(a["pad"], n, "pad")
        d = tup(a.get("dilation", 1), n, "dilation")
        for kk, pp in zip(k, p):
            if pp > kk // 2:
                raise ShapeProblem(f"padding {pp} is more than half the kernel size {kk}",
                                   hint=f"PyTorch allows a padding of at most {kk // 2} here", arg="pad", code="E043")
        return (x[0], *window_out(x[1:], k, s, p, d, a["ceil"]))

    def module(self, a, xs, y):
        return f"nn.{self.torch_class}{len(xs[0]) - 1}d", (torch_size(a["kernel"]),), \
            torch_kwargs(self, a, pad="padding", ceil="ceil_mode")

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        s = a["stride"]
        stride = "" if s in (None, a["kernel"]) else f"/{size_text(s) if isinstance(s, tuple) else s}"
        return f"{self.name} {size_text(a['kernel'])}{stride}"


@register
class MaxPool(Pool):
    name, torch_class, keeps = "maxpool", "MaxPool", "input"  # and int64 indices
    params = (req("kernel", "size", min=1), P("stride", "size", None, min=1), P("pad", "size", 0, min=0),
              P("dilation", "size", 1, min=1), P("ceil", "bool", False))


@register
class AvgPool(Pool):
    name, torch_class = "avgpool", "AvgPool"
    params = (req("kernel", "size", min=1), P("stride", "size", None, min=1), P("pad", "size", 0, min=0),
              P("ceil", "bool", False), P("count_include_pad", "bool", True))

    def shape(self, a, xs):
        y = super().shape(a, xs)
        k = tup(a["kernel"], len(xs[0]) - 1)
        if len(k) == 3 and any(i < kk for i, kk in zip(xs[0][1:], k)):  # only avg_pool3d checks this
            raise ShapeProblem(f"3-d `avgpool` needs an input of at least the kernel size {list(k)} "
                               f"(padding aside), got {list(xs[0][1:])}", arg="kernel", code="E045")
        return y


class AdaptivePool(Op):
    """Shared by the adaptive and global pools: a fixed output size (torch class by rank)."""

    category, torch_class, fresh = "pool", "", True

    def out_size(self, a):
        return a["size"]

    def shape(self, a, xs):
        x = spatial(xs, self.name)
        return (x[0], *tup(self.out_size(a), len(x) - 1, "size"))

    def module(self, a, xs, y):
        return f"nn.{self.torch_class}{len(xs[0]) - 1}d", (torch_size(self.out_size(a)),), {}

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"


@register
class AdaptiveAvgPool(AdaptivePool):
    name, torch_class = "adaptive_avgpool", "AdaptiveAvgPool"
    params = (req("size", "size", min=1),)

    def label(self, a):
        return f"{self.name} {size_text(a['size'])}"


@register
class AdaptiveMaxPool(AdaptiveAvgPool):
    name, torch_class, keeps = "adaptive_maxpool", "AdaptiveMaxPool", "input"


@register
class GlobalAvgPool(AdaptivePool):
    """Average over all spatial positions, keeping them as size-1 dims: (C, 1, 1)."""

    name, torch_class = "global_avgpool", "AdaptiveAvgPool"

    def out_size(self, a):
        return 1


@register
class GlobalMaxPool(GlobalAvgPool):
    name, torch_class, keeps = "global_maxpool", "AdaptiveMaxPool", "input"


@register
class Upsample(Op):
    """Resize by ``scale`` (output floor(size * scale), as torch) or to ``size``."""

    name, category, fresh = "upsample", "pool", True
    RANK = {"linear": 2, "bilinear": 3, "bicubic": 3, "trilinear": 4}  # input rank each mode needs
    params = (P("scale", "floats"), P("size", "size", None, min=1),
              P("mode", "str", "nearest", choices=("nearest", "nearest-exact", *RANK)),
              P("align_corners", "bool", None))

    def check(self, a):
        if (a["scale"] is None) == (a["size"] is None):
            raise BadArgument("`upsample` needs exactly one of `scale` and `size`", where="scale", code="E023")
        if a["scale"] is not None and min(a["scale"]) <= 0:
            raise BadArgument(f"`scale` must be positive, got {_show(a['scale'])}", where="scale", code="E024")
        if a["align_corners"] is not None and a["mode"] not in self.RANK:
            raise BadArgument(f"`align_corners` only applies to modes {', '.join(self.RANK)}",
                              where="align_corners")

    def shape(self, a, xs):
        x = spatial(xs, "upsample")
        n = len(x) - 1
        need = self.RANK.get(a["mode"])
        if need and len(x) != need:
            raise ShapeProblem(f'mode "{a["mode"]}" needs a {need}-d input, got {list(x)}',
                               hint='mode "nearest" works at any rank', arg="mode", code="E041")
        if a["size"] is not None:
            return (x[0], *tup(a["size"], n, "size"))
        out = tuple(math.floor(i * f) for i, f in zip(x[1:], tup(a["scale"], n, "scale")))
        if min(out) < 1:
            raise ShapeProblem(f"output size would be {list(out)} from input size {list(x[1:])}",
                               hint="use a larger scale", arg="scale", code="E045")
        return (x[0], *out)

    def forward(self, a, args, mod, inplace):
        how = f"size={torch_size(a['size'])}" if a["size"] is not None else f"scale_factor={torch_size(a['scale'])}"
        corners = "" if a["align_corners"] is None else f", align_corners={a['align_corners']}"
        return f"F.interpolate({args[0]}, {how}, mode={a['mode']!r}{corners})"

    def label(self, a):
        how = size_text(a["size"]) if a["size"] is not None else "x" + "x".join(f"{f:g}" for f in a["scale"])
        return f"upsample {how} {a['mode']}"


# ----------------------------------------------------------------------------- reshaping

@register
class Flatten(Op):
    name, category, view = "flatten", "reshape", True

    def shape(self, a, xs):
        return (numel(xs[0]),)

    def forward(self, a, args, mod, inplace):
        return f"torch.flatten({args[0]}, 1)"


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


# ----------------------------------------------------------------------------- regularization

@register
class Dropout(Op):
    name, category, view = "dropout", "regularize", True  # in eval
    params = (P("p", "float", 0.5, min=0, max=1),)

    def check(self, a):
        if a["p"] >= 1:
            raise BadArgument(f"`p` must be below 1, got {show(a['p'])}", where="p", code="E024")

    def forward(self, a, args, mod, inplace):
        return f"F.dropout({args[0]}, {show(a['p'])}, self.training)"

    def label(self, a):
        return f"dropout {a['p']:g}"


@register
class DropPath(Op):
    """Stochastic depth on a residual branch: whole samples kept with probability ``survival``."""

    name, category, view = "droppath", "regularize", True  # in eval
    helpers = ("drop_path",)
    params = (req("survival", "float", min=0, max=1),)

    def check(self, a):
        if a["survival"] <= 0:
            raise BadArgument(f"`survival` must be above 0, got {show(a['survival'])}", where="survival", code="E024")

    def forward(self, a, args, mod, inplace):
        return args[0] if a["survival"] == 1 else f"drop_path({args[0]}, {show(a['survival'])}, self.training)"

    def label(self, a):
        return f"droppath {a['survival']:g}"


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
