"""Load: files and imports -> module namespaces (blocks, networks, top-level lets).

Imports are resolved relative to the importing file and confined to the allowed
roots (the main spec's folder tree, the packaged library ``std/``, and any root the
caller adds); ``..`` and symlink escapes are refused, and so are cycles.

Every spec file, the main one and each import, goes through one open-then-check
path (:func:`open_spec`): the file is opened first (following symlinks, so links
that stay inside the roots keep working), and every decision is then made on the
open descriptor: it must be a regular file, its real path must end in ``.arch`` and
lie inside an allowed root, and the text is read from that same descriptor. A
symlink swapped between a check and a read can therefore never make the loader
read a file it did not check (the race of checking a name and opening it again).

A loader can also replay a *loading record* (see ``frontend.check``): every text it
read and how each import resolved, so a spec is elaborated again without touching
the file system.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ArchError, LimitError, Limits, ParseError, Span, SpecImportError, did_you_mean
from .syntax import BlockDef, Import, Let, parse
from .values import show

_PACKAGE = Path(__file__).resolve().parent


def library_dirs() -> tuple[Path, Path]:
    """The packaged library: (block libraries, zoo specs).

    An installed wheel ships them inside the package (``archdsl/std/`` and
    ``archdsl/std/zoo/``); a source checkout or editable install reads the
    repository's ``specs/lib/`` and ``specs/``, which stay the one copy.
    """
    packaged = _PACKAGE / "std"
    if packaged.is_dir():
        return packaged, packaged / "zoo"
    specs = _PACKAGE.parent / "specs"
    return specs / "lib", specs


def std_path(name: str) -> Path | None:
    """The file an ``import "std/..."`` names: ``std/<lib>.arch`` is a block library,
    ``std/zoo/<name>.arch`` a zoo spec. None when ``name`` is not a ``std/`` name or
    steps out of the library (an empty, ``.`` or ``..`` part)."""
    if not name.startswith("std/"):
        return None
    parts = name[4:].split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    lib, zoo = library_dirs()
    if parts[0] == "zoo" and len(parts) > 1:
        return zoo.joinpath(*parts[1:])
    return lib.joinpath(*parts)


@dataclass
class ModuleScope:
    """The names one file defines, including those it imports."""

    file: str
    blocks: dict = field(default_factory=dict)     # name -> (BlockDef, ModuleScope)
    networks: dict = field(default_factory=dict)   # name -> BlockDef (this file's own, in order)
    lets: list = field(default_factory=list)       # top-level Let statements, in order
    imports: list = field(default_factory=list)    # the ModuleScopes this file imports
    values: dict | None = None                     # top-level lets, once evaluated


# ----------------------------------------------------------------------------- open, then check

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)

# Tests set this to run code at the two moments a racing symlink swap matters: "resolved"
# (the name was checked, nothing is open yet) and "opened" (the descriptor exists, nothing
# about it has been checked). It is called with the stage and the path about to be / just opened.
race_hook = None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def fd_path(fd: int, name: str | Path) -> str:
    """The real path of an open descriptor.

    On Linux it is read from ``/proc/self/fd/N``, which names the very file that is
    open. Where /proc is missing it falls back to ``os.path.realpath`` of the name:
    weaker, because the name can point elsewhere by then (the read still comes from
    the descriptor, but the root check is on the name).
    """
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(name)


def _cannot_open(e: OSError | ValueError, name: str, span: Span | None, hint: str | None) -> ArchError:
    if isinstance(e, OSError) and e.errno == errno.ENOENT and span is not None:  # an import
        return SpecImportError("E070", f"cannot find {show(name)}", span, hint=hint)
    reason = {errno.ELOOP: "too many levels of symbolic links"}.get(getattr(e, "errno", None))
    reason = reason or getattr(e, "strerror", None) or str(e)
    return SpecImportError("E070", f"cannot read {show(name)}: {reason}", span)


def open_spec(path: str | Path, shown: str, limits: Limits, span: Span | None = None,
              roots: list[Path] | None = None, missing_hint: str | None = None) -> tuple[int, str]:
    """Open a spec file and check what was opened; returns (descriptor, real path).

    The caller reads with :func:`read_fd` and closes the descriptor. ``roots`` None
    skips the root check (the main spec defines its own root). A FIFO or a device
    never blocks the open (``O_NONBLOCK``) and is refused before anything is read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise _cannot_open(e, shown, span, missing_hint) from None
    try:
        if race_hook is not None:
            race_hook("opened", path)
        real = fd_path(fd, path)
        if roots is not None and not any(_inside(real, root) for root in roots):
            raise SpecImportError("E071", f"import {show(shown)} leaves the allowed folders", span,
                                  notes=[f"it resolves to {real}", "allowed: " + ", ".join(map(str, roots))],
                                  hint="imports stay inside the main spec's folder tree; "
                                       "allow another root with `--allow-import DIR`")
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecImportError("E074", f"{shown} is {_kind(st.st_mode)}, not a spec file", span,
                                  hint="an import names a regular .arch file" if span is not None else
                                  "a spec is a regular .arch file; `-` reads standard input")
        if not real.endswith(".arch"):
            what = "a link to a file that is not" if str(shown).endswith(".arch") else "not"
            raise SpecImportError("E073", f"{shown} is {what} an .arch file", span,
                                  notes=[f"it resolves to {real}"], hint="only .arch files are read as specs")
        if st.st_size > limits.source:
            raise ArchError("E006", f"{shown} is {st.st_size:,} bytes, over the source limit of "
                            f"{limits.source:,}", span, hint="raise it with `--limit source=N`")
    except BaseException:
        os.close(fd)
        raise
    return fd, real


