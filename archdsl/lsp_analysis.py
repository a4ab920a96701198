"""What the language server knows about a document: the document checked as the editor holds
it, and what hover, definition and completion read from that check.

Nothing here speaks LSP: positions are 0-based (line, column in characters, as the front end's
spans count them), files are real paths, and ``archdsl/lsp.py`` turns the results into protocol
messages. A document is checked by the front end itself (the loader and the elaborator), so its
diagnostics carry the same codes, spans and hints as ``archdsl check``; the one difference is
where the text comes from: the document's unsaved text, and for every import the text of an open
document of that file when there is one (:class:`OverlayLoader`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

from .elaborate import elaborate
from .errors import ArchError, LimitError, Limits, Span
from .loader import Loader, ModuleScope, library_dirs, std_path
from .ops import OPS
from .syntax import BlockDef, Call, Import, Var, parse

SHOWN_INSTANCES = 5   # a call inside a block body has one shape per instance: hover lists this many


# ----------------------------------------------------------------------------- checking a document

class OverlayLoader(Loader):
    """The front end's loader, reading open documents instead of their files on disk.

    ``overlay`` maps real paths to the editor's texts. An import whose file is open resolves to
    that text after the same root check the loader makes; any other import goes through the
    loader unchanged (opened, checked and read from disk)."""

    def __init__(self, limits: Limits, overlay: dict[str, str]):
        super().__init__(limits)
        self.overlay = overlay

    def load_document(self, text: str, path: str) -> ModuleScope:
        """The main module from ``text``, as ``load_file`` would load the file at ``path``."""
        real = os.path.realpath(path)
        self.roots = [Path(real).parent, *(d.resolve() for d in library_dirs() if d.is_dir())]
        self.main_dir = os.path.dirname(path)
        if len(text.encode("utf-8", "surrogatepass")) > self.limits.source:
            raise ArchError("E006", f"{path} is over the source limit of {self.limits.source:,} bytes",
                            hint="raise it with `--limit source=N`")
        return self._build(text, path, real)

    def _from_files(self, item: Import, importer: str) -> ModuleScope:
        std = item.path.startswith("std/")
        target = std_path(item.path) if std else Path(importer).parent / item.path
        real = _real(target) if target is not None and item.path.endswith(".arch") else None
        text = self.overlay.get(real) if real is not None else None
        if text is None or not any(Path(real).is_relative_to(root) for root in self.roots):
            return super()._from_files(item, importer)   # (its diagnostics, when the import is refused)
        self.resolved.setdefault(importer, {})[item.path] = real
        self._cycle(real, item.span)
        if real in self.modules:
            return self.modules[real]
        return self._build(text, item.path if std else self._shown(real), real)


def _real(path: Path) -> str | None:
    try:
        return str(path.resolve())
    except (OSError, ValueError, RuntimeError):
        return None


@dataclass
class Diag:
    """One diagnostic in one file: 0-based positions, ``related`` as (path, range, message)."""

    path: str
    range: tuple[int, int, int, int]
    code: str
    message: str
    related: list = field(default_factory=list)


@dataclass
class Result:
    """A document checked: its diagnostics per file (real path), and what was loaded.

    ``module`` and ``ast`` are None when the document itself could not be loaded; ``graph`` is
    None when it could not be elaborated (or defines no network: a library), and holds the ops
    elaborated before a shape error."""

    path: str
    text: str
    diags: dict
    files: dict           # real path -> the name spans give it
    sources: dict         # shown name -> text
    module: ModuleScope | None = None
    modules: dict = field(default_factory=dict)   # real path -> ModuleScope, every file loaded
    ast: object = None
    graph: object = None

    def path_of(self, shown: str) -> str | None:
        return next((k for k, v in self.files.items() if v == shown), None)

    @property
    def shown(self) -> str:
        return self.files.get(self.path, self.path)


def check_document(text: str, path: str, overlay: dict[str, str] | None = None,
                   limits: Limits | None = None) -> Result:
    """Load and elaborate the document ``text`` of the file ``path`` (its imports resolved from
    its folder, ``std/`` from the packaged library, open documents from ``overlay``).

    A file without a network is a library: it is loaded (parse errors, definitions, its own
    imports), not elaborated. Every diagnostic the check raises is in ``diags``, for the file it
    is in and, when that is another file, on this document too (:func:`_on_document`)."""
    limits = limits or Limits()
    loader = OverlayLoader(limits, overlay or {})
    real = os.path.realpath(path)
    module = graph = error = None
    try:
        module = loader.load_document(text, path)
        if module.networks:
            graph = elaborate(module, None, {}, {}, limits, loader.sources)
    except RecursionError:
        error = LimitError("E086", "the spec nests too deeply to load", hint="imports nest too deeply")
    except ArchError as e:
        error = e
        if e.partial is not None:   # a shape error: the ops before it still have shapes to hover
            graph = e.partial[0]
    ast = None
    if real in loader.files:
        try:
            ast = parse(text, path, limits)   # (cached: the loader parsed this very text)
        except ArchError:
            pass
    result = Result(real, text, {}, dict(loader.shown), dict(loader.sources), module, dict(loader.modules), ast,
                    graph)
    if error is not None:
        _report(error, result, loader)
    return result


def _report(err: ArchError, result: Result, loader: Loader) -> None:
    span = err.span
    where = result.path_of(span.file) if span is not None else None
    if where is None:   # no place in a file (a network that is not there): the document's first character
        where, span = result.path, None
    related = [(result.path_of(f.span.file), _range(f.span), f"in block {f.block}, called here")
               for f in reversed(err.stack) if result.path_of(f.span.file)]
    diag = Diag(where, _range(span) if span is not None else (0, 0, 0, 1), err.code, _message(err), related)
    result.diags.setdefault(where, []).append(diag)
    if where != result.path:
        result.diags.setdefault(result.path, []).append(_on_document(diag, err, result, loader))


def _on_document(diag: Diag, err: ArchError, result: Result, loader: Loader) -> Diag:
    """A diagnostic of an imported file, shown on the document: at the innermost block call the
    document makes, else at the ``import`` that leads to the file; its message says where."""
    at = next((f.span for f in reversed(err.stack) if f.span.file == result.shown), None)
    if at is None:
        at = _import_leading_to(diag.path, result, loader)
    place = f"{_display(err.span.file, result.path)}:{err.span.line}:{err.span.col}"
    return Diag(result.path, _range(at) if at is not None else (0, 0, 0, 1), diag.code,
                f"in {place}: {diag.message}", [(diag.path, diag.range, err.message)])


def _import_leading_to(target: str, result: Result, loader: Loader) -> Span | None:
    """The span of the document's ``import`` through which ``target`` was loaded."""
    for raw, key in loader.resolved.get(result.path, {}).items():
        seen, todo = set(), [key]
        while todo:
            k = todo.pop()
            if k == target:
                return _import_span(result, raw)
            if k not in seen:
                seen.add(k)
                todo.extend(loader.resolved.get(k, {}).values())
    return None


