"""The spec writer: one self-contained, concrete ``.arch`` file for a checked network.

Given an elaborated graph (its loading record ``graph.record``: every text elaboration read and
how each import resolved, and ``graph.params``: the value each network parameter took),
:func:`concrete_spec` writes one file that needs nothing else:

* every import is inlined: the blocks and top-level ``let``\\ s of each imported file, in the order
  the imports resolve (a file's imports before the file), each once;
* the main file keeps its own blocks and lets, and the one network that was elaborated (its
  other networks, and the networks of imported files, are left out);
* the network's parameters are replaced by the values used (``--set``, the defaults, what the
  ``train`` command set), and an input whose shape was overridden (``--input``) gets that shape;
* a parameter whose value is a block (``--set unit=bottleneck``) is written as the block's name,
  and the block is in the file; an op value is written as its call (``conv(64, 3, pad=1)``).

``archdsl check`` of the result elaborates to the same IR (same node names, ops, shapes,
attributes and parameter counts): :func:`same_ir` is that test, and the ``train`` command runs
it before it keeps a ``spec.arch``. A network whose inlining would define one name twice with
two different texts (a block of the main file shadowing an imported one of the same name) is
:class:`SpecWriteError`: the file would not mean the same thing in one scope.
"""
from __future__ import annotations

import math

from .errors import Limits
from .ir import ArchGraph
from .syntax import BlockDef, Input, Let, parse
from .values import BlockRef, OpRef, _escape, _QUOTED


class SpecWriteError(ValueError):
    """The network cannot be written as one self-contained file (a name clash, a value with no literal)."""


def concrete_spec(graph: ArchGraph) -> str:
    """The text of one self-contained spec elaborating to ``graph`` (see the module docstring)."""
    record = getattr(graph, "record", None)
    if not record:
        raise SpecWriteError("the graph has no loading record (it was not made by archdsl.check)")
    files, imports, main, shown = record["files"], record["imports"], record["main"], record["shown"]
    limits = Limits.of({k: v for k, v in record.get("limits", {}).items() if k in Limits.FIELDS})
    order = _import_order(main, imports)
    defined: dict[str, tuple[str, str]] = {}   # name -> (text, file shown)
    parts = [f"# {graph.network}: written by archdsl from {shown[main]}, imports inlined and",
             "# the network's parameters fixed to the values used.", ""]
    network_text = None
    for key in order:
        text = files[key]
        module = parse(text, shown[key], limits)
        chunks = []
        for item in module.items:
            if isinstance(item, BlockDef) and item.is_network:
                if key == main and item.name == graph.network:
                    network_text = _network(text, item, graph, record.get("inputs") or {})
                continue
            if not isinstance(item, (BlockDef, Let)):
                continue   # imports: inlined through `order`
            piece = _slice(text, item.span)
            seen = defined.get(item.name)
            if seen is not None:
                if seen[0] == piece:
                    continue
                raise SpecWriteError(f"`{item.name}` is defined in both {seen[1]} and {shown[key]}, differently: "
                                     "one file cannot hold both")
            defined[item.name] = (piece, shown[key])
            chunks.append(piece)
        if chunks:
            parts += [f"# from {shown[key]}", *(c + "\n" for c in chunks)]
    if network_text is None:
        raise SpecWriteError(f"network `{graph.network}` is not in {shown[main]}")
    parts.append(network_text)
    return "\n".join(parts).rstrip("\n") + "\n"


def _import_order(main: str, imports: dict) -> list[str]:
    """Files in the order their definitions are written: each file after everything it imports."""
    order, seen = [], set()
    stack = [(main, iter(imports.get(main, {}).values()))]
    seen.add(main)
    while stack:
        key, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            order.append(key)
        elif child not in seen:
            seen.add(child)
            stack.append((child, iter(imports.get(child, {}).values())))
    return order


def _offsets(text: str) -> list[int]:
    starts, at = [0], 0
    for line in text.split("\n"):
        at += len(line) + 1
        starts.append(at)
    return starts


