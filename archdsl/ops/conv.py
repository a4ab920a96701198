"""Convolutions: conv, transposed conv, and the sub-pixel rearrangements pixel_shuffle / pixel_unshuffle."""
from __future__ import annotations
import math


from .base import numel, Op, P, register, req, same_padding, ShapeProblem, size_text, spatial, torch_kwargs, torch_size, tup, window_out, _show


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
class ConvTranspose(Op):
    """Transposed convolution over 1-3 spatial dims (ConvTranspose1d / 2d / 3d by the input rank):
    the gradient of ``conv`` with respect to its input, the learned upsampling of decoders and GANs.
    Output size per dim: ``(in - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_pad + 1``."""

    name, category, keeps, fresh = "conv_transpose", "conv", "input", True
    params = (req("out", min=1), req("kernel", "size", min=1), P("stride", "size", 1, min=1),
              P("pad", "size", 0, min=0), P("output_pad", "size", 0, min=0), P("dilation", "size", 1, min=1),
              P("groups", "int", 1, min=1), P("bias", "bool", True))

    def shape(self, a, xs):
        if len(xs[0]) == 1:  # a generator's latent vector
            raise ShapeProblem(f"`conv_transpose` needs a feature map with channels first, got the vector "
                               f"{list(xs[0])}", hint=f"`reshape({xs[0][0]}, 1, 1)` makes it a 1x1 feature map",
                               code="E041")
        x = spatial(xs, "conv_transpose")
        c, sizes = x[0], x[1:]
        n, g = len(sizes), a["groups"]
        for what, channels in (("input", c), ("output", a["out"])):
            if channels % g:
                raise ShapeProblem(f"groups={g} does not divide the {channels} {what} channels",
                                   arg="groups", code="E042")
        k, s, p, op, d = (tup(a[key], n, key) for key in ("kernel", "stride", "pad", "output_pad", "dilation"))
        for i in range(n):
            if op[i] >= s[i] and op[i] >= d[i]:
                raise ShapeProblem(f"output_pad {op[i]} must be smaller than the stride {s[i]} or the dilation "
                                   f"{d[i]} (as in PyTorch)" + (f", along spatial dimension {i + 1}" if n > 1 else ""),
                                   hint="output_pad only picks among the output sizes a stride can give: "
                                        "from 0 to stride - 1", arg="output_pad", code="E043")
        out = tuple((i - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1
                    for i, kk, ss, pp, oo, dd in zip(sizes, k, s, p, op, d))
        for i, o in enumerate(out):
            if o < 1:
                raise ShapeProblem(
                    f"output size would be {o} along spatial dimension {i + 1}: input size {sizes[i]}, "
                    f"kernel {k[i]}, stride {s[i]}, padding {p[i]}, dilation {d[i]}",
                    hint="a transposed convolution's padding shrinks its output: use less padding", arg="pad",
                    code="E045")
        return (a["out"], *out)

    def weights(self, a, xs, y):  # weight [in, out / groups, *kernel]
        k = math.prod(tup(a["kernel"], len(xs[0]) - 1))
        return xs[0][0] * (a["out"] // a["groups"]) * k + (a["out"] if a["bias"] else 0), 0

    def macs(self, a, xs, y):  # every input element meets a kernel of (out / groups) channels
        k = math.prod(tup(a["kernel"], len(xs[0]) - 1))
        return numel(xs[0]) * (a["out"] // a["groups"]) * k

    def module(self, a, xs, y):
        return f"nn.ConvTranspose{len(xs[0]) - 1}d", (xs[0][0], a["out"], torch_size(a["kernel"])), \
            torch_kwargs(self, a, pad="padding", output_pad="output_padding")

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"

    def label(self, a):
        extra = "".join(f", {n}={_show(a[n])}" for n in ("stride", "dilation", "groups") if a[n] != 1)
        return f"conv_transpose {size_text(a['kernel'])}, {a['out']}{extra}"


# ----------------------------------------------------------------------------- sub-pixel convolution

@register
class PixelShuffle(Op):
    """Sub-pixel convolution's rearrangement (Shi et al. 2016): [C·r², H, W] -> [C, H·r, W·r]."""

    name, category, fresh = "pixel_shuffle", "reshape", True
    params = (req("r", min=1),)

    def image(self, xs) -> tuple:
        if len(xs[0]) != 3:
            raise ShapeProblem(f"`{self.name}` needs a [C, H, W] feature map (batch implicit), got {list(xs[0])}",
                               code="E041")
        return xs[0]

    def shape(self, a, xs):
        c, h, w = self.image(xs)
        r = a["r"]
        if c % (r * r):
            raise ShapeProblem(f"`pixel_shuffle({r})` needs channels divisible by r² = {r * r}, got {c}",
                               hint=f"a conv before it can give r² times the channels wanted: "
                                    f"conv({r * r} * c, 3, pad=1)", arg="r", code="E042")
        return (c // (r * r), h * r, w * r)

    def forward(self, a, args, mod, inplace):
        return f"F.pixel_shuffle({args[0]}, {a['r']})"

    def label(self, a):
        return f"{self.name} {a['r']}"


@register
class PixelUnshuffle(PixelShuffle):
    """The inverse of ``pixel_shuffle``: [C, H·r, W·r] -> [C·r², H, W] (space to depth)."""

    name = "pixel_unshuffle"

    def shape(self, a, xs):
        c, h, w = self.image(xs)
        r = a["r"]
        if h % r or w % r:
            raise ShapeProblem(f"`pixel_unshuffle({r})` needs a height and width divisible by {r}, got {h}x{w}",
                               hint=f"pad or crop the input to a multiple of {r}, or use `avgpool` or a "
                                    f"strided conv", arg="r", code="E042")
        return (c * r * r, h // r, w // r)

    def forward(self, a, args, mod, inplace):
        return f"F.pixel_unshuffle({args[0]}, {a['r']})"
