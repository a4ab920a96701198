"""The op registry: every op declared once, with its signature, shape rule, weight
count, MAC count, torch code and drawing category.

Shapes exclude the batch dimension: ``(C, H, W)`` for images, ``(C, L)`` for
sequences, ``(F,)`` for vectors. Shape rules follow PyTorch's formulas exactly.

Adding an op is adding one class to the module of its family (``conv``, ``norm``,
``activation``, ``elementwise``, ``pool``, ``linear``, ``layout``, ``index``, ``attention``,
``join``, ``tensor``, ``core``)::

    @register
    class Relu(Activation):
        name = "relu"
        def forward(self, a, args, mod, inplace):
            return f"F.relu({args[0]}, inplace=True)" if inplace else f"F.relu({args[0]})"

Nothing in this package imports torch: builders are *source text* (a constructor
name with arguments, and a forward expression) that ``compile.py`` turns into a
module, and that ``archdsl compile -o`` writes out as a standalone file. Functions that
forward code calls besides torch and F are named in ``Op.helpers`` and their source is in
``HELPERS``.
"""
from __future__ import annotations

from .base import (HELPERS, OPS, TORCH_NAMES, BadArgument, Op, P, ShapeProblem, as_int, numel, register, req,
                   spatial, tup, type_name)
# the op families, in the order the registry lists them
from . import core, conv, linear, norm, activation, elementwise, pool, layout, index, attention, join  # noqa: F401
from . import tensor  # noqa: F401  (param and buffer declarations)
from .hints import ALIASES

__all__ = ["OPS", "ALIASES", "HELPERS", "TORCH_NAMES", "Op", "P", "BadArgument", "ShapeProblem", "register", "req",
           "as_int", "numel", "spatial", "tup", "type_name"]
