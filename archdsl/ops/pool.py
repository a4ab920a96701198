"""Pooling and upsampling."""
from __future__ import annotations
import math


from .base import BadArgument, Op, P, register, req, ShapeProblem, size_text, spatial, torch_kwargs, torch_size, tup, window_out, _show


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