def _import_span(result: Result, raw: str) -> Span | None:
    if result.ast is None:
        return None
    return next((i.span for i in result.ast.items if isinstance(i, Import) and i.path == raw), None)


def _display(shown: str, document: str) -> str:
    """A file's name in a message on ``document``: relative to its folder when inside it."""
    if os.path.isabs(shown) and Path(shown).is_relative_to(Path(document).parent):
        return os.path.relpath(shown, Path(document).parent)
    return shown


def _message(err: ArchError) -> str:
    lines = [err.message, *(f"note: {n}" for n in err.notes)]
    if err.hint:
        lines.append(f"hint: {err.hint}")
    return "\n".join(lines)


def _range(span: Span) -> tuple[int, int, int, int]:
    return span.line - 1, span.col - 1, span.end_line - 1, span.end_col - 1


def library_diagnostics(lib: str, specs, overlay: dict[str, str]) -> list[Diag]:
    """The diagnostics found in the library file ``lib`` by checking the specs that import it
    (``specs``: (path, text) pairs; the caller picks them), each once."""
    out, seen = [], set()
    for path, text in specs:
        for d in check_document(text, path, overlay).diags.get(lib, []):
            key = (d.range, d.code, d.message)
            if key not in seen:
                seen.add(key)
                out.append(d)
    return out


# ----------------------------------------------------------------------------- hover

def _contains(span: Span, line: int, col: int) -> bool:
    return (span.line, span.col) <= (line + 1, col + 1) <= (span.end_line, span.end_col)


def _size(span: Span) -> tuple[int, int]:
    return span.end_line - span.line, (span.end_col - span.col) if span.end_line == span.line else 0


