"""Activation functions."""
from __future__ import annotations

from .base import Op, P, register


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
