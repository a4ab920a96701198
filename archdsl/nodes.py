"""The AST: one dataclass per construct of the language, each carrying the :class:`Span`
it came from. ``archdsl.syntax`` builds it (and re-exports every class, so the stages
write ``syntax.Call``); nothing here depends on Lark."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import Span

@dataclass
class Node:
    span: Span


# expressions
@dataclass
class Const(Node):
    value: Any


@dataclass
class Var(Node):
    name: str


@dataclass
class InTensor(Node):
    pass


@dataclass
class TensorRef(Node):
    name: str


@dataclass
class ListExpr(Node):
    items: list


@dataclass
class TupleExpr(Node):
    items: list


@dataclass
class DictExpr(Node):
    pairs: list


@dataclass
class Unary(Node):
    op: str
    operand: Node


@dataclass
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass
class Compare(Node):
    ops: list
    operands: list


@dataclass
class BoolOp(Node):
    op: str  # and | or
    left: Node
    right: Node


@dataclass
class Not(Node):
    operand: Node


@dataclass
class Ternary(Node):
    cond: Node
    then: Node
    other: Node


@dataclass
class Arg(Node):
    name: str | None
    value: Node


@dataclass
class CallExpr(Node):
    func: Node
    args: list


@dataclass
class Index(Node):
    target: Node
    index: Node


@dataclass
class Attr(Node):
    target: Node
    name: str


@dataclass
class Slice(Node):
    """``target[start:stop:step]``; a missing bound is None."""
    target: Node
    start: Node | None
    stop: Node | None
    step: Node | None


@dataclass
class Comprehension(Node):
    """``[elem for targets in iterable if cond]``."""
    elem: Node
    targets: list
    iterable: Node
    cond: Node | None


# statements
@dataclass
class Label(Node):
    parts: list  # str | expression node
    quoted: bool = False  # `"block{i}-{j}":` (any characters but `.`)


@dataclass
class Let(Node):
    name: str
    value: Node


@dataclass
class Assert(Node):
    cond: Node
    message: Node | None
    text: str


@dataclass
class Require(Node):
    """``require EXPR, "message"``: a constraint of a design space (E122 when a design fails it)."""
    cond: Node
    message: Node | None
    text: str


@dataclass
class Input(Node):
    label: Label
    shape: Node


@dataclass
class Output(Node):
    names: list  # [(name, span)]
    as_dict: bool = False  # `output {out, aux}`: the outputs by name


@dataclass
class TensorDecl(Node):
    """``param NAME: [shape] = scheme(args)`` or ``buffer ...``: a tensor the scope owns."""
    kind: str  # "param" | "buffer"
    label: Label
    shape: Node
    scheme: str | None
    args: list


@dataclass
class Meta(Node):
    name: str
    value: Node


@dataclass
class Init(Node):
    target: str
    is_pattern: bool
    scheme: str
    args: list


@dataclass
class For(Node):
    targets: list
    iterable: Node
    body: list


@dataclass
class If(Node):
    cond: Node
    body: list
    orelse: list | None


@dataclass
class Bind(Node):
    name: str
    chain: "Chain"


@dataclass
class Chain(Node):
    items: list


@dataclass
class Item(Node):
    label: Label | None
    tap: list | None  # tap arguments, [] for a bare `tap`
    atom: Node
    repeat: Node | None


@dataclass
class Call(Node):
    name: str
    args: list | None
    name_span: Span


@dataclass
class Group(Node):
    body: list


@dataclass
class Join(Node):
    kind: str
    args: list
    body: list


@dataclass
class Ref(Node):
    name: str


# definitions
@dataclass
class Param(Node):
    name: str
    default: Node | None


@dataclass
class BlockDef(Node):
    name: str
    params: list
    body: list
    is_network: bool = False
    inline: bool = False  # `inline block`: the body expands into the caller's scope


@dataclass
class Import(Node):
    path: str


@dataclass
class Module(Node):
    items: list
