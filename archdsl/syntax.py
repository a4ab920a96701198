"""Parse: source text -> AST. The Lark grammar lives in ``grammars/arch.lark``.

Every AST node carries the :class:`Span` it came from. Parsing never recurses on
the input's nesting (the LALR parser builds the AST while it reduces), and the
post-lexer refuses nesting deeper than the ``nesting`` limit, so no input can
exhaust the Python stack here.

The LALR tables are generated ahead of time into ``parser_tables.json`` (never Lark's
pickle cache); after changing the grammar, regenerate them with
``.venv/bin/python scripts/gen_parser.py`` (a test fails until then).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, v_args
from lark.lexer import LexerThread
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from .errors import Limits, ParseError, Span

from .nodes import (Node, Const, Var, InTensor, TensorRef, ListExpr, TupleExpr, DictExpr, Unary, Binary, Compare,
                    BoolOp, Not, Ternary, Arg, CallExpr, Index, Attr, Slice, Comprehension, Label, Let, Assert, Require,
                    Input, Output, TensorDecl, Meta, Init, For, If, Bind, Chain, Item, Call, Group, Join, Ref, Param,
                    BlockDef, Import, Module)  # noqa: F401 (re-exported)

# ----------------------------------------------------------------------------- post-lexer

class _PostLex:
    """Drops newlines inside brackets, around `->` and before `else`; bounds nesting; and gives
    back the tokens of a label-looking `key:` inside an expression (`xs[1:]`, `{"a": 1}`).

    The lexer is context-free, so `a:`, `0:` and `"a":` always lex as a label; only here is it
    known whether a statement (where labels are) or an expression (where `:` separates a slice's
    bounds or a dict's key from its value) is open. Inside `(` or `[`, or a `{` that opens a
    dict, a label token is split into its key token and `:`. A `{` opens a dict where an
    expression must start: after `(`, `[`, `,`, `:`, an operator or keyword of an expression, or
    the `=` of a `let` or `meta`; otherwise (after `else`, too) it opens a body: a group, a join
    or a block.
    """

    always_accept = ("_NL",)

    def __init__(self, nesting: int):
        self.nesting = nesting

    def process(self, stream, lossless: bool = False):
        """The parser's token stream; with ``lossless``, every token of the text instead (spaces,
        comments and newlines too, so that their values join into the text), with the dict
        braces typed ``DICT_OPEN`` / ``DICT_CLOSE`` and labels inside expressions split, as the
        parser sees them (:func:`tokens`)."""
        stack = []   # open brackets: "(", "[", "dict" or "body"
        depth = 0    # open brackets inside which newlines are not statement ends: ( [ and dicts
        held = None  # a newline waiting to see what follows it
        prev = None
        recent = (None, None, None)  # the last three token types, for `let x = {`
        for tok in stream:
            t = tok.type
            if lossless and (t == "COMMENT" or t.startswith("__IGNORE")):
                yield tok
                continue
            if t == "_NL":
                if lossless:
                    yield tok
                if depth or prev == "__ANON_ARROW" or (prev is not None and prev in _OPENERS):
                    continue
                held = held or tok
                continue
            if held is not None:
                if tok.value != "->" and t != "ELSE":
                    recent = (recent[1], recent[2], "_NL")
                    if not lossless:
                        yield held
                held = None
            if t == "LABEL" and depth:
                for part in split_label(tok, lossless):
                    if part.type != "__IGNORE_SPACE":
                        prev = part.type
                        recent = (recent[1], recent[2], part.type)
                    yield part
                continue
            if tok.value in ("(", "[", "{"):
                kind = tok.value
                if kind == "{":
                    kind = "dict" if depth or t == "LBRACE" and _starts_expression(recent) else "body"
                stack.append(kind)
                if kind != "body":
                    depth += 1
                if len(stack) > self.nesting:
                    raise _TooDeep(tok)
                if lossless and kind == "dict":
                    tok = Token.new_borrow_pos("DICT_OPEN", "{", tok)
            elif tok.value in (")", "]", "}") and stack:
                closed = stack.pop()
                if closed != "body":
                    depth -= 1
                if lossless and closed == "dict":
                    tok = Token.new_borrow_pos("DICT_CLOSE", "}", tok)
            prev = _arrow_type(tok)
            recent = (recent[1], recent[2], t)
            yield tok
        if held is not None and not lossless:
            yield held


_OPENERS = ("LPAR", "LSQB", "COMMA")
# tokens after which an expression starts (so a `{` there opens a dict)
_EXPRESSION_STARTS = frozenset(("LPAR", "LSQB", "COMMA", "COLON", "ADD_OP", "MUL_OP", "STAR", "POW_OP", "COMP_OP",
                                "IN", "IF", "AND", "OR", "NOT", "ASSERT", "REQUIRE"))


def _starts_expression(recent) -> bool:
    before2, before, last = recent
    if last == "EQUAL":  # `let x = {`, `meta x = {` (a bare `x = {` binds a group)
        return before == "NAME" and before2 in ("LET", "META")
    return last in _EXPRESSION_STARTS


_KEY = re.compile(r'"(?:[^"\\\n]|\\[^\n])*"|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9]+)?|[A-Za-z_][A-Za-z0-9_]*')
_KEYWORDS = {"in": "IN", "true": "TRUE", "false": "FALSE", "none": "NONE", "not": "NOT"}


def split_label(tok, spaces: bool = False):
    """`key:` (a label token met inside an expression) as the key's token and `:` (with the
    spaces between them as an ``__IGNORE_SPACE`` token where ``spaces`` is asked for)."""
    text = str(tok)
    colon = text.rindex(":")
    key = text[:colon].rstrip()
    m = _KEY.fullmatch(key)
    if m is None:  # `{i}:` and the like: leave it whole, for the parser to report
        yield tok
        return
    kind = ("STRING" if key.startswith('"') else "NUMBER" if key[0].isdigit() else _KEYWORDS.get(key, "NAME"))
    yield Token(kind, key, start_pos=tok.start_pos, line=tok.line, column=tok.column, end_line=tok.line,
                end_column=tok.column + len(key), end_pos=tok.start_pos + len(key))
    if spaces and colon > len(key):
        yield Token("__IGNORE_SPACE", text[len(key):colon], start_pos=tok.start_pos + len(key), line=tok.line,
                    column=tok.column + len(key), end_line=tok.line, end_column=tok.column + colon,
                    end_pos=tok.start_pos + colon)
    yield Token("COLON", ":", start_pos=tok.start_pos + colon, line=tok.line, column=tok.column + colon,
                end_line=tok.line, end_column=tok.column + colon + 1, end_pos=tok.start_pos + colon + 1)


def _arrow_type(tok):
    return "__ANON_ARROW" if tok.value == "->" else tok.type


class _TooDeep(Exception):
    def __init__(self, tok):
        self.tok = tok


# ----------------------------------------------------------------------------- AST builder

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0", "r": "\r"}


def _unescape(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


@v_args(meta=True, inline=True)
class _Builder(Transformer_NonRecursive):
    """Lark callbacks (named after the grammar's rules) building the AST, without recursion."""

    def __init__(self, file: str, text: str, line0: int = 0, col0: int = 0, nesting: int = 200):
        super().__init__()
        self.file, self.text, self.line0, self.col0 = file, text, line0, col0
        self.nesting = nesting
        self.lines = None  # the text split into lines, once, when an assert first needs it

    def deep(self, node, *children):
        """Record an expression's depth; refuse one deeper than the nesting limit (E005), so that
        evaluating it can never exhaust the Python stack (operator chains have no brackets)."""
        node.depth = d = 1 + max((getattr(c, "depth", 0) for c in children), default=0)
        if d > self.nesting:
            raise ParseError("E005", f"expression nested deeper than {self.nesting} levels", node.span,
                             hint="split it with `let`, or raise the limit with `--limit nesting=N`")
        return node

    def span(self, meta) -> Span:
        if meta.empty:
            return _span(self.file, 1, 1, 1, 1, self.line0, self.col0)
        return _span(self.file, meta.line, meta.column, meta.end_line, meta.end_column, self.line0, self.col0)

    def tspan(self, tok: Token) -> Span:
        return _span(self.file, tok.line, tok.column, tok.end_line, tok.end_column, self.line0, self.col0)

    # definitions
    def start(self, meta, *items):
        return Module(self.span(meta), list(items))

    def import_stmt(self, meta, path):
        return Import(self.span(meta), _unescape(path))

    def block_def(self, meta, *parts):
        inline, (name, params, body) = len(parts) == 4, parts[-3:]
        return BlockDef(self.span(meta), str(name), params or [], body, inline=inline)

    def network_def(self, meta, name, params, body):
        return BlockDef(self.span(meta), str(name), params or [], body, is_network=True)

    def params(self, meta, *ps):
        return list(ps)

    def param(self, meta, name, default=None):
        return Param(self.span(meta), str(name), default)

    def body(self, meta, *stmts):
        return list(stmts)

    # statements
    def let_stmt(self, meta, name, value):
        return Let(self.span(meta), str(name), value)

    def assert_stmt(self, meta, cond, message=None):
        return Assert(self.span(meta), cond, message, self.text_of(cond.span))

    def require_stmt(self, meta, cond, message=None):
        return Require(self.span(meta), cond, message, self.text_of(cond.span))

    def text_of(self, span: Span) -> str:
        if self.lines is None:
            self.lines = self.text.split("\n")
        lines = self.lines
        line = lines[span.line - self.line0 - 1] if span.line - self.line0 - 1 < len(lines) else ""
        off = self.col0 if span.line - self.line0 == 1 else 0
        if span.line == span.end_line:
            return line[span.col - off - 1:span.end_col - off - 1]
        return line[span.col - off - 1:] + " ..."

    def input_stmt(self, meta, label, shape):
        return Input(self.span(meta), self.label(label), shape)

    def output_stmt(self, meta, *names):
        return Output(self.span(meta), [(str(n), self.tspan(n)) for n in names])

    def output_dict(self, meta, *names):
        return Output(self.span(meta), [(str(n), self.tspan(n)) for n in names], as_dict=True)

    def tensor_stmt(self, meta, kind, label, shape, scheme=None, args=None):
        return TensorDecl(self.span(meta), str(kind), self.label(label), shape,
                          None if scheme is None else str(scheme), args or [])

    def meta_stmt(self, meta, name, value):
        return Meta(self.span(meta), str(name), value)

    def init_stmt(self, meta, target, scheme, args=None):
        is_pattern = target.type == "STRING"
        return Init(self.span(meta), _unescape(target) if is_pattern else str(target), is_pattern,
                    str(scheme), args or [])

    def for_stmt(self, meta, *parts):
        *targets, iterable, body = parts
        return For(self.span(meta), [str(t) for t in targets], iterable, body)

    def if_stmt(self, meta, cond, body, orelse=None):
        if isinstance(orelse, If):
            orelse = [orelse]
        return If(self.span(meta), cond, body, orelse)

    def bind_stmt(self, meta, name, chain):
        return Bind(self.span(meta), str(name), chain)

    def chain(self, meta, *items):
        return Chain(self.span(meta), list(items))

    def item(self, meta, *parts):
        label = tap = repeat = None
        parts = list(parts)
        if parts and isinstance(parts[0], Token) and parts[0].type == "LABEL":
            label = self.label(parts.pop(0))
        if parts and isinstance(parts[0], _Tap):
            tap = parts.pop(0).args
        atom = parts.pop(0)
        if parts:
            repeat = parts[-1]
        return Item(self.span(meta), label, tap, atom, repeat)

    def tap(self, meta, args=None):
        return _Tap(args or [])

    def call(self, meta, name, args=None):
        return Call(self.span(meta), str(name), args, self.tspan(name))

    def group(self, meta, body):
        return Group(self.span(meta), body)

    def join(self, meta, kind, *rest):
        args, body = (rest[0] or [], rest[1]) if len(rest) == 2 else ([], rest[0])
        return Join(self.span(meta), str(kind), args, body)

    def ref(self, meta, name):
        return Ref(self.span(meta), str(name))

    def args(self, meta, *args):
        return [a if isinstance(a, Arg) else Arg(a.span, None, a) for a in args]

    def kwarg(self, meta, name, value):
        return Arg(self.span(meta), str(name), value)

    # expressions
    def ternary(self, meta, then, cond, other):
        return self.deep(Ternary(self.span(meta), cond, then, other), cond, then, other)

    def or_op(self, meta, a, b):
        return self.deep(BoolOp(self.span(meta), "or", a, b), a, b)

    def and_op(self, meta, a, b):
        return self.deep(BoolOp(self.span(meta), "and", a, b), a, b)

    def not_op(self, meta, a):
        return self.deep(Not(self.span(meta), a), a)

    def compare(self, meta, *parts):
        return self.deep(Compare(self.span(meta), [str(p) for p in parts[1::2]], list(parts[0::2])), *parts[0::2])

    def binary(self, meta, a, op, b):
        return self.deep(Binary(self.span(meta), str(op), a, b), a, b)

    def unary(self, meta, op, a):
        return self.deep(Unary(self.span(meta), str(op), a), a)

    def call_expr(self, meta, func, args=None):
        return self.deep(CallExpr(self.span(meta), func, args or []), func, *(a.value for a in args or []))

    def index(self, meta, target, idx):
        return self.deep(Index(self.span(meta), target, idx), target, idx)

    def attr(self, meta, target, name):
        return self.deep(Attr(self.span(meta), target, str(name)), target)

    def slice(self, meta, target, start=None, stop=None, step=None):
        parts = [p for p in (start, stop, step) if p is not None]
        return self.deep(Slice(self.span(meta), target, start, stop, step), target, *parts)

    def comprehension(self, meta, elem, *parts):
        targets = [str(p) for p in parts if isinstance(p, Token)]
        iterable, *cond = [p for p in parts if not isinstance(p, Token)]
        return self.deep(Comprehension(self.span(meta), elem, targets, iterable, cond[0] if cond else None),
                         elem, iterable, *cond)

    def number(self, meta, tok):
        text = str(tok).replace("_", "")
        span = self.span(meta)
        try:
            if re.fullmatch(r"\d+", text):
                return Const(span, int(text))
            return Const(span, float(text))
        except ValueError:
            raise ParseError("E004", "number literal too long", span) from None

    def string(self, meta, tok):
        return Const(self.span(meta), _unescape(tok))

    def true(self, meta):
        return Const(self.span(meta), True)

    def false(self, meta):
        return Const(self.span(meta), False)

    def none(self, meta):
        return Const(self.span(meta), None)

    def var(self, meta, name):
        return Var(self.span(meta), str(name))

    def in_tensor(self, meta):
        return InTensor(self.span(meta))

    def tensor_ref(self, meta, name):
        return TensorRef(self.span(meta), str(name))

    def tuple(self, meta, *items):
        items = [i for i in items if i is not None]
        return self.deep(TupleExpr(self.span(meta), items), *items)

    def list(self, meta, *items):
        items = [i for i in items if i is not None]
        return self.deep(ListExpr(self.span(meta), items), *items)

    def dict(self, meta, *pairs):
        pairs = [p for p in pairs if p is not None]
        return self.deep(DictExpr(self.span(meta), pairs), *(e for p in pairs for e in p))

    def pair(self, meta, k, v):
        return (k, v)

    # labels: `name{expr}suffix:` -> parts
    def label(self, tok: Token) -> Label:
        text = str(tok).rstrip()[:-1].rstrip()
        quoted = text.startswith('"')
        if quoted:
            text = text[1:-1]
        parts: list = []
        pos = 0
        for m in re.finditer(r"\{([^{}]*)\}", text):
            if m.start() > pos:
                parts.append(text[pos:m.start()])
            span = self.tspan(tok)
            parts.append(parse_expr(m.group(1), self.file, span.line, span.col + m.start(1) + quoted))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        span = self.tspan(tok)
        return Label(Span(self.file, span.line, span.col, span.line, span.col + len(text) + 2 * quoted), parts, quoted)


@dataclass
class _Tap:
    args: list


# ----------------------------------------------------------------------------- entry points

_GRAMMAR_DIRS = (Path(__file__).parent / "grammars", Path(__file__).parent.parent / "grammars")


def grammar_path() -> Path:
    """The grammar file: inside the installed package, else the source tree's ``grammars/``."""
    for d in _GRAMMAR_DIRS:
        if (d / "arch.lark").exists():
            return d / "arch.lark"
    raise FileNotFoundError("arch.lark not found in " + ", ".join(map(str, _GRAMMAR_DIRS)))


_EXPECT = {
    "RPAR": "`)`", "LPAR": "`(`", "RSQB": "`]`", "LSQB": "`[`", "RBRACE": "`}`", "LBRACE": "`{`",
    "COMMA": "`,`", "_NL": "a newline", "SEMICOLON": "`;`", "EQUAL": "`=`", "NAME": "a name",
    "NUMBER": "a number", "STRING": "a string", "LABEL": "a label (`name:`)", "COLON": "`:`",
    "JOIN_KIND": "a join (concat, add, mean, mul, sub, matmul, stack, sdpa, dense, residual)", "COMP_OP": "a comparison",
    "ADD_OP": "`+` or `-`", "MUL_OP": "`*`, `/`, `//` or `%`", "DOT": "`.`", "AT": "`@`", "STAR": "`*`",
    "POW_OP": "`**`", "$END": "the end of the file",
}
KEYWORDS = {"import", "block", "network", "let", "assert", "require", "input", "output", "meta", "init", "for", "in",
            "if", "else", "tap", "and", "or", "not", "true", "false", "none", "concat", "add", "mean", "mul", "dense",
            "residual", "sub", "matmul", "stack", "sdpa", "param", "buffer", "inline"}
_FORBIDDEN = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029]|[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]"
                        "|[\ud800-\udfff]")