def _inside(real: str, root: Path) -> bool:
    return Path(real).is_relative_to(root)


def read_fd(fd: int, shown: str, limits: Limits, span: Span | None = None) -> str:
    """The text behind an open descriptor, at most the source limit (E006 beyond it, E003 if not UTF-8)."""
    chunks, size = [], 0
    try:
        while size <= limits.source:
            chunk = os.read(fd, min(1 << 20, limits.source + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise SpecImportError("E070", f"cannot read {shown}: {e.strerror or e}", span) from None
    return decode_source(b"".join(chunks), shown, limits, span)


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
        raise SpecImportError("E070", f"cannot resolve {show(str(path))}: {getattr(e, 'strerror', None) or e}",
                              span) from None


def _siblings(target: Path) -> str | None:
    """A did-you-mean hint from the .arch files beside a missing import."""
    try:
        here = target.parent
        return did_you_mean(target.name, [p.name for p in here.glob("*.arch")] if here.is_dir() else [])
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- the loader

class Loader:
    """Parses a main file and everything it imports, once each.

    Files are keyed by their real path (spec text by ``<base>/<string>``). As it goes,
    the loader keeps what a loading record needs: ``files`` (key -> text), ``shown``
    (key -> the name diagnostics print) and ``resolved`` (importer key -> import
    string -> key). Given ``replay`` (such a record), it reads only from it.
    """

    def __init__(self, limits: Limits, roots: list | None = None, replay: dict | None = None):
        self.limits = limits
        # (a replay keeps the record's roots as they are: resolving them would touch the file system)
        self.extra_roots = [Path(r) if replay is not None else Path(r).resolve() for r in (roots or [])]
        self.roots: list[Path] = []
        self.sources: dict[str, str] = {}              # shown name -> text, for diagnostics
        self.modules: dict[str, ModuleScope] = {}      # key -> scope
        self.loading: list[str] = []                   # keys being loaded (cycle detection)
        self.files: dict[str, str] = {}
        self.shown: dict[str, str] = {}
        self.resolved: dict[str, dict[str, str]] = {}
        self.main: str | None = None
        self.replay = replay
        self.main_dir = ""

    def load_file(self, path: str | Path) -> ModuleScope:
        shown = str(path)
        fd, real = open_spec(path, shown, self.limits)
        try:
            text = read_fd(fd, shown, self.limits)
        finally:
            os.close(fd)
        lib, zoo = library_dirs()
        self.roots = [Path(real).parent, *_existing(lib, zoo), *self.extra_roots]
        self.main_dir = os.path.dirname(shown)
        return self._build(text, shown, real)

    def load_text(self, text: str, file: str = "<string>", base: str | Path | None = None) -> ModuleScope:
        base_dir = Path(base or os.getcwd()).resolve()
        lib, zoo = library_dirs()
        self.roots = [base_dir, *_existing(lib, zoo), *self.extra_roots]
        if len(text.encode("utf-8", "surrogatepass")) > self.limits.source:
            raise ArchError("E006", f"{file} is over the source limit of {self.limits.source:,} bytes",
                            hint="raise it with `--limit source=N`")
        return self._build(text, file, str(base_dir / file))

    def load_record(self) -> ModuleScope:
        """The main module of the replayed record (it was checked by ``frontend.check_files``)."""
        main = self.replay["main"]
        return self._build(self.replay["files"][main], self.replay["shown"][main], main)

    def _build(self, text: str, shown: str, key: str) -> ModuleScope:
        if self.main is None:
            self.main = key
        self.sources[shown] = text
        self.files[key], self.shown[key] = text, shown
        self.loading.append(key)
        try:
            ast = parse(text, shown, self.limits)
            scope = ModuleScope(shown)
            for item in ast.items:
                if isinstance(item, Import):
                    self._import(item, key, scope)
                elif isinstance(item, BlockDef):
                    self._define(item, scope)
                elif isinstance(item, Let):
                    scope.lets.append(item)
            self.modules[key] = scope
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

    def _shown(self, real: str) -> str:
        """An imported file's name as diagnostics print it: beside the main file's name."""
        path = Path(real)
        if path.is_relative_to(self.roots[0]):
            return os.path.join(self.main_dir, str(path.relative_to(self.roots[0])))
        return real

    def _import(self, item: Import, importer: str, scope: ModuleScope) -> None:
        raw = item.path
        if not raw.endswith(".arch"):
            raise SpecImportError("E073", f"can only import .arch files, not {show(raw)}", item.span)
        if len(self.loading) > self.limits.depth:
            raise LimitError("E086", f"imports nested deeper than {self.limits.depth} files", item.span,
                             hint="raise the limit with `--limit depth=N` if this is intended")
        module = self._from_record(item, importer) if self.replay is not None else self._from_files(item, importer)
        scope.imports.append(module)
        for name, entry in module.blocks.items():
            if entry[1] is module or name not in scope.blocks:
                scope.blocks.setdefault(name, entry)

    def _cycle(self, key: str, span: Span) -> None:
        if key in self.loading:
            names = [os.path.basename(k) for k in self.loading[self.loading.index(key):]]
            raise SpecImportError("E072", "import cycle: " + " -> ".join(names + [os.path.basename(key)]), span)

    def _from_files(self, item: Import, importer: str) -> ModuleScope:
        raw = item.path
        if raw.startswith("std/"):
            target = std_path(raw)
            if target is None:
                raise SpecImportError("E071", f"import {show(raw)} leaves the allowed folders", item.span,
                                      hint="a library import is `std/<lib>.arch` or `std/zoo/<name>.arch`")
        else:
            target = Path(importer).parent / raw
        # An early refusal by name, so nothing outside the roots is even opened; the decision
        # that counts is made again on the opened descriptor (open_spec).
        resolved = _resolve(target, item.span)
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise SpecImportError("E071", f"import {show(raw)} leaves the allowed folders", item.span,
                                  notes=[f"it resolves to {resolved}",
                                         "allowed: " + ", ".join(str(r) for r in self.roots)],
                                  hint="imports stay inside the main spec's folder tree; "
                                       "allow another root with `--allow-import DIR`")
        if race_hook is not None:
            race_hook("resolved", target)
        fd, real = open_spec(target, raw, self.limits, item.span, self.roots, _siblings(target))
        try:
            self.resolved.setdefault(importer, {})[raw] = real
            self._cycle(real, item.span)
            if real in self.modules:
                return self.modules[real]
            text = read_fd(fd, raw, self.limits, item.span)
        finally:
            os.close(fd)
        return self._build(text, raw if raw.startswith("std/") else self._shown(real), real)

    def _from_record(self, item: Import, importer: str) -> ModuleScope:
        key = self.replay["imports"].get(importer, {}).get(item.path)
        if key is None:
            raise SpecImportError("E075", f"the loading record does not say where {show(item.path)} resolves",
                                  item.span, hint="a record replays exactly the files it was made from")
        self.resolved.setdefault(importer, {})[item.path] = key
        self._cycle(key, item.span)
        if key in self.modules:
            return self.modules[key]
        return self._build(self.replay["files"][key], self.replay["shown"][key], key)


def _existing(*dirs: Path) -> list[Path]:
    """The library folders that exist, resolved (an installed package without its library has none)."""
    out = []
    for d in dirs:
        try:
            if d.is_dir():
                out.append(d.resolve())
        except OSError:
            pass
    return out
