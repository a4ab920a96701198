"""Weight initialisation schemes a spec can name with ``init``.

``SCHEMES`` maps each scheme to its keyword arguments and their defaults; it is
read by the elaborator (to check specs without torch) and by the compiler.
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