def check_text(text: str, file: str, line0: int = 0, col0: int = 0) -> None:
    """Refuse text that could mislead a reader: bidi controls and other control characters."""
    m = _FORBIDDEN.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
        ch = m.group()
        what = "lone surrogate" if "\ud800" <= ch <= "\udfff" else unicodedata.name(ch, "control character")
        raise ParseError("E002", f"forbidden character {what} (U+{ord(ch):04X})",
                         _span(file, line, col, line, col + 1, line0, col0),
                         hint="bidirectional and control characters can make code read differently "
                              "from how it runs; remove it")


_LOCK = threading.Lock()


TABLES = Path(__file__).parent / "parser_tables.json"  # generated by scripts/gen_parser.py


def decode_tables(fields: dict) -> tuple[dict, dict]:
    """Lark's serialized parser (data, memo) back from its JSON form: JSON made the integer
    keys of the memo, the token table and the states strings, and the tuples lists."""
    memo = {int(k): v for k, v in fields["memo"].items()}
    for entry in memo.values():
        options = entry.get("options")
        if isinstance(options, dict) and "empty_indices" in options:
            options["empty_indices"] = tuple(options["empty_indices"])
    data = fields["data"]
    table = data["parser"]["parser"]
    table["tokens"] = {int(k): v for k, v in table["tokens"].items()}
    table["states"] = {int(state): {int(tok): tuple(action) for tok, action in actions.items()}
                       for state, actions in table["states"].items()}
    return data, memo


