"""Input, identity, dropout and drop-path: ops without arithmetic of their own."""
from __future__ import annotations

from ..values import show
from .base import BadArgument, Op, P, register, req


# ----------------------------------------------------------------------------- ops
# Sources: PyTorch's documented shape formulas (torch.nn.Conv2d, MaxPool2d, ...).

@register
class Input(Op):
    name, arity, category = "input", 0, "io"


@register
class Identity(Op):
    name, category = "identity", "other"
    view = True


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
