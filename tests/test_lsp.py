"""The language server (`archdsl lsp`), driven as an editor drives it: one server process over
stdio for the whole module, JSON-RPC framed here, a workspace of a few specs in a temporary folder."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

import archdsl
from archdsl.lsp_analysis import SHOWN_INSTANCES, check_document


LIB = """\
block unit(c, stride = 1) { conv(c, 3, stride=stride, pad=1) -> bn -> relu }
"""
NET = """\
import "lib.arch"

network tiny(classes = 10) {
    input image: [3, 32, 32]
    stem: conv(16, 3, pad=1)
    for i in range(7) { unit(16) }
    head: global_avgpool -> flatten -> fc: linear(classes, strid=2)
}
"""
PLUGIN = """\
from archdsl.extern import Op, op


@op
class Twice(Op):
    name, category, elementwise = "lsp_twice", "other", True

    def forward(self, a, args, mod, inplace):
        return f"2 * {args[0]}"
"""
PUBLISHED = "textDocument/publishDiagnostics"


class Client:
    """A minimal LSP client: requests wait for their response; notifications are queued."""

    def __init__(self, cwd):
        self.proc = subprocess.Popen([sys.executable, "-m", "archdsl.lsp"], cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0
        self.responses: dict = {}
        self.notes: queue.Queue = queue.Queue()
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            headers = {}
            while (line := out.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode("ascii").partition(":")
                headers[key.strip().lower()] = value.strip()
            if not headers:
                return
            msg = json.loads(out.read(int(headers["content-length"])))
            if "id" in msg and "method" not in msg:
                with self.cond:
                    self.responses[msg["id"]] = msg
                    self.cond.notify_all()
            elif "id" in msg:   # a request of the server (e.g. workspace/configuration): answer nothing useful
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
            else:
                self.notes.put(msg)

    def send(self, msg):
        body = json.dumps(msg).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method, params, timeout=30):
        self.next_id += 1
        rid = self.next_id
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        with self.cond:
            assert self.cond.wait_for(lambda: rid in self.responses, timeout), f"no answer to {method}"
            msg = self.responses.pop(rid)
        assert "error" not in msg, msg["error"]
        return msg["result"]

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def next(self, method, match=lambda params: True, timeout=30):
        """The params of the next notification ``method`` that ``match``es (others are dropped)."""
        end = time.monotonic() + timeout
        while True:
            msg = self.notes.get(timeout=max(0.01, end - time.monotonic()))
            if msg["method"] == method and match(msg["params"]):
                return msg["params"]

    def diagnostics(self, uri):
        """The next diagnostics published for ``uri``."""
        return self.next(PUBLISHED, lambda p: p["uri"] == uri)["diagnostics"]

    def open(self, uri, text):
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "arch", "version": 1,
                                                             "text": text}})
        return self.diagnostics(uri)

    def change(self, uri, text, version=2):
        self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                               "contentChanges": [{"text": text}]})
        return self.diagnostics(uri)

    def at(self, method, uri, line, character):
        return self.request(method, {"textDocument": {"uri": uri}, "position": {"line": line,
                                                                                 "character": character}})


def uri(path) -> str:
    return "file://" + str(path)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    (root / "lib.arch").write_text(LIB)
    (root / "net.arch").write_text(NET)
    (root / "twice_plugin.py").write_text(PLUGIN)
    client = Client(root)
    caps = client.request("initialize", {"processId": os.getpid(), "rootUri": uri(root), "capabilities": {},
                                         "workspaceFolders": [{"uri": uri(root), "name": "ws"}],
                                         "initializationOptions": {"plugins": [str(root / "twice_plugin.py")]}})
    client.notify("initialized", {})
    client.root, client.caps = root, caps["capabilities"]
    yield client
    client.request("shutdown", None)
    client.notify("exit", None)
    client.proc.wait(timeout=10)


def test_capabilities(ws):
    for what in ("hoverProvider", "definitionProvider", "completionProvider", "documentFormattingProvider"):
        assert ws.caps.get(what), what


def test_a_broken_spec_gets_the_diagnostic_check_gives(ws):
    path = ws.root / "net.arch"
    [d] = ws.open(uri(path), NET)
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check(path)
    span = e.value.span
    assert d["code"] == e.value.code == "E022" and d["source"] == "archdsl"
    assert d["range"] == {"start": {"line": span.line - 1, "character": span.col - 1},
                          "end": {"line": span.end_line - 1, "character": span.end_col - 1}}
    assert d["message"].startswith(e.value.message) and f"hint: {e.value.hint}" in d["message"]
    assert ws.change(uri(path), NET.replace(", strid=2", "")) == []


def test_hover_shows_shapes_parameters_and_instances(ws):
    path = ws.root / "net.arch"
    ws.change(uri(path), NET.replace(", strid=2", ""), 3)
    text = ws.at("textDocument/hover", uri(path), 4, 12)["contents"]["value"]
    assert "`stem` → `[16, 32, 32]`" in text and "conv(out, kernel, stride=1" in text and "pad=1" in text
    text = ws.at("textDocument/hover", uri(path), 5, 26)["contents"]["value"]   # unit(16) in the loop
    assert "**unit** (block), 7 instances" in text and "block unit(c, stride = 1)" in text
    assert text.count("→ `[16, 32, 32]`") == SHOWN_INSTANCES and "and 2 more" in text
    assert ws.at("textDocument/hover", uri(path), 0, 3) is None   # the import line: nothing to say
    assert ws.change(uri(path), NET.replace("strid=2", "dim=5"), 4)[0]["code"] == "E041"   # the last op fails
    text = ws.at("textDocument/hover", uri(path), 4, 12)["contents"]["value"]
    assert "`stem` → `[16, 32, 32]`" in text   # the ops before a shape error keep their shapes


def test_definition_across_imports(ws):
    path = ws.root / "net.arch"
    ws.change(uri(path), NET.replace(", strid=2", ""), 4)
    loc = ws.at("textDocument/definition", uri(path), 5, 25)
    assert loc == {"uri": uri(ws.root / "lib.arch"),
                   "range": {"start": {"line": 0, "character": 6}, "end": {"line": 0, "character": 10}}}
    std = ws.change(uri(path), NET.replace(", strid=2", "").replace("unit(16)", "bottleneck(4)")
                    .replace('"lib.arch"', '"std/resnet.arch"'), 5)
    assert std == []
    loc = ws.at("textDocument/definition", uri(path), 5, 26)
    assert loc["uri"].endswith("/resnet.arch")


def test_completion_of_ops_blocks_parameters_and_keywords(ws):
    path = ws.root / "net.arch"
    text = NET.replace(", strid=2", "")
    ws.change(uri(path), text, 6)
    labels = [i["label"] for i in ws.at("textDocument/completion", uri(path), 4, 10)["items"]]
    assert {"conv", "relu", "concat", "unit", "classes"} <= set(labels) and "input" not in labels
    labels = [i["label"] for i in ws.at("textDocument/completion", uri(path), 4, 23)["items"]]   # in conv(
    assert labels[:4] == ["out=", "kernel=", "stride=", "pad="]
    broken = text.replace("    stem: conv(16, 3, pad=1)", "    stem: unit(")   # does not parse: last good check
    assert ws.change(uri(path), broken, 7)[0]["code"] == "E001"
    labels = [i["label"] for i in ws.at("textDocument/completion", uri(path), 4, 15)["items"]]
    assert labels[:2] == ["c=", "stride="]


def test_an_error_in_an_imported_file_is_shown_at_the_call_and_in_the_file(ws):
    net, lib = ws.root / "net.arch", ws.root / "lib.arch"
    text = NET.replace(", strid=2", "")
    ws.change(uri(net), text, 8)
    assert ws.open(uri(lib), LIB) == []
    shown = ws.at("textDocument/hover", uri(lib), 0, LIB.index("conv") + 1)["contents"]["value"]   # via net.arch
    assert "**conv** (op, conv), 7 instances" in shown and "- `1.0` → `[16, 32, 32]`" in shown
    bad = LIB.replace("-> relu", "-> relu -> linear(c, dim=7)")   # unsaved: the importer reads the editor's text
    ws.notify("textDocument/didChange", {"textDocument": {"uri": uri(lib), "version": 2},
                                         "contentChanges": [{"text": bad}]})
    found = {}
    while len(found) < 2:   # (published in either order)
        params = ws.next(PUBLISHED, lambda p: p["diagnostics"])
        found[params["uri"]] = params["diagnostics"]
    [in_lib], [in_net] = found[uri(lib)], found[uri(net)]
    assert in_lib["code"] == in_net["code"] == "E041"
    assert in_lib["range"]["start"] == {"line": 0, "character": bad.index("dim=7")}
    assert in_net["range"]["start"] == {"line": 5, "character": text.split("\n")[5].index("unit(16)")}
    assert in_net["message"].startswith(f"in lib.arch:1:{bad.index('dim=7') + 1}: ")
    ws.notify("textDocument/didChange", {"textDocument": {"uri": uri(lib), "version": 3},
                                         "contentChanges": [{"text": "block unit(c { relu }\n"}]})
    [d] = ws.next(PUBLISHED, lambda p: p["uri"] == uri(net) and p["diagnostics"] and
                  p["diagnostics"][0]["code"] == "E001")["diagnostics"]
    assert d["range"]["start"] == {"line": 0, "character": 0}   # the import
    ws.notify("textDocument/didClose", {"textDocument": {"uri": uri(lib)}})
    # closed: the importer reads lib.arch from disk again, where it is fine
    assert ws.next(PUBLISHED, lambda p: p["uri"] == uri(net) and not p["diagnostics"])


def test_a_library_opened_alone_gets_what_its_importers_find(ws):
    lib = ws.root / "widen.arch"
    (ws.root / "uses_widen.arch").write_text('import "widen.arch"\nnetwork w() {\n    input x: [3, 8, 8]\n'
                                             '    widen(4)\n}\n')   # (on disk only: found in the workspace)
    text = "block widen(c) { conv(c, 1) -> linear(c, dim=5) }\n"
    lib.write_text(text)
    [d] = ws.open(uri(lib), text)
    assert d["code"] == "E041" and d["range"]["start"] == {"line": 0, "character": text.index("dim=5")}
    [d] = ws.change(uri(lib), "block widen(c) { conv(c, 1) ->  }\n")   # the importers' findings wait for a save
    assert d["code"] == "E001"


def test_plugins_setting_loads_user_ops(ws):
    path = ws.root / "plug.arch"
    assert ws.open(uri(path), "network p() {\n    input x: [3, 8, 8]\n    lsp_twice -> relu\n}\n") == []
    text = ws.at("textDocument/hover", uri(path), 2, 6)["contents"]["value"]
    assert "**lsp_twice**" in text and "`[3, 8, 8]`" in text
    ws.notify("workspace/didChangeConfiguration", {"settings": {"archdsl": {"plugins": ["no_such_plugin_lsp"]}}})
    shown = ws.next("window/showMessage")
    assert shown["type"] == 1 and "no_such_plugin_lsp: error[E097]" in shown["message"]


def test_formatting_is_archdsl_fmt(ws):
    from archdsl.fmt import format_source
    path = ws.root / "fmt.arch"
    text = "network f() {\n  input x: [3, 8, 8]\n      conv(4,3)->relu\n}\n"
    ws.open(uri(path), text)
    options = {"tabSize": 4, "insertSpaces": True}
    edits = ws.request("textDocument/formatting", {"textDocument": {"uri": uri(path)}, "options": options})
    expected = format_source(text)
    assert expected != text and edits == [
        {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 4, "character": 0}}, "newText": expected}]
    ws.change(uri(path), "network f( {\n", 2)   # does not parse: left as it is
    assert ws.request("textDocument/formatting", {"textDocument": {"uri": uri(path)}, "options": options}) == []


def test_a_500_op_spec_is_checked_again_quickly(tmp_path):
    lines = ["network big() {", "    input x: [16, 32, 32]"]
    lines += [f"    c{i}: conv(16, 3, pad=1) -> r{i}: relu" for i in range(250)]
    text = "\n".join(lines + ["}", ""])
    path = str(tmp_path / "big.arch")
    check_document(text, path)
    start = time.perf_counter()
    result = check_document(text.replace("pad=1)", "pad=1 )", 1), path)
    took = time.perf_counter() - start
    assert len(result.graph.table) == 501 and not result.diags
    assert took < 1.0, f"re-checking 500 ops took {took * 1000:.0f} ms (the aim is 100 ms)"