@lru_cache(maxsize=None)
def _parser() -> Lark:
    """The LALR parser, loaded from the tables generated ahead of time (``parser_tables.json``).

    Lark's own cache (``cache=True``) is a pickle in the shared temp folder, which another
    local user can plant, so it is never used and nothing is unpickled: the tables are
    plain JSON shipped in the package, checked against the grammar's sha256. When they do
    not match (the grammar was edited without running ``scripts/gen_parser.py``, or
    another Lark version is installed) the tables are built from the grammar instead.
    """
    import lark
    grammar = grammar_path().read_bytes()
    fields = json.loads(TABLES.read_text(encoding="utf-8"))
    if fields["grammar_sha256"] == hashlib.sha256(grammar).hexdigest() and fields["lark_version"] == lark.__version__:
        data, memo = decode_tables(fields)
        return Lark._load_from_dict(data, memo, postlex=_PostLex(200))
    return Lark(grammar.decode("utf-8"), parser="lalr", lexer="basic", start=["start", "expr"],
                propagate_positions=True, maybe_placeholders=True, postlex=_PostLex(200))


def tokens(text: str, file: str = "<string>", limits: Limits | None = None) -> list[Token]:
    """The lossless token stream of a source: every token, space, comment and newline, whose
    values join back into ``text``; dict braces are ``DICT_OPEN`` / ``DICT_CLOSE``, a label met
    inside an expression is split into its key and ``COLON``, spaces are ``__IGNORE_*``. The
    formatter reads it (raises :class:`ParseError` where the text does not lex)."""
    limits = limits or Limits()
    check_text(text, file)
    lexer = _lossless_lexer()
    try:
        return list(_PostLex(limits.nesting).process(LexerThread.from_text(lexer, text).lex(None), lossless=True))
    except _TooDeep as e:
        raise ParseError("E005", f"brackets and blocks nested deeper than {limits.nesting} levels",
                         _span(file, e.tok.line, e.tok.column, e.tok.line, e.tok.column + 1)) from None
    except UnexpectedInput as e:
        raise _syntax_error(e, _parser(), text, file, 0, 0) from None


