"""Load: files and imports -> module namespaces (blocks, networks, top-level lets).

Imports are resolved relative to the importing file and confined to the allowed
roots (the main spec's folder tree, the package's ``specs`` library, and any root
the caller adds); ``..`` and symlink escapes are refused, and so are cycles.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ArchError, LimitError, Limits, ParseError, Span, SpecImportError, did_you_mean
from .syntax import BlockDef, Import, Let, parse

LIBRARY = Path(__file__).parent / "lib"  # block libraries shipped with the package


@dataclass
class ModuleScope:
    """The names one file defines, including those it imports."""

    file: str
    blocks: dict = field(default_factory=dict)     # name -> (BlockDef, ModuleScope)
    networks: dict = field(default_factory=dict)   # name -> BlockDef (this file's own, in order)
    lets: list = field(default_factory=list)       # top-level Let statements, in order
    imports: list = field(default_factory=list)    # the ModuleScopes this file imports
    values: dict | None = None                     # top-level lets, once evaluated


def read_source(path: Path, limits: Limits, span: Span | None = None) -> str:
    """Read a spec file as UTF-8, refusing oversize and undecodable files with a diagnostic."""
    shown = str(path)
    try:
        size = path.stat().st_size
        if size > limits.source:
            raise ArchError("E006", f"{shown} is {size:,} bytes, over the source limit of {limits.source:,}",
                            span, hint="raise it with `--limit source=N`")
        with path.open("rb") as f:  # bounded: a device or pipe reports size 0 and may never end
            data = f.read(limits.source + 1)
    except (OSError, ValueError) as e:
        raise SpecImportError("E070", f"cannot read {shown}: {getattr(e, 'strerror', None) or e}", span) from None
    return decode_source(data, shown, limits, span)


def decode_source(data: bytes, shown: str, limits: Limits, span: Span | None = None) -> str:
    """Source bytes as text: over the source limit is E006, invalid UTF-8 is E003."""
    if len(data) > limits.source:
        raise ArchError("E006", f"{shown} is over the source limit of {limits.source:,} bytes", span,
                        hint="raise it with `--limit source=N`")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        err = ParseError("E003", f"invalid UTF-8 at byte {e.start}", Span(shown, line, col, line, col + 1),
                         hint="spec files must be UTF-8 text")
        err.sources = {shown: data.decode("utf-8", "replace")}
        raise err from None


def _resolve(path: Path, span: Span | None) -> Path:
    """``path.resolve()``, with the ways it can fail (a NUL byte, a symlink loop) as diagnostics."""
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError) as e:
        raise SpecImportError("E070", f"cannot resolve {str(path)!r}: {getattr(e, 'strerror', None) or e}",
                              span) from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, say
        return False


class Loader:
    """Parses a main file and everything it imports, once each."""

    def __init__(self, limits: Limits, roots: list[Path] | None = None):
        self.limits = limits
        self.extra_roots = [Path(r).resolve() for r in (roots or [])]
        self.roots: list[Path] = []
        self.sources: dict[str, str] = {}
        self.modules: dict[Path, ModuleScope] = {}
        self.loading: list[Path] = []

    def load_file(self, path: str | Path) -> ModuleScope:
        path = Path(path)
        resolved = _resolve(path, None)
        self.roots = [resolved.parent, LIBRARY.resolve(), *self.extra_roots]
        self.main_dir = os.path.dirname(str(path))
        return self._load(resolved, str(path), None)

    def load_text(self, text: str, file: str = "<string>", base: str | Path | None = None) -> ModuleScope:
        base_dir = Path(base or os.getcwd()).resolve()
        self.roots = [base_dir, LIBRARY.resolve(), *self.extra_roots]
        self.main_dir = ""
        if len(text.encode("utf-8", "surrogatepass")) > self.limits.source:
            raise ArchError("E006", f"{file} is over the source limit of {self.limits.source:,} bytes",
                            hint="raise it with `--limit source=N`")
        return self._build(text, file, base_dir / "<string>")

    def _load(self, resolved: Path, shown: str, span: Span | None) -> ModuleScope:
        if resolved in self.modules:
            return self.modules[resolved]
        text = read_source(resolved if span is None else resolved, self.limits, span)
        return self._build(text, shown, resolved)

    def _build(self, text: str, shown: str, resolved: Path) -> ModuleScope:
        self.sources[shown] = text
        self.loading.append(resolved)
        try:
            ast = parse(text, shown, self.limits)
            scope = ModuleScope(shown)
            for item in ast.items:
                if isinstance(item, Import):
                    self._import(item, resolved, scope)
                elif isinstance(item, BlockDef):
                    self._define(item, scope)
                elif isinstance(item, Let):
                    scope.lets.append(item)
            self.modules[resolved] = scope
            return scope
        finally:
            self.loading.pop()

    def _define(self, item: BlockDef, scope: ModuleScope) -> None:
        if item.name in scope.blocks and scope.blocks[item.name][1] is scope or item.name in scope.networks:
            raise ArchError("E031", f"`{item.name}` is defined twice in this file", item.span)
        if item.is_network:
            scope.networks[item.name] = item
        else:
            scope.blocks[item.name] = (item, scope)

    def _shown(self, resolved: Path) -> str:
        """An imported file's name as diagnostics print it: beside the main file's name."""
        if resolved.is_relative_to(self.roots[0]):
            return os.path.join(self.main_dir, str(resolved.relative_to(self.roots[0])))
        return str(resolved)

    def _import(self, item: Import, importer: Path, scope: ModuleScope) -> None:
        raw = item.path
        if not raw.endswith(".arch"):
            raise SpecImportError("E073", f"can only import .arch files, not {raw!r}", item.span)
        if raw.startswith("std/"):
            target = LIBRARY / raw[4:]
        else:
            target = importer.parent / raw
        resolved = _resolve(target, item.span)
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise SpecImportError("E071", f"import {raw!r} leaves the allowed folders", item.span,
                                  notes=[f"it resolves to {resolved}",
                                         "allowed: " + ", ".join(str(r) for r in self.roots)],
                                  hint="imports stay inside the main spec's folder tree; "
                                       "allow another root with `--allow-import DIR`")
        if len(self.loading) > self.limits.depth:
            raise LimitError("E086", f"imports nested deeper than {self.limits.depth} files", item.span,
                             hint="raise the limit with `--limit depth=N` if this is intended")
        if resolved in self.loading:
            chain = " -> ".join(p.name for p in self.loading[self.loading.index(resolved):]) + f" -> {resolved.name}"
            raise SpecImportError("E072", f"import cycle: {chain}", item.span)
        if not _is_file(resolved):
            here = target.parent
            try:
                names = [p.name for p in here.glob("*.arch")] if here.is_dir() else []
            except (OSError, ValueError):
                names = []
            raise SpecImportError("E070", f"cannot find {raw!r}", item.span,
                                  hint=did_you_mean(target.name, names))
        shown = raw if raw.startswith("std/") else self._shown(resolved)
        module = self._load(resolved, shown, item.span)
        scope.imports.append(module)
        for name, entry in module.blocks.items():
            if entry[1] is module or name not in scope.blocks:
                scope.blocks.setdefault(name, entry)
