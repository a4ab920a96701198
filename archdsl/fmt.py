"""Format: source text -> the canonical layout of the same spec (``archdsl fmt``).

The formatter reads the lossless token stream of the parser (:func:`archdsl.syntax.tokens`:
every token with the comments and newlines around it), groups it by brackets and
statements, and lays it out with :mod:`archdsl.layout`. The rules, all of them:

- four spaces per level; one statement per line in a broken body, ``{ a; b }`` in a flat one;
  at most one blank line in a row, none after ``{`` or before ``}``; one newline at the end;
- spaces around binary operators, ``->``, ``=`` and after ``,`` and ``:`` of a dict; none
  inside brackets, around ``.``, after ``@`` or a unary sign, in keyword arguments
  (``stride=2``) or in a slice (``xs[1:]``); ``**`` hugs simple operands (``2**i``);
- a body (of a block, ``for``, ``if``, a group or a join) stays on one line where it was
  written on one line (no newline after its ``{``), holds no comment and fits; a network's
  body is always broken;
- brackets that do not fit put their contents on an indented line of their own, and when
  that does not fit either, one item per line with a trailing comma; a trailing comma
  written in the source keeps them one per line (as in ruff and black);
- a chain that does not fit breaks before the ``->`` of each item that would pass the line
  length, the lines after the first indented;
- comments stay where they were: a comment on its own line before the thing it precedes,
  at that thing's indentation; a comment after code at the end of that line, two spaces
  after it;
- strings are written with double quotes where that needs no escape; numbers, labels and
  everything else as written.

Formatting never changes meaning: the result is parsed again and its syntax tree compared
with the input's (spans aside) before anything is written; a difference is a bug, reported
as one (E135) rather than written.
"""
from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field

from .errors import ArchError, Span
from .layout import HARD, LINE, SOFT, Fill, Group, IfBreak, Nest, Suffix, render
from .syntax import Node, parse, tokens

INDENT = 4
LINE_LENGTH = 120


def format_source(text: str, *, line_length: int = LINE_LENGTH, file: str = "<string>") -> str:
    """``text`` in the canonical layout (raises :class:`~archdsl.errors.ParseError` when it
    does not parse)."""
    before = parse(text, file)
    # The layout recurses on brackets and bodies, which the parser allows 200 levels deep (E005):
    # a few frames a level, so the interpreter's limit is raised to what that needs, for this call.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, _FRAMES))
    try:
        return _format(before, text, line_length, file)
    except RecursionError:
        raise ArchError("E086", "the spec is too deep to format", Span(file, 1, 1, 1, 1)) from None
    finally:
        sys.setrecursionlimit(limit)


_FRAMES = 8000  # frames enough for the deepest spec the parser takes (200 levels) and what calls it


def _format(before, text: str, line_length: int, file: str) -> str:
    doc = _Formatter(_read(tokens(text, file))).module()
    out = _align_comments(render(doc, line_length).strip("\n").split("\n"), line_length) if doc else ""
    try:
        after = parse(out, file).items
    except ArchError:
        after = []
    if not same_tree(before.items, after):
        raise _changed(before.items, after, text, file)
    return out


_FENCE = re.compile(r"^(?P<fence>```+)arch[ \t]*\n(?P<code>.*?)^(?P=fence)[ \t]*$", re.M | re.S)


def format_markdown(text: str, *, line_length: int = LINE_LENGTH) -> str:
    """A Markdown page with each of its ```` ```arch ```` blocks in the canonical layout; a block
    that does not parse (an example of a mistake) is left as written."""
    def one(m):
        try:
            code = format_source(m.group("code"), line_length=line_length)
        except ArchError:
            return m.group()
        return f"{m.group('fence')}arch\n{code}{m.group('fence')}"
    return _FENCE.sub(one, text)