@lru_cache(maxsize=None)
def _lossless_lexer():
    """The parser's lexer keeping what the grammar ignores (spaces, comments, continuations)."""
    return _parser()._build_lexer(dont_ignore=True)


def parse(text: str, file: str = "<string>", limits: Limits | None = None) -> Module:
    """Parse a whole .arch source into a Module AST (raises ParseError).

    ASTs are never modified, so the last few parses are cached by text and file name.
    """
    return _parse_cached(text, file, (limits or Limits()).nesting)


@lru_cache(maxsize=64)
def _parse_cached(text: str, file: str, nesting: int) -> Module:
    return _parse(text, file, "start", Limits(nesting=nesting))


def parse_expr(text: str, file: str = "<string>", line: int = 1, col: int = 1,
               limits: Limits | None = None) -> Node:
    """Parse one expression found at ``line:col`` of ``file`` (label interpolations, ``--set``)."""
    return _parse(text, file, "expr", limits or Limits(), line - 1, col - 1)


def _parse(text: str, file: str, start: str, limits: Limits, line0: int = 0, col0: int = 0):
    check_text(text, file, line0, col0)
    parser = _parser()
    with _LOCK:
        parser.options.postlex.nesting = limits.nesting
        try:
            tree = parser.parse(text, start=start)
        except _TooDeep as e:
            tok = e.tok
            raise ParseError("E005", f"brackets and blocks nested deeper than {limits.nesting} levels",
                             _span(file, tok.line, tok.column, tok.line, tok.column + 1, line0, col0),
                             hint="raise the limit with `--limit nesting=N` if this is intended") from None
        except UnexpectedInput as e:
            raise _syntax_error(e, parser, text, file, line0, col0) from None
    try:
        return _Builder(file, text, line0, col0, limits.nesting).transform(tree)
    except VisitError as e:
        raise e.orig_exc from None


