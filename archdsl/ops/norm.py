"""Normalizations over channels: batch, instance, group and local response normalization."""
from __future__ import annotations

from .base import numel, Op, P, register, req, ShapeProblem, spatial, torch_kwargs


# ----------------------------------------------------------------------------- normalization

class Norm(Op):
    """Shared by the normalizations: shape-preserving, elementwise work."""

    category, elementwise, keeps, fresh = "norm", True, "input", True

    def forward(self, a, args, mod, inplace):
        return f"{mod}({args[0]})"


@register
class BatchNorm(Norm):
    """Batch normalization: BatchNorm1d for vectors and sequences, 2d for images, 3d for volumes."""

    name = "bn"
    params = (P("eps", "float", 1e-5, min=0), P("momentum", "float", 0.1, min=0, max=1), P("affine", "bool", True))

    def shape(self, a, xs):
        return spatial(xs, "bn", ranks=(1, 2, 3, 4))

    def weights(self, a, xs, y):
        c = xs[0][0]
        return (2 * c if a["affine"] else 0), 2 * c + 1  # running mean and var, num_batches_tracked

    def module(self, a, xs, y):
        return f"nn.BatchNorm{max(1, len(xs[0]) - 1)}d", (xs[0][0],), torch_kwargs(self, a)


@register
class InstanceNorm(Norm):
    """Instance normalization (Ulyanov et al. 2016): each channel of each sample over its own spatial
    positions; InstanceNorm1d for sequences, 2d for images, 3d for volumes. As in PyTorch, no affine
    scale and shift and no running statistics unless asked for."""

    name = "instancenorm"
    params = (P("eps", "float", 1e-5, min=0), P("momentum", "float", 0.1, min=0, max=1),
              P("affine", "bool", False), P("track_running_stats", "bool", False))

    def shape(self, a, xs):
        x = xs[0]
        if len(x) not in (2, 3, 4):
            raise ShapeProblem(f"`instancenorm` needs a feature map with channels first ([C, L], [C, H, W] or "
                               f"[C, D, H, W], batch implicit), got {list(x)}",
                               hint="`layernorm` normalizes a vector" if len(x) == 1 else None, code="E041")
        if numel(x[1:]) == 1:  # torch refuses in training; in eval every output would be the bias
            raise ShapeProblem(f"`instancenorm` normalizes each channel over its spatial positions, and "
                               f"{list(x)} has only one", hint="normalize before the pooling, or use `bn` or "
                               "`layernorm`", code="E041")
        return x

    def weights(self, a, xs, y):
        c = xs[0][0]
        return (2 * c if a["affine"] else 0), (2 * c + 1 if a["track_running_stats"] else 0)

    def module(self, a, xs, y):
        return f"nn.InstanceNorm{len(xs[0]) - 1}d", (xs[0][0],), torch_kwargs(self, a)


@register
class GroupNorm(Norm):
    """Group normalization; ``groups`` must divide the channels."""

    name = "groupnorm"
    params = (req("groups", min=1), P("eps", "float", 1e-5, min=0), P("affine", "bool", True))

    def shape(self, a, xs):
        c = spatial(xs, "groupnorm", ranks=(1, 2, 3, 4))[0]
        if c % a["groups"]:
            raise ShapeProblem(f"groups={a['groups']} does not divide the {c} channels", arg="groups", code="E042")
        return xs[0]

    def weights(self, a, xs, y):
        return (2 * xs[0][0] if a["affine"] else 0), 0

    def module(self, a, xs, y):
        return "nn.GroupNorm", (a["groups"], xs[0][0]), torch_kwargs(self, a)

    def label(self, a):
        return f"groupnorm {a['groups']}"


@register
class LocalResponseNorm(Norm):
    """AlexNet's local response normalization across ``size`` neighbouring channels."""

    name = "lrn"
    params = (req("size", min=1), P("alpha", "float", 1e-4), P("beta", "float", 0.75), P("k", "float", 1.0))

    def shape(self, a, xs):
        return spatial(xs, "lrn")

    def forward(self, a, args, mod, inplace):
        return f"F.local_response_norm({args[0]}, {a['size']}, {a['alpha']!r}, {a['beta']!r}, {a['k']!r})"

    def label(self, a):
        return f"lrn {a['size']}"
