"""The spec's text as the idiomatic export (``archdsl.export``) reads it, and the source it writes.

Expressions: a spec's expression text (a layer's argument, a ``let``, an ``if`` condition) is
read as a Python expression where it is one this export writes (names, numbers, arithmetic,
comparisons, ``x if c else y``, a few builtins; ``in.c`` is ``in_channels``). A value is written
as its expression only when evaluating the expression for the instance gives the value the
elaborator used (:class:`SymInt`). The texts come from ``graph.sources`` at the spans the IR
records; the front end is not imported (a back-end module never does).
"""
from __future__ import annotations

import ast
import copy
import functools
import json
import re

import torch.nn as nn

from .compile import _lit, is_attribute
from .ops import HELPERS

class Unsupported(Exception):
    """The spec uses something the idiomatic export does not write; the flat exporter is used instead."""


_SAFE_CALLS = {"min": min, "max": max, "abs": abs, "int": int, "len": len, "round": round}

# ----------------------------------------------------------------------------- expressions

class _SymInt(int):
    """An int the spec computes with an expression: rendered as the expression."""
    expr: str


class _SymFloat(float):
    expr: str


class _FwdInt(int):
    """A value forward's text writes as an expression of the class's stored parameters."""
    text: str

    def __repr__(self):
        return self.text

    __str__ = __repr__

    def __format__(self, spec):
        return self.text if not spec else int.__format__(self, spec)


class _FwdFloat(float):
    text: str

    def __repr__(self):
        return self.text

    __str__ = __repr__

    def __format__(self, spec):
        return self.text if not spec else float.__format__(self, spec)


def _fwd(value, text: str):
    v = (_FwdInt if isinstance(value, int) else _FwdFloat)(value)
    v.text = text
    return v


class _Selfed(ast.NodeTransformer):
    def visit_Name(self, node):
        if node.id in _SAFE_CALLS:
            return node
        return ast.copy_location(ast.Attribute(ast.Name("self", ast.Load()), node.id, ast.Load()), node)


def _selfed(tree):
    """The expression with each name read from ``self``: ``self.out`` for ``out``."""
    import copy
    return _Selfed().visit(copy.deepcopy(tree))


_MODULE_NAMES = set(dir(nn.Module()))
# module types an init rule may reach by isinstance: no other module the export builds is one of them
_TYPED = {f"nn.{k}" for k in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
                              "Linear", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm")}


def _sym(value, expr: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    s = (_SymInt if isinstance(value, int) else _SymFloat)(value)
    s.expr = expr
    return s


def _prep(text: str) -> str:
    """Spec expression text as Python text: ``in.c`` is ``in_channels``, ``true`` is ``True``."""
    text = re.sub(r"\bin\.c\b", "in_channels", text.strip())
    return re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnone\b", "None", text)))


_ALLOWED = (ast.Name, ast.Constant, ast.List, ast.Tuple, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call,
            ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.Load, ast.keyword)


def _checked(tree):
    """The tree when it is an expression this export writes (names, numbers, arithmetic, comparisons,
    ``and``/``or``/``not``, ``x if c else y``, a few builtins), else None."""
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            return None
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _SAFE_CALLS):
            return None
    return tree


def _py(text: str):
    """A spec expression as a Python expression tree, or None when it is not one this export writes."""
    text = _prep(text)
    if re.search(r"\bin\b\s*\.", text):
        return None
    try:
        return _checked(ast.parse(text, mode="eval").body)
    except SyntaxError:
        return None


_COMPILED: dict = {}   # id(tree) -> (tree, its names, its code): a spec's texts repeat across instances


def _evaluate(tree, env: dict):
    """The value of an expression tree in ``env``, or a sentinel when a name is unknown or it fails."""
    hit = _COMPILED.get(id(tree))
    if hit is None or hit[0] is not tree:
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_SAFE_CALLS)
        hit = _COMPILED[id(tree)] = (tree, names, compile(ast.Expression(tree), "<spec>", "eval"))
        if len(_COMPILED) > 4096:
            _COMPILED.clear()
            _COMPILED[id(tree)] = hit
    if not hit[1] <= env.keys():
        return _FAIL
    try:
        return eval(hit[2], {"__builtins__": {}, **_SAFE_CALLS}, env)
    except Exception:
        return _FAIL


_FAIL = object()


def _same(a, b) -> bool:
    return type(a) is type(b) or (isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool)
                                  and not isinstance(b, bool)) if a == b else False