def _changed(before: list, after: list, text: str, file: str) -> ArchError:
    """E135 at the first definition the layout would change (a bug of the formatter)."""
    first = next((x for x, y in zip(before, after) if not same_tree(x, y)), before[min(len(before), len(after))]
                 if len(before) != len(after) and before else None)
    line = first.span.line if first is not None else 1
    width = max(1, len(text.split("\n")[line - 1])) if text else 1
    e = ArchError("E135", "formatting would change what this spec means; nothing was written",
                  Span(file, line, 1, line, 1 + width), hint="this is a bug of `archdsl fmt`: please report it "
                  "with the file", label="the layout of this would change its meaning")
    e.sources = {file: text}
    return e


def same_tree(a, b) -> bool:
    """Whether two syntax trees are the same spec: equal but for spans and the source text
    kept for messages (an assertion's condition as written)."""
    if isinstance(a, Node) or isinstance(b, Node):
        if type(a) is not type(b):
            return False
        return all(same_tree(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
                   if f.name not in ("span", "text", "name_span"))
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return False
        return all(same_tree(x, y) for x, y in zip(a, b) if not isinstance(x, Span))
    return a == b


# ----------------------------------------------------------------------------- the command

def add_parser(subparsers):
    """``archdsl fmt [PATH ...] [--check] [--diff] [--line-length N]``."""
    p = subparsers.add_parser("fmt", help="rewrite .arch files in the canonical layout",
                              description="Rewrite .arch files in place in the canonical layout (folders: every "
                              ".arch file under them; a Markdown file named: its ```arch blocks; - reads standard "
                              "input and writes standard output). "
                              "Exit status 1 where a file does not parse, or with --check/--diff where one "
                              "would change.")
    p.add_argument("paths", nargs="*", metavar="PATH", default=["."],
                   help="files or folders to format (default: the current folder); - for standard input")
    p.add_argument("--check", action="store_true", help="change nothing; name the files that would change")
    p.add_argument("--diff", action="store_true", help="change nothing; print the changes as a unified diff")
    p.add_argument("--line-length", type=int, default=LINE_LENGTH, metavar="N",
                   help=f"the column lines break at (default: {LINE_LENGTH})")
    return p


def run(args) -> int:
    import difflib
    from pathlib import Path

    from .errors import Limits
    from .loader import decode_source
    from .report import use_color
    if args.line_length < 20:
        print("archdsl: error: --line-length must be at least 20", file=sys.stderr)
        return 2
    if args.paths == ["-"]:
        text = sys.stdin.read()
        try:
            out = format_source(text, line_length=args.line_length, file="<stdin>")
        except ArchError as e:
            print(e.render({"<stdin>": text}, color=use_color(sys.stderr)), file=sys.stderr)
            return 1
        if args.check:
            return int(out != text)
        sys.stdout.write("".join(difflib.unified_diff(text.splitlines(True), out.splitlines(True), "<stdin>",
                                                      "<stdin>")) if args.diff else out)
        return int(args.diff and out != text)
    files, status, changed, failed = [], 0, 0, 0
    for path in map(Path, args.paths):
        if path.is_dir():
            files += sorted(f for f in path.rglob("*.arch") if not any(part.startswith(".") for part in f.parts))
        elif path.exists():
            files.append(path)
        else:
            print(f"archdsl: error: {path}: no such file or folder", file=sys.stderr)
            status = 2
    for f in files:
        text = None
        try:
            text = decode_source(f.read_bytes(), str(f), Limits())
            if f.suffix.lower() in (".md", ".markdown"):
                out = format_markdown(text, line_length=args.line_length)
            else:
                out = format_source(text, line_length=args.line_length, file=str(f))
        except ArchError as e:
            print(e.render({str(f): text} if text is not None else None, color=use_color(sys.stderr)), file=sys.stderr)
            status, failed = max(status, 1), failed + 1
            continue
        except OSError as e:
            print(f"archdsl: error: {f}: {e}", file=sys.stderr)
            status, failed = max(status, 1), failed + 1
            continue
        if out == text:
            continue
        changed += 1
        if args.diff:
            sys.stdout.write("".join(difflib.unified_diff(text.splitlines(True), out.splitlines(True), str(f),
                                                          str(f))))
        elif args.check:
            print(f"would reformat {f}", file=sys.stderr)
        else:
            f.write_text(out, encoding="utf-8")
    verb = "would be reformatted" if args.check or args.diff else "reformatted"
    said = [f"{changed} file{'s' * (changed != 1)} {verb}", f"{len(files) - changed - failed} left unchanged"]
    print(", ".join(said + ([f"{failed} not formatted (errors above)"] if failed else [])), file=sys.stderr)
    if (args.check or args.diff) and changed:
        status = max(status, 1)
    return status


# ----------------------------------------------------------------------------- tokens with their surroundings

@dataclass(eq=False)
class Tok:
    """A token with what surrounds it in the source (the comments on their own lines before
    it, the comment after it on its line, the newlines before it) and its role in the
    layout, found by :func:`_read`."""
    type: str
    text: str
    role: str = ""               # the type, or "UNARY", "IN_TENSOR", "IN" for the keyword of `for`
    opens: str = ""              # "(", "[", "dict", "names" (`output {a, b}`) or "body"
    newlines: int = 0            # newlines between the previous token (or comment) and this one
    leading: list = field(default_factory=list)  # [(comment, blank line before it)]
    trailing: str | None = None
    tight: bool = False          # `=` of a keyword argument, `:` of a slice, `**` between simple operands
    params: bool = False         # `(` of a block's or network's parameters
    call: bool = False           # `(` of a call's arguments (not of a tuple or a parenthesised expression)
    network: bool = False        # `{` of a network's body


_TRIVIA = ("COMMENT", "_NL")
_OPEN = {"LPAR": "(", "LSQB": "[", "DICT_OPEN": "dict", "LBRACE": "body"}
_CLOSE = {"RPAR", "RSQB", "DICT_CLOSE", "RBRACE"}
# what ends an operand: after one of these `-` is binary, `(` a call and `[` an index
_OPERAND_END = {"NAME", "NUMBER", "STRING", "TRUE", "FALSE", "NONE", "JOIN_KIND", "RPAR", "RSQB", "DICT_CLOSE",
                "RBRACE", "IN_TENSOR"}
_SIMPLE = {"NAME", "NUMBER", "TRUE", "FALSE", "NONE", "IN_TENSOR"}


def _read(stream) -> list[Tok]:
    """The significant tokens of a lossless stream, each with its comments and newlines, and
    the roles the spacing rules need (a bracket stack tells a slice from a dict, a keyword
    argument from a parameter's default, `in` the tensor from `in` of `for`)."""
    out: list[Tok] = []
    newlines, leading = 0, []
    stack = [{"opens": "top", "for": False}]
    pending_network = False
    for tok in stream:
        t = tok.type
        if t.startswith("__IGNORE"):
            continue
        if t == "_NL":
            newlines += tok.value.count("\n")
            continue
        if t == "COMMENT":
            text = tok.value.rstrip()
            if out and newlines == 0 and not leading:
                out[-1].trailing = text
            else:
                leading.append((text, newlines > 1 and bool(out or leading)))
            newlines = 0
            continue
        cur = Tok(t, tok.value, role=t, newlines=newlines, leading=leading)
        newlines, leading = 0, []
        prev = out[-1] if out else None
        ctx = stack[-1]
        if t == "ADD_OP" and (prev is None or prev.role not in _OPERAND_END):
            cur.role = "UNARY"
        elif t == "IN":
            cur.role = "IN" if ctx["for"] else "IN_TENSOR"
            ctx["for"] = False
        elif t == "FOR":
            ctx["for"] = True
        elif t == "EQUAL":
            cur.tight = ctx["opens"] == "(" and not ctx["params"]
        elif t == "COLON":
            cur.tight = ctx["opens"] == "["
        elif t == "NETWORK":
            pending_network = True
        if t in _OPEN:
            cur.opens = _OPEN[t]
            if cur.opens == "body" and prev is not None and prev.type == "OUTPUT":
                cur.opens = "names"
            if t == "LPAR" and prev is not None and prev.type == "NAME" and len(out) > 1 and \
                    out[-2].type in ("BLOCK", "NETWORK"):
                cur.params = True
            cur.call = t == "LPAR" and prev is not None and prev.role in ("NAME", "JOIN_KIND", "RPAR", "RSQB", "TAP")
            if cur.opens == "body" and pending_network:
                cur.network, pending_network = True, False
            stack.append({"opens": cur.opens, "for": False, "params": cur.params})
        elif t in _CLOSE and len(stack) > 1:
            stack.pop()
        out.append(cur)
    for i, tok in enumerate(out):
        if tok.text == "**":
            before = out[i - 1].role if i else ""
            after = out[i + 1] if i + 1 < len(out) else None
            if after is not None and after.role == "UNARY" and i + 2 < len(out):
                after = out[i + 2]
            tok.tight = before in _SIMPLE and after is not None and after.role in _SIMPLE
    out.append(Tok("$END", "", role="$END", newlines=newlines, leading=leading))
    return out


# ----------------------------------------------------------------------------- the tree of brackets

@dataclass(eq=False)
class Bracket:
    """``( )``, ``[ ]``, a dict's ``{ }`` or a body's ``{ }``, with what it holds."""
    open: Tok
    items: list                  # tokens and brackets between the two
    close: Tok | None = None

    @property
    def kind(self) -> str:
        return self.open.opens


def _nest(toks: list[Tok]) -> list:
    """The tokens nested by brackets (the source parses, so they balance)."""
    top: list = []
    stack: list[tuple[Bracket, list]] = []
    items = top
    for t in toks:
        if t.opens:
            b = Bracket(t, [])
            items.append(b)
            stack.append((b, items))
            items = b.items
        elif t.type in _CLOSE and stack:
            b, items = stack.pop()
            b.close = t
        else:
            items.append(t)
    return top


def _first(x) -> Tok:
    return x.open if isinstance(x, Bracket) else x


def _last(x) -> Tok:
    return x.close if isinstance(x, Bracket) else x


def _take_trailing(x) -> list:
    """The trailing comment of the last token of ``x``, taken off it to be placed by the caller
    (after a statement, or after the comma that follows an item)."""
    tok = _last(x)
    text, tok.trailing = tok.trailing, None
    return [Suffix(_MARK + text)] if text else []


def _take_leading(x) -> list:
    tok = _first(x)
    comments, tok.leading = tok.leading, []
    return comments


# ----------------------------------------------------------------------------- layout

class _Formatter:
    def __init__(self, toks: list[Tok]):
        self.end = toks[-1]
        self.tree = _nest(toks[:-1])

    # --- statements and bodies

    def module(self):
        doc = self.statements(self.tree)
        if self.end.leading:
            doc += ([HARD] if doc else []) + self.comments(self.end.leading, first=not doc)
        return doc

    def statements(self, items: list) -> list:
        """Statements one per line, keeping one blank line where there was at least one."""
        doc = []
        for n, stmt in enumerate(_split_statements(items)):
            head = _first(stmt[0])
            if n:
                doc.append(HARD)
                if head.newlines > 1 and not head.leading:
                    doc.append(HARD)
            lead = _take_leading(stmt[0])
            doc += self.comments(lead, first=n == 0)
            if lead and head.newlines > 1:  # a blank line between the comments and the statement
                doc.append(HARD)
            end = _take_trailing(stmt[-1])
            doc += [self.statement(stmt), *end]
        return doc

    def comments(self, comments, first: bool) -> list:
        """Comments on lines of their own, each followed by a newline."""
        doc = []
        for i, (text, blank) in enumerate(comments):
            if blank and not (first and i == 0):
                doc.append(HARD)
            doc += [text, HARD]
        return doc

    def statement(self, stmt: list):
        """One statement; a chain in it breaks before each `->` when it does not fit."""
        parts, part = [], []
        for x in stmt:
            if isinstance(x, Tok) and x.text == "->":
                parts.append(part)
                part = []
            part.append(x)
        parts.append(part)
        if len(parts) == 1:
            return self.run(stmt)
        fill = [self.run(parts[0])]
        for p in parts[1:]:
            arrow, lead = p[0], _take_leading(p[0])
            fill.append([HARD, *self.comments(lead, first=True)[:-1], HARD] if lead else LINE)
            fill.append(["->", *_take_trailing(arrow), " ", self.run(p[1:])])
        return Fill(fill, hang=INDENT)

    def run(self, xs: list):
        """Tokens and brackets of one expression or statement part, spaced by rule."""
        doc, prev = [], None
        for x in xs:
            if prev is not None:
                doc.append(_space(_last(prev), x))
            doc.append(self.bracket(x) if isinstance(x, Bracket) else self.token(x))
            prev = x
        return doc

    def token(self, tok: Tok):
        """A token, with a comment that was on its own line before it (inside brackets, where
        a newline may go) and the comment after it."""
        lead = [HARD, *self.comments(_take_leading(tok), first=True)] if tok.leading else []
        return [*lead, _spelled(tok), *_take_trailing(tok)]

    # --- brackets

    def bracket(self, b: Bracket):
        if b.kind == "body":
            return self.body(b)
        if b.kind == "names":  # `output {a, b}`: one line (the grammar takes no newline after `{`)
            return ["{", self.run(b.items), "}", *_take_trailing(b.close)]
        open_text, close_text = b.open.text, b.close.text
        items = _split_commas(b.items)
        opening = [open_text, *_take_trailing(b.open)]
        closing = self.closing_comments(b.close)
        if not items:
            return [*opening, *([Nest(INDENT, closing), HARD] if closing else []), close_text]
        listed = len(items) > 1 or items[0][1] is not None  # commas: a trailing one may be added
        parts = []
        for i, (item, comma) in enumerate(items):
            if i:
                parts.append(LINE)
            parts += self.comments(_take_leading(item[0]), first=True)
            after = _take_trailing(item[-1])
            parts.append(self.pair(item) if b.kind == "dict" else self.run(item))
            if i < len(items) - 1:
                parts += [",", *after, *_take_trailing(comma)]
            else:
                if listed:
                    parts.append(IfBreak(",") if len(items) > 1 or b.kind != "(" or b.open.call else ",")
                parts += after + (_take_trailing(comma) if comma is not None else [])
        one_tuple = b.kind == "(" and len(items) == 1 and not b.open.call  # `(1,)`: its comma is not a wish
        magic = listed and items[-1][1] is not None and not one_tuple
        return Group([*opening, Nest(INDENT, [SOFT, Group(parts, broken=magic), *closing]), SOFT, close_text],
                     broken=magic)

    def closing_comments(self, close: Tok) -> list:
        """Comments on their own lines before a closing bracket, at the contents' indentation."""
        comments = _take_leading(close)
        return [HARD, *self.comments(comments, first=True)[:-1]] if comments else []

    def pair(self, item: list):
        """``key: value`` of a dict: a space after the colon."""
        for i, x in enumerate(item):
            if isinstance(x, Tok) and x.type == "COLON":
                return [self.run(item[:i]), ":", *_take_trailing(x), " ", self.run(item[i + 1:])]
        return self.run(item)

    def body(self, b: Bracket):
        """A body: ``{ a; b }`` where it was written on one line and fits, else one statement
        per line; a network's body always."""
        opening = ["{", *_take_trailing(b.open)]
        stmts = _split_statements(b.items)
        closing = self.closing_comments(b.close)
        if not stmts:
            return [*opening, *([Nest(INDENT, closing), HARD] if closing else []), "}"]
        broken = b.open.network or _first(stmts[0][0]).newlines > 0 or len(opening) > 1 or bool(closing)
        if broken:
            return Group([*opening, Nest(INDENT, [HARD, *self.statements(b.items), *closing]), HARD, "}"],
                         broken=True, contain=True)
        inside = []
        for n, stmt in enumerate(stmts):
            if n:
                inside += [IfBreak("", ";"), LINE]
            inside += self.comments(_take_leading(stmt[0]), first=True)
            end = _take_trailing(stmt[-1])
            inside += [self.statement(stmt), *end]
        return Group([*opening, Nest(INDENT, [LINE, *inside]), LINE, "}"], contain=True)


# ----------------------------------------------------------------------------- spacing and spelling

_MARK = "\0"  # where a trailing comment starts in the laid-out text (a spec never holds NUL: E002)


def _align_comments(lines: list[str], line_length: int) -> str:
    """The laid-out lines as text, the trailing comments of consecutive lines aligned in one
    column, two spaces after the longest code among them (as gofmt does), where that keeps
    each of those lines within the line length; elsewhere two spaces after the code."""
    out, run = [], []

    def flush():
        width = max((len(code) for code, _ in run), default=0) + 2
        aligned = len(run) > 1 and all(width + len(c) <= line_length for _, c in run)
        out.extend((code.ljust(width) if aligned else code + "  ") + c for code, c in run)
        run.clear()
    for line in lines:
        code, mark, comment = line.partition(_MARK)
        if mark and code.strip():
            run.append((code.rstrip(), comment))
            continue
        flush()
        out.append(line.replace(_MARK, "").rstrip())
    flush()
    return "\n".join(out) + "\n"


def _space(p: Tok, cur) -> str:
    """The space between a token and what follows it."""
    pk = p.role
    if pk in ("LPAR", "LSQB", "DICT_OPEN", "AT", "DOT", "UNARY") or pk in ("EQUAL", "COLON") and p.tight:
        return ""
    if isinstance(cur, Bracket):
        if cur.kind == "(":
            return "" if pk in ("NAME", "JOIN_KIND", "RPAR", "RSQB", "TAP") else " "
        if cur.kind == "[":
            return "" if pk in ("NAME", "RPAR", "RSQB", "STRING", "IN_TENSOR") else " "
        return " "
    c = cur
    ck = c.role
    if ck in ("RPAR", "RSQB", "DICT_CLOSE", "COMMA", "DOT", "SEMICOLON"):
        return ""
    if ck == "COLON":
        return ""
    if pk == "COLON":
        return "" if p.tight else " "
    if "**" in (c.text, p.text):
        return "" if (c if c.text == "**" else p).tight else " "
    if ck == "EQUAL" or pk == "EQUAL":
        return "" if (c if ck == "EQUAL" else p).tight else " "
    return " "


def _spelled(t: Tok) -> str:
    """A token as the layout writes it: double quotes where they need no escape, a label's
    colon against its name, everything else as written."""
    if t.type == "STRING" and t.text.startswith("'") and '"' not in t.text and "\\" not in t.text:
        return '"' + t.text[1:-1] + '"'
    if t.type == "LABEL":
        return re.sub(r"[ \t]+:$", ":", t.text)
    return t.text


def _split_statements(items: list) -> list[list]:
    """A body's (or the file's) tokens as statements: split at `;` and at the newlines the
    post-lexer keeps as statement ends (not after `->`, `,` or before `->`, `else`)."""
    stmts, cur = [], []
    for x in items:
        t = _first(x)
        if isinstance(x, Tok) and x.type == "SEMICOLON":
            if cur:
                stmts.append(cur)
                cur = []
            if x.trailing and stmts:  # `a;  # note`: the comment belongs to the statement before
                _last(stmts[-1][-1]).trailing = x.trailing
            continue
        if cur and t.newlines and t.text not in ("->", "else") and _last(cur[-1]).text not in ("->", ","):
            stmts.append(cur)
            cur = []
        cur.append(x)
    if cur:
        stmts.append(cur)
    return stmts


def _split_commas(items: list) -> list[tuple[list, Tok | None]]:
    """A bracket's contents as (item, the comma after it or None). A comprehension is one
    item: its `for a, b in` commas do not separate anything."""
    if any(isinstance(x, Tok) and x.type == "FOR" for x in items):
        return [(items, None)]
    out, cur = [], []
    for x in items:
        if isinstance(x, Tok) and x.type == "COMMA":
            out.append((cur, x))
            cur = []
        else:
            cur.append(x)
    if cur:
        out.append((cur, None))
    return out