def hover(result: Result, line: int, col: int, path: str | None = None) -> str | None:
    """Markdown for the op or block call at (line, col) of the file ``path`` (by default the
    document; else a file it imports): output shape(s), parameters and signature, one line per
    instance for a call inside a block body."""
    g = result.graph
    shown = result.files.get(path or result.path)
    if g is None or shown is None:
        return None
    nodes = [n for n, d in g.table.items()
             if d["span"] is not None and d["span"].file == shown and _contains(d["span"], line, col)]
    scopes = [s for s in g.scopes.values() if s.kind == "block" and s.span is not None
              and s.span.file == shown and _contains(s.span, line, col)]
    spans = [g.table[n]["span"] for n in nodes] + [s.span for s in scopes]
    if not spans:
        return None
    best = min(spans, key=_size)
    ops = [n for n in nodes if g.table[n]["span"] == best]
    if ops:
        return _hover_op(g, ops)
    return _hover_block(g, [s for s in scopes if s.span == best], result)


def _instances(rows: list[str]) -> str:
    """A Markdown list of the first instances, then how many more there are."""
    more = len(rows) - SHOWN_INSTANCES
    return "\n".join(rows[:SHOWN_INSTANCES]) + (f"\n\nand {more} more" if more > 0 else "")


def _hover_op(g, ops: list[int]) -> str:
    first = g.table[ops[0]]
    op = OPS[first["op"]]
    head = f"**{op.name}** (op, {op.category})"
    sig = f"```arch\n{op_signature(op.name)}\n```"
    if len(ops) == 1:
        return "\n\n".join([head, f"`{first['name']}` → `{list(first['shape'])}`", sig, _attrs(first)]).strip()
    rows = [f"- `{g.table[n]['name']}` → `{list(g.table[n]['shape'])}`" +
            (f" ({_args(g.table[n]['attrs'])})" if g.table[n]["attrs"] else "") for n in ops]
    return "\n\n".join([head + f", {len(ops)} instances", _instances(rows), sig])


def _attrs(d: dict) -> str:
    out = f"arguments: {_args(d['attrs'])}" if d["attrs"] else ""
    return out + (f"\n\nparameters: {d['params']:,}" if d["params"] else "")


def _args(attrs: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in attrs.items())