def _val(v) -> str:
    """Source of an argument: an expression for a value the spec computes, else the constant."""
    if isinstance(v, (_SymInt, _SymFloat)):
        return v.expr
    if isinstance(v, tuple):
        return "(" + ", ".join(map(_val, v)) + ("," if len(v) == 1 else "") + ")"
    return _pylit(v)


@functools.lru_cache(maxsize=1024)
def _call_args(text: str):
    """The positional and keyword argument trees of a call's text ``name(a, k=b)`` (a tree is None
    where the argument is not an expression this export writes), or None."""
    text = re.sub(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*:(?!:)\s*", "", text)   # a label
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*", text)
    if not m:
        return None
    rest = text[m.end():]
    if not rest.startswith("("):   # `bn`, or a join's body `add { ... }`: no arguments
        return ([], {}) if not rest.strip() or rest.lstrip().startswith("{") else None
    depth, end = 0, None
    for i, ch in enumerate(rest):   # the argument list: up to its closing parenthesis
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(ch, 0)
        if depth == 0:
            end = i + 1
            break
    if end is None or (rest[end:].strip() and not rest[end:].lstrip().startswith("{")):
        return None
    try:
        call = ast.parse("f" + _prep(rest[:end]).replace("\n", " "), mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call) or any(isinstance(a, ast.Starred) for a in call.args):
        return None
    return [_checked(a) for a in call.args], {k.arg: _checked(k.value) for k in call.keywords if k.arg}


class _Marker:
    """A value no default equals: finds the torch keyword an op's module rule writes an attribute as."""

    def __eq__(self, other):
        return other is self

    __hash__ = object.__hash__


# ----------------------------------------------------------------------------- the spec's text

class _Source:
    """What the exporter reads of the spec's text: block headers (parameters and defaults), ``let``
    statements and ``if`` conditions, found by position (spans) in ``graph.sources``."""

    def __init__(self, graph):
        self.texts = graph.sources
        self._lines = {f: t.splitlines() for f, t in graph.sources.items()}

    def span_text(self, span) -> str | None:
        lines = self._lines.get(getattr(span, "file", None))
        if not lines or span.end_line > len(lines):
            return None
        if span.line == span.end_line:
            return lines[span.line - 1][span.col - 1:span.end_col - 1]
        part = [lines[span.line - 1][span.col - 1:], *lines[span.line:span.end_line - 1],
                lines[span.end_line - 1][:span.end_col - 1]]
        return "\n".join(part)

    def before(self, span) -> str:
        lines = self._lines.get(getattr(span, "file", None)) or []
        if not lines:
            return ""
        return "\n".join([*lines[:span.line - 1], lines[span.line - 1][:span.col - 1]])

    def definition(self, name: str, network: bool = False):
        """(parameters [(name, default tree or None)], body text) of a block or network, or None."""
        word = "network" if network else "block"
        for text in self.texts.values():
            m = re.search(rf"(?m)^\s*(?:inline\s+)?{word}\s+{re.escape(name)}\s*\(", text)
            if not m:
                continue
            i, depth, start = m.end(), 1, m.end()
            while i < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            header = text[start:i - 1]
            j = text.find("{", i)
            depth, k = 1, j + 1
            while k < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[k], 0)
                k += 1
            params = []
            for part in _split_top(header):
                pname, _, default = part.partition("=")
                pname = pname.strip()
                if pname:
                    params.append((pname, _py(default) if default.strip() else None))
            return params, text[j + 1:k - 1]
        return None

    @staticmethod
    def lets(body: str) -> list:
        # a let inside a loop or a branch is found too: each expression written with one is checked
        # against the values of every instance, so such a let is used only where it gives them
        """``let NAME = EXPR`` statements of a body text, in order, as (name, tree)."""
        found = []
        for m in re.finditer(r"\blet\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^;\n]+)", body):
            tree = _py(m.group(2))
            if tree is not None:
                found.append((m.group(1), tree))
        return found

    def condition(self, span):
        """The condition of the ``if`` whose body starts at ``span``, or None."""
        m = re.search(r"\bif\s+([^{}]+?)\s*\{\s*(?:[A-Za-z_]\w*\s*:\s*)?$", self.before(span))
        return _py(m.group(1)) if m else None


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


_WIDTH = 100
_OPEN, _CLOSE = "([{", ")]}"