def _slice(text: str, span, starts: list[int] | None = None) -> str:
    starts = starts or _offsets(text)
    return text[starts[span.line - 1] + span.col - 1:starts[span.end_line - 1] + span.end_col - 1]


def _network(text: str, net: BlockDef, graph: ArchGraph, inputs: dict) -> str:
    """The network's definition with its parameter list (and overridden input shapes) replaced."""
    starts = _offsets(text)

    def at(line: int, col: int) -> int:
        return starts[line - 1] + col - 1
    begin, end = at(net.span.line, net.span.col), at(net.span.end_line, net.span.end_col)
    edits = []   # (start, stop, replacement), absolute offsets
    if net.params:
        first, last = net.params[0].span, net.params[-1].span
        values = ", ".join(f"{p.name} = {literal(graph.params[p.name], p.name)}" for p in net.params)
        edits.append((at(first.line, first.col), at(last.end_line, last.end_col), values))
    for stmt in net.body:
        if isinstance(stmt, Input) and all(isinstance(x, str) for x in stmt.label.parts):
            name = "".join(stmt.label.parts)
            if name in inputs:
                s = stmt.shape.span
                edits.append((at(s.line, s.col), at(s.end_line, s.end_col), literal(list(inputs[name]), name)))
    out, pos = [], begin
    for start, stop, new in sorted(edits):
        out += [text[pos:start], new]
        pos = stop
    out.append(text[pos:end])
    return "".join(out)


def literal(value, what: str = "value") -> str:
    """A value as spec text that evaluates to it: numbers, strings, booleans, none, lists, tuples,
    dicts, blocks (by name) and ops (as calls)."""
    stack_depth = [0]

    def lit(v) -> str:
        stack_depth[0] += 1
        if stack_depth[0] > 200:
            raise SpecWriteError(f"the value of `{what}` nests too deeply to write")
        try:
            t = type(v)
            if t is bool:
                return "true" if v else "false"
            if v is None:
                return "none"
            if t is int:
                return str(v)
            if t is float:
                if not math.isfinite(v):
                    raise SpecWriteError(f"`{what}` is {v}: the language has no literal for it")
                return repr(v)
            if t is str:
                return '"' + _escape(v, _QUOTED) + '"'
            if t is list:
                return "[" + ", ".join(lit(x) for x in v) + "]"
            if t is tuple:
                return "(" + ", ".join(lit(x) for x in v) + ("," if len(v) == 1 else "") + ")"
            if t is dict:
                return "{" + ", ".join(f"{lit(k)}: {lit(x)}" for k, x in v.items()) + "}"
            if isinstance(v, (BlockRef, OpRef)):
                head = v.op if isinstance(v, OpRef) else v.block.name
                if not v.args and not v.kwargs:
                    return head
                return head + "(" + ", ".join([*(lit(a) for a in v.args),
                                               *(f"{k}={lit(x)}" for k, x in v.kwargs)]) + ")"
            raise SpecWriteError(f"`{what}` holds a {t.__name__} value, which has no literal")
        finally:
            stack_depth[0] -= 1
    return lit(value)


def ir_signature(graph: ArchGraph) -> list[tuple]:
    """What "the same IR" compares: per node its name, op, shape, attributes and counts; the outputs."""
    nodes = [(d["name"], d["op"], tuple(d["shape"]), d["params"], d["buffers"], d["attrs"])
             for d in graph.table.values()]
    return nodes + [("output", o.name, graph.node(o.node)["name"], o.train_only) for o in graph.outputs]


def same_ir(a: ArchGraph, b: ArchGraph) -> bool:
    """Whether two graphs elaborate the same network (see :func:`ir_signature`)."""
    return ir_signature(a) == ir_signature(b)


def write_checked(graph: ArchGraph, check) -> str:
    """:func:`concrete_spec`, checked: ``check(text)`` (the front end's ``check`` of spec text) must
    elaborate it to the same IR, else :class:`SpecWriteError`."""
    text = concrete_spec(graph)
    again = check(text)
    if not same_ir(graph, again):
        raise SpecWriteError("the written spec does not elaborate to the same network")
    return text
