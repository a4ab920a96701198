"""Weight initialisation schemes a spec can name with ``init``.

``SCHEMES`` maps each scheme to its keyword arguments and their defaults; it is
read by the elaborator (to check specs without torch) and by the compiler.

``init_weights`` applies one scheme to one module: the scheme fills the weight and
any bias is zeroed (an attention layer's projections likewise) (every scheme but ``default``, which keeps PyTorch's own
initialisation). ``constant`` / ``zeros`` / ``ones`` on a norm layer thus set its
scale and zero its shift: ``init "*.bn3" = zeros`` zero-inits each residual branch.
``init_tensor`` fills one tensor (a weight, or a declared ``param``/``buffer``).
The compiler pastes these functions' source into the generated model, so a
standalone export initialises exactly as the compiled model does.
"""
from __future__ import annotations

SCHEMES: dict[str, dict] = {
    "default": {},                                                   # PyTorch's own reset_parameters
    "zeros": {},
    "ones": {},
    "constant": {"value": 0.0},
    "normal": {"mean": 0.0, "std": 1.0},
    "trunc_normal": {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0},
    "uniform": {"a": 0.0, "b": 1.0},
    "xavier_uniform": {"gain": 1.0},
    "xavier_normal": {"gain": 1.0},
    "kaiming_uniform": {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"},
    "kaiming_normal": {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"},
}


def init_tensor(t, scheme: str, **kwargs) -> None:
    """Fill tensor ``t`` in place with ``scheme`` (a SCHEMES name but ``default``)."""
    from torch.nn import init

    if scheme in ("zeros", "ones", "constant"):
        init.constant_(t, {"zeros": 0.0, "ones": 1.0}.get(scheme, kwargs.get("value")))
    else:
        getattr(init, scheme + "_")(t, **kwargs)


def init_weights(m, scheme: str, **kwargs) -> None:
    """Initialise module ``m``'s weights with ``scheme`` and zero its biases
    (``default``: leave them): its ``weight`` and ``bias``, or an
    ``nn.MultiheadAttention``'s input projection (``in_proj_weight``, or
    ``q/k/v_proj_weight`` where key and value sizes differ) and output projection
    (``out_proj.weight``), each filled on its own, and both biases."""
    from torch.nn import init

    if scheme == "default":
        return
    proj = getattr(m, "out_proj", None)
    if proj is not None and hasattr(m, "in_proj_weight"):
        weights = [m.in_proj_weight, m.q_proj_weight, m.k_proj_weight, m.v_proj_weight]
        weights.append(proj.weight)
        biases = [m.in_proj_bias, proj.bias]
    else:
        weights, biases = [getattr(m, "weight", None)], [getattr(m, "bias", None)]
    for weight in weights:
        if weight is not None:
            init_tensor(weight, scheme, **kwargs)
    for bias in biases:
        if bias is not None:
            init.zeros_(bias)


def apply(module, rule) -> None:
    """Apply an ``ir.InitRule`` to a module."""
    init_weights(module, rule.scheme, **rule.kwargs)