def _wrap(line: str) -> list[str]:
    """A line over ``_WIDTH`` characters split as black writes a call: one argument per line."""
    if len(line) <= _WIDTH:
        return [line]
    indent = line[:len(line) - len(line.lstrip())]
    spans, stack, quote, i = {}, [], False, 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch in _OPEN:
            stack.append(i)
        elif ch in _CLOSE and stack:
            spans[stack.pop()] = i
        i += 1
    for start in sorted(spans):   # the first bracket that runs to the end (but a trailing `:`)
        end = spans[start]
        tail = line[end + 1:]
        if not tail.strip(" ):,") and start >= len(indent):
            break
    else:
        return [line]
    inner = line[start + 1:end]
    args, depth, quote, cur, k = [], 0, False, "", 0
    while k < len(inner):
        ch = inner[k]
        if quote:
            cur += ch
            if ch == "\\":
                cur += inner[k + 1]
                k += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote, cur = True, cur + ch
        elif ch in _OPEN:
            depth, cur = depth + 1, cur + ch
        elif ch in _CLOSE:
            depth, cur = depth - 1, cur + ch
        elif ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
        k += 1
    if cur.strip():
        args.append(cur.strip())
    if not args:
        return [line]
    sub = indent + "    "
    out = [line[:start + 1]]
    for a in args:
        out += _wrap(f"{sub}{a},")
    return out + [indent + line[end:]]


def _names(tree) -> set:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_SAFE_CALLS)


def _let_lines(used: set, trees: dict, indent: str) -> list[str]:
    """``w = planes * base_width // 64 * groups`` for each let the body's expressions read."""
    need = set(used)
    for name in reversed(list(trees)):   # a let read by a needed let is needed
        if name in need:
            need |= _names(trees[name])
    return [f"{indent}{name} = {ast.unparse(tree)}" for name, tree in trees.items() if name in need]


class _Names:
    """Local names of a forward: ``out``, ``out1``, ...; a dead tensor's name is taken again."""

    def __init__(self, taken: set, base: str):
        self.taken, self.free, self.n, self.base = set(taken), [], 0, base

    def fresh(self, base: str | None = None) -> str:
        if base and base not in self.taken:
            self.taken.add(base)
            return base
        if self.free and base is None:
            self.free.sort(key=lambda s: (len(s), s))
            return self.free.pop(0)
        while True:
            name = (base or self.base) + (str(self.n) if self.n else "")
            self.n += 1
            if name not in self.taken:
                self.taken.add(name)
                return name

    def release(self, name: str) -> None:
        self.free.append(name)


def _rel(name: str, prefix: str) -> str:
    return name[len(prefix) + 1:] if prefix else name


def _pylit(v) -> str:
    """Source of a constant, lists and dicts (of a network's parameters) included."""
    if isinstance(v, list):
        return "[" + ", ".join(map(_pylit, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_pylit(k)}: {_pylit(x)}" for k, x in v.items()) + "}"
    if isinstance(v, tuple):
        return "(" + ", ".join(map(_pylit, v)) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, str):
        return json.dumps(v)   # double quotes, as black and ruff write strings
    return _lit(v)


def _litable(v) -> bool:
    try:
        _pylit(v)
        return True
    except AssertionError:
        return False


_RESERVED = {"self", "super", "nn", "F", "torch", "collections", "in_channels", "init_weights", "init_tensor", "m",
             "name", *HELPERS}


def _check_names(params: dict, owner: str) -> None:
    """Parameters become Python names of ``__init__``: none may hide a name the class body reads."""
    for p in params:
        if not is_attribute(p) or p in _RESERVED:
            raise Unsupported(f"`{owner}`'s parameter `{p}` cannot be a Python parameter name here")


# parameter-free modules an unlabelled layer is written as a function of instead (torchvision's style)
_FUNCTIONAL = re.compile(r"nn\.(AdaptiveAvgPool|AdaptiveMaxPool|MaxPool|AvgPool)([123])d\((.*)\)")
_SNAKE = {"AdaptiveAvgPool": "adaptive_avg_pool", "AdaptiveMaxPool": "adaptive_max_pool", "MaxPool": "max_pool",
          "AvgPool": "avg_pool"}


def _functional(ctor: str | None, d: dict, path: str):
    """``F.max_pool2d({}, 3, stride=2)`` for an unlabelled parameter-free pooling layer (its module
    would carry a name like "4" and no tensors), else None."""
    m = _FUNCTIONAL.fullmatch(ctor or "")
    if m is None or d["params"] or d["buffers"] or is_attribute(path.split(".")[-1]) or "." in path:
        return None
    args = m.group(3).replace("{", "{{").replace("}", "}}")
    return f"F.{_SNAKE[m.group(1)]}{m.group(2)}d({{}}, {args})"
