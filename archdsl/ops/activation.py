"""Activation functions."""
from __future__ import annotations

from ..values import show
from .base import BadArgument, Op, P, register, ShapeProblem, torch_kwargs


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
class Hardsigmoid(Activation):
    """MobileNetV3's hard sigmoid: relu6(x + 3) / 6."""

    name = "hardsigmoid"

    def forward(self, a, args, mod, inplace):
        return f"F.hardsigmoid({args[0]}, inplace=True)" if inplace else f"F.hardsigmoid({args[0]})"


@register
class Hardtanh(Activation):
    """x clamped to [min, max] (relu6 is hardtanh(0, 6))."""

    name = "hardtanh"
    params = (P("min", "float", -1.0), P("max", "float", 1.0))

    def check(self, a):
        if a["max"] <= a["min"]:
            raise BadArgument(f"`max` must be above `min`, got min={show(a['min'])}, max={show(a['max'])}",
                              where="max", code="E024")

    def forward(self, a, args, mod, inplace):
        bounds = "" if (a["min"], a["max"]) == (-1, 1) else f", {a['min']!r}, {a['max']!r}"
        return f"F.hardtanh({args[0]}{bounds}{', inplace=True' if inplace else ''})"

    def label(self, a):
        return f"hardtanh [{a['min']:g}, {a['max']:g}]"


@register
class Mish(Activation):
    """x · tanh(softplus(x)) (Misra 2019)."""

    name = "mish"

    def forward(self, a, args, mod, inplace):
        return f"F.mish({args[0]}, inplace=True)" if inplace else f"F.mish({args[0]})"


@register
class Elu(Activation):
    """The exponential linear unit: x above 0, alpha · (exp(x) - 1) below."""

    name, keeps = "elu", "output"  # when run in place
    params = (P("alpha", "float", 1.0),)

    def forward(self, a, args, mod, inplace):
        # torch's in-place backward rejects negative alphas
        alpha = "" if a["alpha"] == 1 else f", {a['alpha']!r}"
        tail = ", inplace=True" if inplace and a["alpha"] >= 0 else ""
        return f"F.elu({args[0]}{alpha}{tail})"

    def label(self, a):
        return "elu" if a["alpha"] == 1 else f"elu {a['alpha']:g}"


@register
class Prelu(Activation):
    """Leaky relu with a learned slope (He et al. 2015): one shared, or one per channel; ``slope`` is
    the slopes' initial value (PyTorch's ``init``, a reserved word in specs)."""

    name = "prelu"
    params = (P("channels", "int", 1, min=1), P("slope", "float", 0.25))

    def shape(self, a, xs):
        c = xs[0][0]
        if a["channels"] not in (1, c):
            raise ShapeProblem(f"`prelu` learns one shared slope or one per channel ({c} here), not {a['channels']}",
                               hint=f"channels=1 shares one slope, channels={c} learns one per channel",
                               arg="channels", code="E024")
        return xs[0]

    def weights(self, a, xs, y):
        return a["channels"], 0

    def module(self, a, xs, y):
        return "nn.PReLU", (), torch_kwargs(self, a, channels="num_parameters", slope="init")

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        return "prelu" if a["channels"] == 1 else f"prelu {a['channels']}"
