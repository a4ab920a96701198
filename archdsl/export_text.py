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
import io
import json
import keyword
import re
import tokenize

import torch.nn as nn

from .compile import _lit, is_attribute
from .layout import LINE, SOFT, Group, IfBreak, Nest, render
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
    """Spec expression text as Python text: ``in.c`` is ``in_channels``, another dimension of
    ``in`` a placeholder of its index (``in.shape[1]``, ``in.h``: see :func:`input_dims`),
    ``true`` is ``True``."""
    text = re.sub(r"\bin\.c\b", "in_channels", text.strip())
    text = re.sub(r"\bin\.shape\s*\[\s*(-?)\s*(\d+)\s*\]", lambda m: _DIM + ("m" if m[1] else "") + m[2], text)
    text = re.sub(r"\bin\.([hwl])\b", lambda m: _DIM + {"h": "m2", "w": "m1", "l": "1"}[m[1]], text)
    return re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnone\b", "None", text)))


# ----------------------------------------------------------------------------- a block's input dimensions

_DIM = "_in_dim_"   # the placeholder of a dimension of a block's input: _in_dim_1, _in_dim_m1 (index -1)
_DIM_RE = re.compile(r"\b_in_dim_(m?)(\d+)\b")


def dim_name(k: int, rank: int) -> str:
    """The constructor argument of dimension ``k`` of a block's input of rank ``rank``, named as
    the spec's tensor attributes: ``in_channels`` (``in.c``), then ``in_height`` and
    ``in_width`` of a ``[C, H, W]`` input (``in.h``, ``in.w``), ``in_length`` of a ``[C, L]``
    one (``in.l``), ``in_dim{k}`` of any other rank."""
    if k == 0:
        return "in_channels"
    return {3: {1: "in_height", 2: "in_width"}, 2: {1: "in_length"}}.get(rank, {}).get(k, f"in_dim{k}")


def input_env(shape) -> dict:
    """The names a block's expressions read of its input: ``in_channels`` and each placeholder."""
    env = {"in_channels": shape[0]}
    for k, v in enumerate(shape):
        env[f"{_DIM}{k}"] = env[f"{_DIM}m{len(shape) - k}"] = v
    return env


def input_dims(text: str, rank: int) -> list[int]:
    """The dimensions (but the channels) of a block's input its class text reads, in order."""
    found = {(rank - int(k) if m else int(k)) for m, k in _DIM_RE.findall(text)}
    return sorted(k for k in found if 0 < k < rank)


def with_dim_names(text: str, rank: int) -> str:
    """The class text with each placeholder replaced by its argument's name (:func:`dim_name`)."""
    return _DIM_RE.sub(lambda m: dim_name(rank - int(m[2]) if m[1] else int(m[2]), rank), text)


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
    return _Unwrapped().visit(tree)


class _Unwrapped(ast.NodeTransformer):
    """``int(round(x))`` as ``round(x)`` (and ``int(len(x))`` as ``len(x)``): the value is an int
    already, and ruff's default rules flag the cast (RUF046)."""

    def visit_Call(self, node):
        self.generic_visit(node)
        inner = node.args[0] if len(node.args) == 1 and not node.keywords else None
        if isinstance(node.func, ast.Name) and node.func.id == "int" and isinstance(inner, ast.Call) \
                and isinstance(inner.func, ast.Name) and inner.func.id in ("round", "len", "int") \
                and len(inner.args) == 1 and not inner.keywords:
            return inner
        return node


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


# ----------------------------------------------------------------------------- layout

# The export writes each statement on one line, then lays out every line over ``_WIDTH``
# characters as ``ruff format`` (black's style) does: ruff's layout rules for the statements and
# expressions the export writes, printed by archdsl.layout (the printer of `archdsl fmt` too).
# A group goes on one line where it fits; else its brackets open onto indented lines, its items
# all on one line where they fit, else one a line with a trailing comma.

