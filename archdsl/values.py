"""Run-time values of the language besides plain numbers, strings, lists and dicts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Tensor:
    """A point in the graph: an IR node and its shape (batch excluded)."""

    node: int
    shape: tuple

    ATTRS = ("c", "h", "w", "l", "shape", "dims", "numel")

    def attr(self, name: str):
        """The closed set of tensor attributes; None when ``name`` is not one of them."""
        s = self.shape
        if name == "c":
            return s[0]
        if name == "h" and len(s) >= 3:
            return s[-2]
        if name == "w" and len(s) >= 3:
            return s[-1]
        if name == "l" and len(s) == 2:
            return s[1]
        if name == "shape":
            return list(s)
        if name == "dims":
            return len(s)
        if name == "numel":
            n = 1
            for v in s:
                n *= v
            return n
        return None


@dataclass(frozen=True)
class BlockRef:
    """A block as a value (higher-order blocks), with arguments bound so far."""

    block: Any  # syntax.BlockDef
    args: tuple = ()
    kwargs: tuple = ()  # ((name, value), ...)
    module: Any = field(default=None, compare=False)  # the module scope it was defined in


@dataclass(frozen=True)
class OpRef:
    """An op as a value (``act = relu``), with arguments bound so far."""

    op: str
    args: tuple = ()
    kwargs: tuple = ()


def type_name(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if v is None:
        return "none"
    return {int: "int", float: "float", str: "string", list: "list", tuple: "tuple", dict: "dict",
            range: "range", Tensor: "tensor", BlockRef: "block", OpRef: "op"}.get(type(v), type(v).__name__)


def show(v) -> str:
    """A value as the language writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return repr(v).replace("'", '"') if '"' not in v else repr(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(show(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else (f"({inner},)" if len(v) == 1 else f"({inner})")
    if isinstance(v, dict):
        return "{" + ", ".join(f"{show(k)}: {show(x)}" for k, x in v.items()) + "}"
    if isinstance(v, Tensor):
        return f"tensor {list(v.shape)}"
    if isinstance(v, BlockRef):
        return f"block {v.block.name}"
    if isinstance(v, OpRef):
        return f"op {v.op}"
    if isinstance(v, range):
        return f"range({v.start}, {v.stop}, {v.step})"
    return repr(v)
