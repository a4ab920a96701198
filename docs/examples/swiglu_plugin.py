"""An example archdsl plugin: two ops declared from Python (docs/plugins.md explains each line).

* ``swiglu(hidden, bias=true)``: the gated feed-forward unit of Shazeer's "GLU Variants Improve
  Transformer" (2020), ``silu(x·W + b) * (x·V + c)`` over the last dim: ``[..., E] -> [..., hidden]``.
  Two linear projections, so ``2·(E·hidden + hidden)`` parameters and ``2·E·hidden`` MACs per token.
* ``squared_relu``: ``relu(x)²``, the activation of So et al.'s "Primer" (2021), weight-free.

Load it with ``--plugin swiglu_plugin`` (this folder on PYTHONPATH) or ``plugins=["swiglu_plugin"]``.
The torch code (``SwiGLU``, ``squared_relu``) is in this module too, which is why the ops declare
``imports = ("swiglu_plugin",)``: a compiled model and an exported ``.py`` import it from here.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from archdsl.extern import Op, P, ShapeProblem, numel, op, req


# ----------------------------------------------------------------------------- the torch code

class SwiGLU(nn.Module):
    """``silu(gate(x)) * value(x)``: two ``nn.Linear(features, hidden)`` over the last dim."""

    def __init__(self, features: int, hidden: int, bias: bool = True):
        super().__init__()
        self.gate = nn.Linear(features, hidden, bias=bias)
        self.value = nn.Linear(features, hidden, bias=bias)

    def forward(self, x):
        return F.silu(self.gate(x)) * self.value(x)


def squared_relu(x):
    """``relu(x) ** 2``."""
    return torch.relu(x).square()


# ----------------------------------------------------------------------------- the ops

@op
class Swiglu(Op):
    """SwiGLU over the last dim of a vector ``[E]`` or a token sequence ``[L, E]``."""

    name, category, keeps, fresh = "swiglu", "linear", "input", True
    params = (req("hidden", min=1), P("bias", "bool", True))
    imports = ("swiglu_plugin",)

    def shape(self, a, xs):
        x = xs[0]
        if len(x) > 2:
            raise ShapeProblem(f"`swiglu` needs a vector or a token sequence [L, E], got {list(x)}",
                               hint="`flatten(1) -> transpose(0, 1)` turns a feature map into tokens", code="E041")
        return (*x[:-1], a["hidden"])

    def weights(self, a, xs, y):
        features, hidden = xs[0][-1], a["hidden"]
        return 2 * (features * hidden + (hidden if a["bias"] else 0)), 0

    def macs(self, a, xs, y):
        return 2 * numel(xs[0]) * a["hidden"]

    def module(self, a, xs, y):
        return "swiglu_plugin.SwiGLU", (xs[0][-1], a["hidden"]), ({} if a["bias"] else {"bias": False})

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        return f"swiglu {a['hidden']}"


@op
class SquaredRelu(Op):
    """``relu(x)²``, elementwise, any shape."""

    name, category, elementwise, keeps = "squared_relu", "activation", True, "input"
    imports = ("swiglu_plugin",)

    def forward(self, a, args, mod, inplace):
        return f"swiglu_plugin.squared_relu({args[0]})"
