"""Ops over the feature (last) dimension: linear, layer normalization, softmax."""
from __future__ import annotations

from .base import numel, Op, P, register, req, ShapeProblem, torch_kwargs
from .norm import Norm
from .activation import Activation


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