_WIDTH = 88
_OPEN, _CLOSE = "([{", ")]}"
_PRECEDENCE = [("if", "else"), ("or",), ("and",), (),
               ("in", "not in", "is", "is not", "<", ">", "==", ">=", "<=", "!="),
               ("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "//", "%", "@"), (), ("**",)]


class _Tok:
    """A token of the line: its kind (``tokenize``'s), its text and its columns."""

    def __init__(self, kind: int, text: str, start: int, end: int):
        self.kind, self.text, self.start, self.end = kind, text, start, end


class _Br:
    """A bracket pair and its comma-separated items."""

    def __init__(self, open_: _Tok, items: list, comma: bool, close: _Tok, after_operand: bool):
        self.text, self.items, self.comma, self.after = open_.text, items, comma, after_operand
        self.start, self.end, self.close = open_.start, close.end, close.text


class _Layout:
    """The docs of one statement line, from its tokens."""

    def __init__(self, line: str):
        self.line = line
        toks = [_Tok(t.type, t.string, t.start[1], t.end[1])
                for t in tokenize.generate_tokens(io.StringIO(line).readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
                                  tokenize.DEDENT)]
        if any(t.kind == tokenize.COMMENT for t in toks):
            raise ValueError("a comment")
        self.elems, rest = self._tree(toks, 0, None)
        if rest != len(toks):
            raise ValueError("unbalanced")

    def _tree(self, toks: list, i: int, close):
        """Elements from token ``i`` to the bracket ``close``: tokens and bracket pairs."""
        elems = []
        while i < len(toks):
            t = toks[i]
            if t.text in _CLOSE and t.kind == tokenize.OP:
                return elems, i
            if t.text in _OPEN and t.kind == tokenize.OP:
                inner, j = self._tree(toks, i + 1, t)
                items, cur = [], []
                for e in inner:
                    if isinstance(e, _Tok) and e.text == ",":
                        items.append(cur)
                        cur = []
                    else:
                        cur.append(e)
                comma = not cur and bool(items)
                if cur:
                    items.append(cur)
                elems.append(_Br(t, items, comma, toks[j], bool(elems) and _operand(elems[-1])))
                i = j + 1
            else:
                elems.append(t)
                i += 1
        if close is not None:
            raise ValueError("unclosed")
        return elems, i

    def text(self, elems: list) -> str:
        return self.line[elems[0].start:elems[-1].end] if elems else ""

    def gap(self, a, b) -> str:
        return self.line[a.end:b.start]

    # --- expressions
    def chain(self, elems: list, fluent: bool = False) -> list:
        """An atom and its trailers (``self.a.b(x)[0]``): the bracket pairs are groups."""
        out, prev = [], None
        for e in elems:
            if prev is not None:
                out.append(self.gap(prev, e))
                if fluent and isinstance(prev, _Br) and isinstance(e, _Tok) and e.text == ".":
                    out.append(SOFT)
            out.append(self.bracket(e) if isinstance(e, _Br) else e.text)
            prev = e
        return out

    def bracket(self, br: _Br):
        if not br.items:
            return br.text + br.close
        if br.text == "[" and br.after:   # a subscript
            parts = self.joined(br.items)
        elif br.text == "(" and not br.after and len(br.items) == 1 and not br.comma:   # (a + b)
            parts = [self.expr(br.items[0], True)]
        elif len(br.items) == 1 and br.comma and br.text == "(":   # a one-tuple keeps its comma
            parts = [self.expr(br.items[0], True), ","]
        else:
            parts = [Group([*self.joined(br.items), IfBreak(",")])]
        return Group([br.text, Nest(4, [SOFT, *parts]), SOFT, br.close])

    def joined(self, items: list) -> list:
        out = []
        for k, item in enumerate(items):
            out += [",", LINE] if k else []
            out.append(self.item(item))
        return out

    def item(self, elems: list):
        """One item of a bracket: ``k=v``, ``k: v``, ``*x`` or an expression."""
        if any(isinstance(e, _Tok) and e.text in ("for", "lambda") for e in elems):
            raise ValueError("a comprehension or a lambda: not written by the export")
        for k, e in enumerate(elems):
            if isinstance(e, _Tok) and e.text in ("=", ":") and k and k + 1 < len(elems):
                return [self.text(elems[:k + 1]) + self.gap(e, elems[k + 1]), self.expr(elems[k + 1:], True)]
        if elems and isinstance(elems[0], _Tok) and elems[0].text in ("*", "**") and len(elems) > 1:
            return [elems[0].text, self.expr(elems[1:], True)]
        return self.expr(elems, True)

    def split(self, elems: list):
        """(operands, operators) at the lowest-precedence operator outside brackets, or None."""
        found = []
        prev_operand = False
        k = 0
        while k < len(elems):
            e = elems[k]
            op = None
            if isinstance(e, _Tok) and prev_operand:
                nxt = elems[k + 1] if k + 1 < len(elems) else None
                two = f"{e.text} {nxt.text}" if isinstance(nxt, _Tok) else None
                if two in ("not in", "is not"):
                    op = (two, k, k + 2)
                elif (e.kind == tokenize.OP or e.text in ("if", "else", "or", "and", "in", "is")) \
                        and any(e.text in level for level in _PRECEDENCE):
                    op = (e.text, k, k + 1)
            if op is not None:
                level = next(i for i, lv in enumerate(_PRECEDENCE) if op[0] in lv)
                found.append((level, *op))
                prev_operand = False
                k = op[2]
                continue
            prev_operand = _operand(e)
            k += 1
        if not found:
            return None
        low = min(f[0] for f in found)
        ops = [f for f in found if f[0] == low]
        operands, start = [], 0
        for _, _, a, b in ops:
            operands.append(elems[start:a])
            start = b
        operands.append(elems[start:])
        return operands, [(text, elems[a], elems[b - 1]) for _, text, a, b in ops]

    def expr(self, elems: list, parenthesized: bool):
        parts = self.split(elems)
        if parts is None:
            fluent = _fluent(elems)
            doc = self.chain(elems, fluent and parenthesized)
            return Group(doc) if fluent and parenthesized else doc
        operands, ops = parts
        out = [self.expr(operands[0], parenthesized)]
        for (text, first, last), before, after in zip(ops, operands, operands[1:]):
            space = self.gap(before[-1], first)   # none around a hugged power (``2**i``)
            out += [(LINE if parenthesized else " ") if space else "", text + self.gap(last, after[0]),
                    self.expr(after, parenthesized)]
        return Group(out) if parenthesized else out

    def value(self, elems: list):
        """A statement's expression: in parentheses where it breaks, but where ruff leaves them out
        (one operator and a bracket to split at the end, or a chain of calls)."""
        parts = self.split(elems)
        if parts is None and not _fluent(elems):
            return self.expr(elems, False)
        if parts is not None and len(parts[1]) == 1 and any(isinstance(e, _Br) for e in elems):
            last, first = parts[0][-1][-1:], parts[0][0][:1]
            if (last and isinstance(last[0], _Br) and last[0].items and not (last[0].text == "[" and last[0].after)) \
                    or (first and isinstance(first[0], _Br)):
                return self.expr(elems, False)
        return Group([IfBreak("("), Nest(4, [SOFT, self.expr(elems, True)]), SOFT, IfBreak(")")])

    def statement(self):
        e = self.elems
        head = e[0].text if e and isinstance(e[0], _Tok) else ""
        if head in ("def", "class"):
            return self.chain(e)
        if head in ("return", "if", "elif", "while", "assert", "del", "raise"):
            tail = e[-1:] if e[-1].text == ":" else []
            body = e[1:len(e) - len(tail)]
            return [head, self.gap(e[0], body[0]), self.value(body), *(t.text for t in tail)]
        if head == "for":
            k = next(i for i, t in enumerate(e) if isinstance(t, _Tok) and t.text == "in")
            return [self.text(e[:k + 1]) + " ", self.value(e[k + 1:-1]), ":"]
        cuts = [i for i, t in enumerate(e) if isinstance(t, _Tok) and t.kind == tokenize.OP
                and t.text.endswith("=") and t.text not in ("==", "<=", ">=", "!=")]
        if not cuts:
            return self.value(e)
        out, start = [], 0
        for c in cuts:
            out += [*self.chain(e[start:c]), f" {e[c].text} "]
            start = c + 1
        return [*out, self.value(e[start:])]


def _operand(e) -> bool:
    """Whether ``e`` ends an operand (a name, a number, a string, a bracket pair), so that a
    following ``-`` or ``*`` is binary."""
    if isinstance(e, _Br):
        return True
    return e.kind in (tokenize.NUMBER, tokenize.STRING) or (
        e.kind == tokenize.NAME and not keyword.iskeyword(e.text)) or e.text in ("True", "False", "None")


def _fluent(elems: list) -> bool:
    """A call chain ruff lays out one call a line: two attributes or more after a bracket."""
    return sum(isinstance(a, _Br) and isinstance(b, _Tok) and b.text == "." for a, b in zip(elems, elems[1:])) >= 2


def _normalized(layout: _Layout) -> str:
    """The line as ruff spells it: strings in double quotes, and a colon of a slice with a bound
    that is not a name or a number spaced as a binary operator (``x[:, 0 : self.out]``)."""
    line, edits = layout.line, []

    def visit(elems):
        for k, e in enumerate(elems):
            if isinstance(e, _Tok) and e.text == "**" and 0 < k < len(elems) - 1 \
                    and _simple(elems[:k][::-1], True) and _simple(elems[k + 1:], False):
                edits.append((elems[k - 1].end, elems[k + 1].start, "**"))
            if isinstance(e, _Br):
                for item in e.items:
                    visit(item)
                    if e.text == "[" and e.after:
                        slice_(item)
            elif e.kind == tokenize.STRING and e.text[0] == "'" and not re.search(r"[\\\"]", e.text):
                edits.append((e.start, e.end, '"' + e.text[1:-1] + '"'))

    def slice_(item):
        colons = [k for k, e in enumerate(item) if isinstance(e, _Tok) and e.text == ":"]
        bounds, start = [], 0
        for k in [*colons, len(item)]:
            bounds.append(item[start:k])
            start = k + 1
        if not colons or all(len(b) <= 1 and not (b and isinstance(b[0], _Br)) for b in bounds):
            return
        for k in colons:
            before = " " if k and not (isinstance(item[k - 1], _Tok) and item[k - 1].text == ":") else ""
            after = " " if k + 1 < len(item) and item[k + 1].text != ":" else ""
            lo = item[k - 1].end if k else item[k].start
            hi = item[k + 1].start if k + 1 < len(item) else item[k].end
            edits.append((lo, hi, before + ":" + after))

    visit(layout.elems)
    for lo, hi, text in sorted(edits, reverse=True):
        line = line[:lo] + text + line[hi:]
    return line


def _simple(side: list, left: bool) -> bool:
    """Whether the operand of ``**`` that starts ``side`` (read away from the operator) is a
    name, a number or an attribute of a name (``2**i``, ``x**-1``), which ruff writes hugged."""
    k = 0
    if not left and side and isinstance(side[0], _Tok) and side[0].text == "-":
        k = 1
    seen = 0
    while k < len(side) and isinstance(side[k], _Tok) and (side[k].text == "." or (
            side[k].kind in (tokenize.NAME, tokenize.NUMBER) and not keyword.iskeyword(side[k].text))):
        seen, k = seen + 1, k + 1
    return bool(seen) and (k == len(side) or not isinstance(side[k], _Br))


def _lay_out(line: str) -> str:
    """One statement line laid out as ruff formats it (the line itself where it fits)."""
    if len(line) <= _WIDTH and "'" not in line and "**" not in line and not re.search(r"\[[^\]]*:", line):
        return line
    indent = len(line) - len(line.lstrip())
    try:
        text = _normalized(_Layout(line[indent:]))
        if len(text) + indent <= _WIDTH:
            return " " * indent + text
        doc = _Layout(text).statement()
    except (ValueError, StopIteration, IndexError, tokenize.TokenError, SyntaxError):
        return line
    return " " * indent + render(doc, _WIDTH, indent)


def layout(source: str) -> str:
    """``source`` with each statement over ``_WIDTH`` characters laid out as ruff formats it;
    statements that span lines already (a docstring) are left as they are."""
    lines = source.split("\n")
    multi, first = set(), None
    for t in tokenize.generate_tokens(io.StringIO(source).readline):
        if t.type == tokenize.NEWLINE:
            if first is not None and t.start[0] != first:
                multi.update(range(first, t.start[0] + 1))
            first = None
        elif first is None and t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            first = t.start[0]
    return "\n".join(line if k + 1 in multi else _lay_out(line) for k, line in enumerate(lines))


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
