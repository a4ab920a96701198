"""The language server: ``archdsl lsp`` speaks the Language Server Protocol over stdio (pygls 2).

What an editor gets (``docs/editors.md`` says how to set it up):

* diagnostics as you type, from the front end itself (``archdsl check``'s codes, spans, notes
  and hints); a mistake inside an imported file is shown on the document at the block call or
  the ``import`` that reaches it, and on the imported file itself when it is open; a library
  (a file without a network) opened alone gets its parse and definition diagnostics, plus those
  found by checking the workspace's specs that import it (when it is opened or saved);
* hover on an op or block call: output shape, arguments and signature; a call inside a block
  body has one shape per instance, and hover lists the first five;
* go to the definition of a block, across imports; completion of ops, blocks, the enclosing
  network's or block's parameters and the keyword arguments of the call being written;
* formatting through ``archdsl fmt``.

Open documents take the place of their files for imports too. The ``plugins`` setting
(initialization option or workspace setting ``archdsl.plugins``: module names, or paths of
``.py`` files) loads Python ops as ``--plugin`` does: only because the user configured it.
The checking itself is :mod:`archdsl.lsp_analysis`; this module is the protocol.
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from . import __version__
from .errors import ArchError
from .lsp_analysis import Diag, check_document, completions, definition, hover, library_diagnostics

DEBOUNCE_S = 0.05   # edits closer together than this are checked once; a request checks pending edits at once
MAX_WORKSPACE_SPECS = 2000   # .arch files looked at to find the specs that import a library
_SKIPPED_DIRS = {"node_modules", "__pycache__", "site-packages"}
_KINDS = {"op": T.CompletionItemKind.Function, "join": T.CompletionItemKind.Operator,
          "block": T.CompletionItemKind.Class, "parameter": T.CompletionItemKind.Variable,
          "keyword": T.CompletionItemKind.Property}


class ArchServer(LanguageServer):
    """The server and what it remembers between messages, every file keyed by its real path."""

    def __init__(self):
        super().__init__("archdsl", __version__, text_document_sync_kind=T.TextDocumentSyncKind.Incremental)
        self.results = {}    # path -> the last check of the open document
        self.loaded = {}     # path -> the last check that loaded it (for completion while it does not parse)
        self.uris = {}       # path -> the URI the editor names it by
        self.foreign = {}    # path -> {importer path -> [Diag] found in this file by checking the importer}
        self.library = {}    # path -> (text, [Diag]): found by checking the workspace specs importing the library
        self.plugins = set()
        self.pending = {}    # uri -> the timer of an edit not checked yet

    # ------------------------------------------------------------------ documents

    def open_documents(self) -> dict[str, str]:
        """Real path -> text of every open .arch document (what imports read first)."""
        out = {}
        for doc in list(self.workspace.text_documents.values()):
            if doc.path and doc.path.endswith(".arch"):
                out[os.path.realpath(doc.path)] = doc.source
        return out

    def refresh(self, uri: str, library: bool = False) -> None:
        """Check the document, publish what was found, and check again the open documents that
        import it (they read its new text). ``library``: also look for workspace specs that
        import it, when it is a library (on open and save: that is a scan of the workspace)."""
        self.cancel(uri)
        path = self.check(uri, library)
        for other, result in list(self.results.items()):
            if other != path and path in result.files:
                self.check(self.uris[other], False)

    def later(self, uri: str) -> None:
        """Check the document a moment after the last of a burst of edits (keys held, a paste)."""
        self.cancel(uri)
        self.pending[uri] = asyncio.get_running_loop().call_later(DEBOUNCE_S, self.flush, uri)

    def cancel(self, uri: str) -> None:
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()

    def flush(self, uri: str | None = None) -> None:
        """Check now what edits are pending: of ``uri``, or of every document."""
        for u in [uri] if uri is not None else list(self.pending):
            if u in self.pending:
                self.refresh(u)

    def check(self, uri: str, library: bool) -> str:
        doc = self.workspace.get_text_document(uri)
        path = os.path.realpath(doc.path)
        self.uris[path] = uri
        overlay = self.open_documents()
        result = check_document(doc.source, doc.path, overlay)
        self.results[path] = result
        if result.module is not None:
            self.loaded[path] = result
        if library and result.module is not None and not result.module.networks:
            self.library[path] = (doc.source, library_diagnostics(path, self.dependents(path, overlay), overlay))
        touched = {path}
        for other in set(self.foreign) | set(result.diags):
            before = self.foreign.get(other, {}).pop(path, None)
            now = result.diags.get(other) if other != path else None
            if now:
                self.foreign.setdefault(other, {})[path] = now
            if before or now:
                touched.add(other)
        for p in touched:
            self.publish(p)
        return path

    def dependents(self, lib: str, overlay: dict[str, str]):
        """(path, text) of the workspace's specs that may import ``lib`` (they name its file)."""
        name = os.path.basename(lib)
        for path in self.workspace_specs():
            if path == lib:
                continue
            text = overlay.get(path)
            if text is None:
                try:
                    text = Path(path).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
            if "import" in text and name in text:
                yield path, text

    def workspace_specs(self) -> list[str]:
        roots = [to_fs_path(f.uri) for f in self.workspace.folders.values()] or [self.workspace.root_path]
        found = []
        for root in filter(None, roots):
            for folder, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS]
                found += [os.path.realpath(os.path.join(folder, f)) for f in files if f.endswith(".arch")]
                if len(found) >= MAX_WORKSPACE_SPECS:
                    return found
        return found

    def close(self, uri: str) -> None:
        self.cancel(uri)
        path = os.path.realpath(to_fs_path(uri))
        self.results.pop(path, None)
        self.loaded.pop(path, None)
        self.library.pop(path, None)
        for other, table in list(self.foreign.items()):
            if table.pop(path, None):
                self.publish(other)
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        for other, result in list(self.results.items()):   # they read its file from disk again
            if path in result.files:
                self.check(self.uris[other], False)

    # ------------------------------------------------------------------ diagnostics

    def publish(self, path: str) -> None:
        if path not in self.results:
            return   # only open documents get diagnostics
        seen, diags = set(), []
        result = self.results[path]
        own = result.diags.get(path, [])
        text, found = self.library.get(path, (None, []))
        found = found if text == result.text else []   # (found in the text last opened or saved)
        for d in [*own, *(d for ds in self.foreign.get(path, {}).values() for d in ds), *found]:
            key = (d.range, d.code, d.message)
            if key not in seen:
                seen.add(key)
                diags.append(self.diagnostic(d))
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=self.uris[path], diagnostics=diags))

    def lines(self, path: str) -> list[str]:
        uri = self.uris.get(path)
        if uri is not None and path in self.results:
            return self.workspace.get_text_document(uri).lines
        try:
            return Path(path).read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            return []

    def to_range(self, path: str, r: tuple[int, int, int, int]) -> T.Range:
        lines, codec = self.lines(path), self.workspace.position_codec
        start = codec.position_to_client_units(lines, T.Position(r[0], r[1]))
        end = codec.position_to_client_units(lines, T.Position(r[2], r[3]))
        return T.Range(start, end)

    def diagnostic(self, d: Diag) -> T.Diagnostic:
        related = [T.DiagnosticRelatedInformation(T.Location(self.uri_of(p), self.to_range(p, r)), m)
                   for p, r, m in d.related]
        return T.Diagnostic(range=self.to_range(d.path, d.range), message=d.message,
                            severity=T.DiagnosticSeverity.Error, code=d.code, source="archdsl",
                            related_information=related or None)

    def uri_of(self, path: str) -> str:
        return self.uris.get(path) or from_fs_path(path)

    # ------------------------------------------------------------------ positions

    def at(self, params) -> tuple[object, str, int, int]:
        """(document, real path, line, column in characters) of a request's position."""
        self.flush()   # (answers are about the text as it is now)
        doc = self.workspace.get_text_document(params.text_document.uri)
        pos = doc.position_codec.position_from_client_units(doc.lines, params.position)
        return doc, os.path.realpath(doc.path), pos.line, pos.character

    def hover_sources(self, path: str):
        """The checks that elaborated the file at ``path``: its own, then those of the open
        documents that import it (a library's block bodies have shapes only through a network)."""
        own = self.results.get(path)
        if own is not None and own.graph is not None:
            yield own
        current = own.text if own is not None else None
        for other, result in list(self.results.items()):
            read = result.sources.get(result.files.get(path)) if other != path and result.graph is not None else None
            if read is not None and (current is None or read == current):
                yield result

    # ------------------------------------------------------------------ plugins

    def load_plugins(self, entries) -> None:
        """Load the configured plugins: module names, or paths of .py files (their folder goes on
        ``sys.path``, their stem is the module; a relative path is from the workspace's root).
        A failure is shown to the user, not raised."""
        from .extern import load_plugins
        if not isinstance(entries, (list, tuple)):
            entries = [entries] if isinstance(entries, str) else []
        for entry in entries:
            if not isinstance(entry, str) or entry in self.plugins:
                continue
            name = entry
            if entry.endswith(".py") or os.sep in entry:
                base = self.workspace.root_path or os.getcwd()   # (a relative path: from the workspace)
                folder, name = os.path.split(os.path.join(base, os.path.expanduser(entry)))
                name = name.removesuffix(".py")
                if folder not in sys.path:
                    sys.path.insert(0, folder)
            try:
                load_plugins([name])
                self.plugins.add(entry)
            except ArchError as e:
                self.window_show_message(T.ShowMessageParams(T.MessageType.Error,
                                                             f"archdsl plugin {entry}: error[{e.code}]: {e.message}"))
        for path in list(self.results):   # ops may have appeared: check again
            self.check(self.uris[path], False)