def _span(file, line, col, end_line, end_col, line0=0, col0=0) -> Span:
    """A span, shifted when the parsed text started at (line0 + 1, col0 + 1) of its file."""
    return Span(file, line + line0, col + (col0 if line == 1 else 0),
                end_line + line0, end_col + (col0 if end_line == 1 else 0))


def _describe(name: str, parser: Lark) -> str:
    if name in _EXPECT:
        return _EXPECT[name]
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return f"`{pattern.value}`"
    return name.lower().replace("_", " ")


def _syntax_error(e: UnexpectedInput, parser: Lark, text: str, file: str, line0: int, col0: int) -> ParseError:
    line, col = max(1, e.line if e.line != -1 else text.count("\n") + 1), max(1, e.column if e.column != -1 else 1)
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        shown = repr(ch) if not ch.isprintable() or ch.isspace() else f"`{ch}`"
        hint = _label_hint(text, line, col)
        if hint is None and ch in "\"'":
            hint = "strings must close on the line they open"
        elif hint is None and ch == ":":
            hint = "a label is a name followed by `:` at the start of an item, like `conv1: conv(64, 3)`"
        return ParseError("E001", f"unexpected character {shown}",
                          _span(file, line, col, line, col + 1, line0, col0), hint=hint)
    expected = sorted({_describe(t, parser) for t in (e.expected or ()) if not t.startswith("_") or t == "_NL"})
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        lines = text.split("\n")
        line = len(lines)
        col = len(lines[-1]) + 1
        msg = "unexpected end of input"
        width = 1
    else:
        tok = e.token
        shown = "a newline" if tok.type == "_NL" else f"`{tok.value}`"
        msg = f"unexpected {shown}"
        width = max(1, len(str(tok.value).split("\n")[0])) if tok.type != "_NL" else 1
        line, col = tok.line, tok.column
    hint = None
    if isinstance(e, UnexpectedToken) and str(e.token.value) in KEYWORDS and "a name" in expected:
        return ParseError("E001", f"`{e.token.value}` is a reserved word", _span(
            file, line, col, line, col + width, line0, col0), hint="choose another name")
    label = _label_hint(text, line, col)  # (line and col count in `text` here, before the shift)
    if label is not None:
        hint = label
    elif expected and len(expected) <= 8:
        hint = "expected " + (expected[0] if len(expected) == 1 else ", ".join(expected[:-1]) + " or " + expected[-1])
    return ParseError("E001", msg, _span(file, line, col, line, col + width, line0, col0), hint=hint)


