"""Hints for names that are not ops: the name a user from PyTorch or another paper reaches for
(`deconv`, `ConvTranspose2d`, `swish`), mapped to what to write instead."""
from __future__ import annotations


def _torch(op: str, torch_name: str) -> str:
    return f"did you mean `{op}`? (PyTorch's {torch_name})"


def _called(op: str, what: str = "") -> str:
    return f"did you mean `{op}`?" + (f" ({what})" if what else "")


# name -> hint text, shown with E010 "unknown op or block"
ALIASES: dict[str, str] = {
    # transposed convolution
    **{f"ConvTranspose{n}d": _torch("conv_transpose", f"ConvTranspose{n}d") for n in (1, 2, 3)},
    **{name: _called("conv_transpose", "a transposed convolution")
       for name in ("deconv", "upconv", "transposed_conv", "conv_transposed", "convtranspose", "deconvolution")},
    # sub-pixel convolution
    "PixelShuffle": _torch("pixel_shuffle", "PixelShuffle"),
    "PixelUnshuffle": _torch("pixel_unshuffle", "PixelUnshuffle"),
    "pixelshuffle": _called("pixel_shuffle", "sub-pixel convolution's rearrangement"),
    "subpixel": _called("pixel_shuffle", "sub-pixel convolution's rearrangement, after a conv"),
    "depth_to_space": _called("pixel_shuffle", "depth to space"),
    "space_to_depth": _called("pixel_unshuffle", "space to depth"),
    # normalization
    **{f"InstanceNorm{n}d": _torch("instancenorm", f"InstanceNorm{n}d") for n in (1, 2, 3)},
    "instance_norm": _called("instancenorm"),
    # activations and elementwise ops
    "swish": _called("silu", "swish is x · sigmoid(x), PyTorch's SiLU"),
    "SiLU": _torch("silu", "SiLU"),
    "hard_sigmoid": _called("hardsigmoid"),
    "Hardsigmoid": _torch("hardsigmoid", "Hardsigmoid"),
    "hard_tanh": _called("hardtanh"),
    "Hardtanh": _torch("hardtanh", "Hardtanh"),
    "hard_swish": _called("hardswish"),
    "Mish": _torch("mish", "Mish"),
    "ELU": _torch("elu", "ELU"),
    "PReLU": _torch("prelu", "PReLU"),
    "clip": _called("clamp", "values limited to [min, max]"),
    "multiply": _called("scale", "`scale(factor)` multiplies by a constant, `mul { a; b }` multiplies tensors"),
    "add_scalar": _called("shift", "`shift(offset)` adds a constant, `add { a; b }` adds tensors"),
}
