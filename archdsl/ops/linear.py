"""Ops over the feature (last) dimension: linear, layer normalization, softmax; and layer
normalization over the channels of a feature map."""
from __future__ import annotations

from .base import BadArgument, dim_of, numel, Op, P, register, req, ShapeProblem, torch_dim, torch_kwargs
from .norm import Norm
from .activation import Activation


@register
class Linear(Op):
    """Fully connected layer over the last dim, as ``nn.Linear`` (weight ``[out, in]``): a vector
    ``[E]`` or a token sequence ``[L, E]``; on a feature map only when the spec asks for the last
    dim (``dim=-1``), so a forgotten ``flatten`` is still caught."""

    name, category, keeps, fresh = "linear", "linear", "input", True
    params = (req("out", min=1), P("bias", "bool", True), P("dim", "int", None))
    positional = 2  # `dim` is given by name only

    def bind(self, args, kwargs):
        if len(args) > self.positional:
            raise BadArgument(f"`linear` takes at most {self.positional} positional arguments, got {len(args)}",
                              where=self.positional, code="E021", hint="write `dim=` by name")
        return super().bind(args, kwargs)

    def shape(self, a, xs):
        x = xs[0]
        if a["dim"] is not None:
            d = dim_of(a["dim"], x)
            if d != len(x) - 1:
                raise ShapeProblem(f"`linear` works on the last dim, got dim={a['dim']} for an input of shape "
                                   f"{list(x)}", hint="`permute` that dim last first",
                                   arg="dim", code="E041")
        elif len(x) > 2:
            raise ShapeProblem(f"`linear` needs a vector input, got {list(x)}",
                               hint="insert `flatten` before `linear`", code="E041")
        return (*x[:-1], a["out"])

    def weights(self, a, xs, y):
        return xs[0][-1] * a["out"] + (a["out"] if a["bias"] else 0), 0

    def macs(self, a, xs, y):
        return numel(xs[0]) * a["out"]

    def module(self, a, xs, y):
        return "nn.Linear", (xs[0][-1], a["out"]), torch_kwargs(self, a, skip=("dim",))

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        return f"linear {a['out']}"


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
class LayerNormChannels(Norm):
    """Layer normalization over the channel dim of a ``[C, ...]`` feature map, at each position
    (the channels-first LayerNorm of ConvNeXt, timm's LayerNorm2d): channels moved last,
    ``nn.LayerNorm`` over them, moved back; weight and bias of ``[C]``."""

    name = "layernorm_channels"
    params = (P("eps", "float", 1e-5, min=0), P("affine", "bool", True))

    def shape(self, a, xs):
        if len(xs[0]) < 2:
            raise ShapeProblem(f"`layernorm_channels` needs a feature map [C, ...], got {list(xs[0])}",
                               hint="`layernorm` normalizes a vector", code="E041")
        return xs[0]

    def weights(self, a, xs, y):
        return (2 * xs[0][0] if a["affine"] else 0), 0

    def module(self, a, xs, y):
        return "nn.LayerNorm", (xs[0][0],), torch_kwargs(self, a, affine="elementwise_affine")

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]}.movedim(1, -1)).movedim(-1, 1)"

    def label(self, a):
        return "layernorm channels"


@register
class Softmax(Activation):
    """Softmax along ``dim``, counted without the batch (0 is the channels)."""

    name, function, keeps = "softmax", "F.softmax", "output"
    params = (P("dim", "int", 0),)

    def shape(self, a, xs):
        dim_of(a["dim"], xs[0])
        return xs[0]

    def forward(self, a, args, mod, inplace):
        return f"{self.function}({args[0]}, dim={torch_dim(a['dim'])})"

    def label(self, a):
        return self.name if a["dim"] == 0 else f"{self.name} dim={a['dim']}"


@register
class LogSoftmax(Softmax):
    name, function = "log_softmax", "F.log_softmax"