# an item's label written with characters a bare label cannot hold (`my-block:`, `a.b:`, `"a.b":`)
_ITEM_START = re.compile(r"(?:^|->|[{;])[ \t]*")
_LABEL_LIKE = re.compile(r'(?:"[^"\n]*"|[^\s:(){}\[\],;=<>"\'@*+/%!]+(?: [^\s:(){}\[\],;=<>"\'@*+/%!]+)*)[ \t]*:(?!=)')
_LABEL_STARTS = {"let", "assert", "require", "input", "output", "meta", "init", "for", "if", "else", "param", "buffer",
                 "import", "block", "network", "inline", "tap", "return", "def", "class", "while"}


def _label_hint(text: str, line: int, col: int) -> str | None:
    """The hint for a syntax error inside what reads as an item's label (``my-block: conv(8, 3)``):
    how to write that label, or why it cannot be one (the naming rule: archdsl.naming). None when
    the error is elsewhere."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    source = lines[line - 1]
    for start in _ITEM_START.finditer(source, 0, col):
        m = _LABEL_LIKE.match(source, start.end())
        if m is None or not m.start() < col <= m.end():
            continue
        label = m.group().rstrip()[:-1].rstrip()
        if label.split(" ")[0] in _LABEL_STARTS or label.isdigit():
            return None
        quoted = label.startswith('"')
        body = label[1:-1] if quoted else label
        if "." in body:
            return (f"a label cannot contain `.`: it separates the scopes of a module path (`stage2.0.conv1`); "
                    f"write `\"{body.replace('.', '_')}\":`, say")
        if quoted and "\\" in body:
            return "a quoted label takes no escapes (`\\`); write its characters as they are"
        if quoted:
            return "a quoted label holds `{expr}` parts whole, without other braces: `\"block{i}-{j}\":`"
        return f"a label with other characters than letters, digits and `_` is quoted: `\"{body}\":`"
    return None
