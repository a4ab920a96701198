"""Reshaping: flatten, pad, channel shuffle."""
from __future__ import annotations

from .base import BadArgument, numel, Op, P, register, req, ShapeProblem, spatial


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