def _value(v) -> str:
    """A value as the language writes it."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def _scope_outputs(g) -> dict[int, int]:
    """Scope id -> the last node made inside it (its output: nodes are in creation order)."""
    last = {}
    for n, d in g.table.items():
        sid = d["scope"]
        while sid is not None:
            last[sid] = n
            sid = g.scopes[sid].parent
    return last


def _hover_block(g, scopes: list, result: Result) -> str:
    last = _scope_outputs(g)
    name = scopes[0].block
    block = find_block(result, name)
    sig = f"```arch\n{block_signature(block, result.sources) if block is not None else name}\n```"

    def row(s):
        out = g.table[last[s.id]]["shape"] if s.id in last else None
        return (f"`{s.name}` → `{list(out) if out is not None else '?'}`"
                + (f" ({_args(s.args)})" if s.args else ""))
    if len(scopes) == 1:
        return "\n\n".join([f"**{name}** (block)", row(scopes[0]), sig])
    rows = ["- " + row(s) for s in scopes]
    return "\n\n".join([f"**{name}** (block), {len(scopes)} instances", _instances(rows), sig])


def find_block(result: Result, name: str) -> BlockDef | None:
    """The block a name calls in the document: its own or an imported one (else any loaded file's)."""
    if result.module is not None and name in result.module.blocks:
        return result.module.blocks[name][0]
    return next((m.blocks[name][0] for m in result.modules.values() if name in m.blocks), None)


# ----------------------------------------------------------------------------- signatures

def op_signature(name: str) -> str:
    op = OPS[name]
    parts = [p.name if p.required else f"{p.name}={_value(p.default)}" for p in op.params]
    if op.arity is None:
        return f"{name}({', '.join(parts)}) {{ a; b; ... }}"
    return f"{name}({', '.join(parts)})"


def _text(sources: dict, span: Span) -> str:
    lines = sources.get(span.file, "").split("\n")
    if span.line != span.end_line or span.line > len(lines):
        return "..."
    return lines[span.line - 1][span.col - 1:span.end_col - 1]


def block_signature(block: BlockDef, sources: dict) -> str:
    parts = [p.name if p.default is None else f"{p.name} = {_text(sources, p.default.span)}"
             for p in block.params]
    kind = "network" if block.is_network else "inline block" if block.inline else "block"
    return f"{kind} {block.name}({', '.join(parts)})"


# ----------------------------------------------------------------------------- definition

def _walk(node):
    """Every AST node under ``node`` (spans and plain values left out)."""
    todo = [node]
    while todo:
        n = todo.pop()
        yield n
        for f in fields(n):
            v = getattr(n, f.name)
            for x in (v if isinstance(v, (list, tuple)) else (v,)):
                if is_dataclass(x) and not isinstance(x, Span):
                    todo.append(x)


def name_at(ast, line: int, col: int) -> str | None:
    """The name called (or, as a value, named) at (line, col): a call's name or a variable."""
    if ast is None:
        return None
    hits = [(n.name_span, n.name) for n in _walk(ast) if isinstance(n, Call) and _contains(n.name_span, line, col)]
    hits += [(n.span, n.name) for n in _walk(ast) if isinstance(n, Var) and _contains(n.span, line, col)]
    return min(hits, key=lambda h: _size(h[0]))[1] if hits else None


def definition(result: Result, line: int, col: int):
    """Where the block named at (line, col) is defined: (real path, 0-based range), or None."""
    name = name_at(result.ast, line, col)
    block = find_block(result, name) if name is not None else None
    if block is None:
        return None
    path = result.path_of(block.span.file)
    return (path, _name_range(block, result.sources)) if path is not None else None


def _name_range(block: BlockDef, sources: dict) -> tuple[int, int, int, int]:
    """The block's name in its definition (the span starts at `block`, `inline` or `network`)."""
    span = block.span
    lines = sources.get(span.file, "").split("\n")
    text = lines[span.line - 1] if span.line <= len(lines) else ""
    m = re.compile(rf"\b{re.escape(block.name)}\b").search(text, span.col - 1)
    if m is None:
        return _range(span)
    return span.line - 1, m.start(), span.line - 1, m.end()


# ----------------------------------------------------------------------------- completion

@dataclass
class Completion:
    label: str
    kind: str          # op | join | block | parameter | keyword
    detail: str
    insert: str


_CALLEE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")


def open_call(before: str) -> str | None:
    """The name of the call whose argument list is open at the end of ``before``, if any."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        c = before[i]
        if c in ")]":
            depth += 1
        elif c in "([":
            if depth == 0:
                m = _CALLEE.search(before, 0, i) if c == "(" else None
                return m.group(1) if m else None
            depth -= 1
    return None


def completions(result: Result, text: str, line: int, col: int) -> list[Completion]:
    """What may be written at (line, col) of ``text`` (the document now; ``result`` may be the last
    check that loaded it): inside a call's parentheses its keyword arguments first, then the
    parameters of the enclosing network or block, the blocks it sees and the ops."""
    lines = text.split("\n")
    before = lines[line][:col] if line < len(lines) else ""
    callee = open_call(before)
    out = _keywords(result, callee) if callee is not None else []
    out += _parameters(result, line)
    if result.module is not None:
        out += [Completion(n, "block", block_signature(b, result.sources), n)
                for n, (b, _) in sorted(result.module.blocks.items())]
    for name, op in OPS.items():
        if op.arity != 0:
            out.append(Completion(name, "join" if op.arity is None else "op", op_signature(name), name))
    return out


def _keywords(result: Result, callee: str) -> list[Completion]:
    if result.module is not None and callee in result.module.blocks:
        block = result.module.blocks[callee][0]
        return [Completion(f"{p.name}=", "keyword", block_signature(block, result.sources), f"{p.name}=")
                for p in block.params]
    if callee in OPS:
        return [Completion(f"{p.name}=", "keyword", f"{p.kind}" + ("" if p.required else f" = {_value(p.default)}"),
                           f"{p.name}=") for p in OPS[callee].params]
    return []


def _parameters(result: Result, line: int) -> list[Completion]:
    if result.ast is None:
        return []
    for item in result.ast.items:
        if isinstance(item, BlockDef) and item.span.line - 1 <= line <= item.span.end_line - 1:
            return [Completion(p.name, "parameter", f"parameter of {item.name}", p.name) for p in item.params]
    return []
