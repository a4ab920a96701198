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


def show(v, limit: int = 200) -> str:
    """A value as the language writes it, cut to about ``limit`` characters: a diagnostic never
    spends more than that on a value, however large or deeply nested."""
    out: list[str] = []
    _show(v, out, [limit], 0)
    text = "".join(out)
    return text if len(text) <= limit else text[:limit] + " ..."


def _show(v, out: list, budget: list, depth: int) -> None:
    if budget[0] <= 0:
        return
    if isinstance(v, (list, tuple, dict)):
        if depth > 20:
            out.append("...")
            return
        opener, closer = ("[", "]") if isinstance(v, list) else ("{", "}") if isinstance(v, dict) else ("(", ")")
        out.append(opener)
        budget[0] -= 1
        items = iter(v.items()) if isinstance(v, dict) else iter(v)
        for i, item in enumerate(items):
            if budget[0] <= 0:
                out.append("...")
                break
            if i:
                out.append(", ")
            if isinstance(v, dict):
                _show(item[0], out, budget, depth + 1)
                out.append(": ")
                item = item[1]
            _show(item, out, budget, depth + 1)
        if isinstance(v, tuple) and len(v) == 1:
            out.append(",")
        out.append(closer)
        return
    text = _scalar(v, budget[0])
    budget[0] -= len(text)
    out.append(text)


def _scalar(v, limit: int) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        cut = v[:limit + 1]
        return repr(cut).replace("'", '"') if '"' not in cut else repr(cut)
    if isinstance(v, Tensor):
        return f"tensor {list(v.shape)}"
    if isinstance(v, BlockRef):
        return f"block {v.block.name}"
    if isinstance(v, OpRef):
        return f"op {v.op}"
    if isinstance(v, range):
        return f"range({v.start}, {v.stop}, {v.step})"
    if isinstance(v, int) and abs(v) >= 10**30:
        return f"~10**{len(str(abs(v))) - 1}" if abs(v) < 10**4000 else "(a huge integer)"
    return repr(v)