server = ArchServer()


def _plugins_of(settings) -> list | None:
    """The ``plugins`` entry of initialization options or settings (``{"archdsl": {"plugins": [...]}}``
    or ``{"plugins": [...]}``), None when there is none."""
    if not isinstance(settings, dict):
        return None
    if isinstance(settings.get("archdsl"), dict):
        settings = settings["archdsl"]
    return settings.get("plugins")


@server.feature(T.INITIALIZE)
def _initialize(ls: ArchServer, params: T.InitializeParams) -> None:
    plugins = _plugins_of(params.initialization_options)
    if plugins:
        ls.load_plugins(plugins)


@server.feature(T.WORKSPACE_DID_CHANGE_CONFIGURATION)
def _configuration(ls: ArchServer, params: T.DidChangeConfigurationParams) -> None:
    plugins = _plugins_of(params.settings)
    if plugins:
        ls.load_plugins(plugins)


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
def _did_open(ls: ArchServer, params: T.DidOpenTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri, library=True)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
def _did_change(ls: ArchServer, params: T.DidChangeTextDocumentParams) -> None:
    ls.later(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
def _did_save(ls: ArchServer, params: T.DidSaveTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri, library=True)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def _did_close(ls: ArchServer, params: T.DidCloseTextDocumentParams) -> None:
    ls.close(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_HOVER)
def _hover(ls: ArchServer, params: T.HoverParams) -> T.Hover | None:
    _, path, line, col = ls.at(params)
    text = None
    for result in ls.hover_sources(path):
        text = hover(result, line, col, path)
        if text:
            break
    return T.Hover(T.MarkupContent(T.MarkupKind.Markdown, text)) if text else None


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def _definition(ls: ArchServer, params: T.DefinitionParams) -> T.Location | None:
    _, path, line, col = ls.at(params)
    result = ls.loaded.get(path)
    current = ls.results.get(path)
    fresh = result is not None and current is not None and result.text == current.text   # (positions of this text)
    found = definition(result, line, col) if fresh else None
    if found is None:
        return None
    target, r = found
    return T.Location(ls.uri_of(target), ls.to_range(target, r))


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["(", ","]))
def _completion(ls: ArchServer, params: T.CompletionParams) -> T.CompletionList:
    doc, path, line, col = ls.at(params)
    result = ls.loaded.get(path) or ls.results.get(path)
    items = [T.CompletionItem(c.label, kind=_KINDS[c.kind], detail=c.detail, insert_text=c.insert,
                              sort_text=f"{i:04d}")
             for i, c in enumerate(completions(result, doc.source, line, col))] if result is not None else []
    return T.CompletionList(is_incomplete=False, items=items)


@server.feature(T.TEXT_DOCUMENT_FORMATTING)
def _formatting(ls: ArchServer, params: T.DocumentFormattingParams) -> list[T.TextEdit]:
    from .fmt import format_source  # (late: formatting is the one feature that needs it)

    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        new = format_source(doc.source)
    except ArchError:
        return []   # a document that does not parse is left as it is (its diagnostic says why)
    if new == doc.source:
        return []
    return [T.TextEdit(T.Range(T.Position(0, 0), T.Position(len(doc.lines), 0)), new)]   # (the whole text)


def serve() -> None:
    """Serve one editor over standard input and output until it exits (``archdsl lsp``)."""
    server.start_io()


if __name__ == "__main__":
    serve()
