"""Draw a network with Graphviz from its IR: nothing is run and torch is not imported.

    archdsl.render("specs/resnet50.arch").save("resnet50.svg")

Folding follows the spec's own structure (``ArchGraph.scopes``). Each scope is drawn
*open*, as a cluster titled with its name and parameter subtotal, or *closed*, as one box
with its name, block, op summary, output shape and parameters. ``depth`` counts block
nesting: a scope is open when its parent is and fewer than ``depth`` block instances lie
on its path, itself included (labelled groups and repetitions do not count). So depth 1
draws each top-level block instance as a box and a top-level labelled group, such as
ResNet's ``layer1``, as a cluster of boxes; depth 0 closes those groups too. The default
(``depth=None``) is the largest depth whose drawing has at most ``BUDGET`` boxes: ResNets
and Inceptions come out at depth 1, DenseNet at depth 2 (its one ``features`` block opens
into dense blocks and transitions), VGG-16 with every layer.
``expand`` opens the scopes it names by dotted path or block name, globs allowed
(``layer3.2``, ``layer3.*``, ``inception``), and their ancestors. Closed sibling instances
of one block, made by one repetition or loop (same ``Scope.repeat`` group), with only joins
between them (DenseNet's concats, taken into the fold), fold into one stacked box
"bottleneck ×5" with "5 × 1.12M = 5.59M params" when they compute alike: the same arguments
and ops and output shape (DenseNet's layers, their inputs widening), or the same ops, shapes
and parameter counts whatever the arguments (stochastic depth's per-layer ``survival``, shown
on the fold as "survival 0.991…0.833"); GhostNet's ``mid=200`` beside ``mid=184`` does not
fold. ``unroll`` draws each copy. Inside a cluster, names are relative to its title's path.
A cluster around a single thing is left out, except that a cluster around one cluster is
one, titled with the outer scope (``stages.1 preact_stage``, not ``stages.1.blocks``), and a
scope around one box is framed when a sibling of its kind is (a one-block stage like the rest).

Joins are small circles (+ add, ∥ concat, μ mean, × mul, − sub, @ matmul, ⊞ stack, attn
sdpa); a ``param`` or ``buffer`` is a note-shaped box (dashed for a buffer) with its name and
shape, its edge going into the join that takes it. An input of a join that is an
ancestor of another of its inputs (an identity shortcut, a dense connection, a long
``@name`` skip) is dashed and leaves the layout alone (``constraint=false``): the legend
calls those into a ``dense`` join's concats dense connections, the rest identity / skip
(``concat { {}; @enc2 }`` is a skip, though a concat); taps are
dotted side branches to "aux1 (training only)" outputs. Fill colours mark op categories,
their lightness rising through ``CATEGORIES`` (CIE L* 60 to 96), so the legend also reads
in greyscale. The same IR always gives the same ``.dot`` text.

Parallel branches run left to right in spec order: the heads of a fork's branches share a
rank, chained by invisible edges (Graphviz honours these between boxes; branches drawn as
clusters keep the order Graphviz gives them). ``layout="u"`` draws an encoder-decoder network
as a U: each long skip (an ancestor input of a join at the resolution of its latest input,
with an op between that brings a lower resolution back up) pairs the encoder unit it leaves
with the decoder join it enters on one rank, and the decoder's edges are laid out upwards
(``dir=back``). ``"auto"``, the default, does so when such skips nest; ``"column"`` never.

Graphviz's time and memory grow much faster than a drawing's size, so the size is bounded
before dot runs: at most ``MAX_NODES`` nodes and ``MAX_EDGES`` edges (``max_nodes`` /
``max_edges``, ``--max-nodes`` / ``--max-edges``). Over the edge bound, the dense
connections into each unit are bundled into one small "dense ×k" marker beside it; still over
either bound is E091, whose hint suggests ``--depth`` or folding. Small drawings are never
bundled. dot itself runs under ``DOT_TIMEOUT`` seconds and ``DOT_MEMORY`` bytes (RLIMIT_CPU
and RLIMIT_AS set in the child, plus a wall-clock time-out), in its own process group, which is
killed whole on a time-out; running out of either is E092 or E093.
"""
from __future__ import annotations

import errno
import fnmatch
import html
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

import graphviz

from .errors import LimitError
from .files import write_atomic
from .ir import ArchGraph
from .ops import OPS

CATEGORIES = {"conv": "#3799d1", "linear": "#ad8ecf", "pool": "#39b7b5", "join": "#f6978e",
              "norm": "#9dc78d", "reshape": "#dfc38f", "regularize": "#aedbcb", "io": "#e8dea4",
              "activation": "#fce0c9", "param": "#f8e6f1", "other": "#f3f3f3"}
JOIN_SYMBOLS = {"add": "+", "concat": "∥", "mean": "μ", "mul": "×", "sub": "−", "matmul": "@", "stack": "⊞",
                "sdpa": "attn"}
EDGES = {  # kind -> (attributes, legend); when edges merge into one, the earlier kind wins
    "fail": ({"color": "#d7191c", "penwidth": "2"}, None),
    "main": ({}, None),
    "tap": ({"style": "dotted", "color": "#555555"}, "┈┈ tap"),
    "skip": ({"style": "dashed", "color": "#7b3294", "constraint": "false"}, "╌╌ identity / skip"),
    "dense": ({"style": "dashed", "color": "#4393c3", "constraint": "false"}, "╌╌ dense connection"),
    # a marker standing for a unit's dense inputs: constrained, so it sits just above its target
    "bundle": ({"style": "dashed", "color": "#4393c3"}, None),
}
BUDGET = 50            # boxes (join circles aside) the default depth may draw
MAX_NODES = 2_000      # nodes and edges a drawing may have: dot's time and memory grow much faster than
MAX_EDGES = 5_000      # these (a 150-layer dense block's 11,626 edges took it past 3.6 GB and 5 minutes)
MAIN = {"group": "main"}  # dot draws edges inside a group straight: the main column
FONT = "Helvetica,Arial,sans-serif"
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot"}
DOT_TIMEOUT = 60           # seconds of wall-clock and of CPU time dot may take (ARCHDSL_DOT_TIMEOUT)
DOT_MEMORY = 2 * 1024**3   # bytes of address space dot may map (ARCHDSL_DOT_MEMORY)
LAYOUTS = ("auto", "u", "column")  # see render()
INSTALL = "install Graphviz to draw it (apt-get install graphviz, or brew install graphviz)"
_OUT_OF_MEMORY = re.compile(r"out of memory|cannot allocate|failed to map|bad_alloc|error creating thread", re.I)
_CRASHES = {signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGTRAP}


class OptionError(ValueError):
    """A drawing option that cannot be met, such as an ``expand`` that names nothing."""


class Rendering:
    """A drawing: ``.dot`` is its Graphviz source; ``svg()``, ``pipe()`` and ``save()`` run ``dot``.

    ``dot`` runs with ``timeout`` seconds (wall clock and CPU) and ``memory`` bytes of address
    space, in a process group of its own that is killed whole when time runs out; running out of
    either is a :class:`LimitError` (E092, E093) pointing at the network ``graph`` names."""

    def __init__(self, dot: str, *, graph: ArchGraph | None = None, timeout: float | None = None,
                 memory: int | None = None):
        self.dot = dot
        self.timeout = _setting(timeout, "ARCHDSL_DOT_TIMEOUT", DOT_TIMEOUT)
        self.memory = int(_setting(memory, "ARCHDSL_DOT_MEMORY", DOT_MEMORY))
        self._graph = graph
        self._out: dict[str, bytes] = {}

    def pipe(self, fmt: str) -> bytes:
        """The drawing as svg, png (150 dpi) or pdf bytes; cached."""
        if fmt not in self._out:
            exe = shutil.which("dot")
            if exe is None:
                raise FileNotFoundError(f"Graphviz's `dot` program is not installed: {INSTALL}")
            cmd = [exe, f"-T{fmt}"] + (["-Gdpi=150"] if fmt == "png" else [])
            self._out[fmt] = self._run(cmd)
        return self._out[fmt]

    def _run(self, cmd: list) -> bytes:
        """Run dot under the limits; its output, or the diagnostic saying which limit it hit."""
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=self._child_limits(), start_new_session=True)
        except OSError as e:
            if e.errno == errno.ENOMEM:  # exec failed under the address-space limit
                raise self._out_of_memory("it could not even start") from None
            raise
        try:
            out, err = proc.communicate(self.dot.encode(), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.communicate()
            raise self._out_of_time(f"still drawing after {self.timeout:g} s") from None
        finally:
            _kill_group(proc.pid)  # anything dot started and left behind
        text = err.decode(errors="replace").strip()
        if proc.returncode == -signal.SIGXCPU:
            raise self._out_of_time(f"it used {math.ceil(self.timeout)} s of CPU time")
        if _OUT_OF_MEMORY.search(text) or -proc.returncode in _CRASHES:
            said = _OUT_OF_MEMORY.search(text)
            raise self._out_of_memory(f"it printed `{said.group(0)}`" if said else
                                      f"it was killed by {signal.Signals(-proc.returncode).name}")
        if proc.returncode:
            raise RuntimeError(f"dot failed: {text}")
        return out

    def _child_limits(self):
        """What dot's process runs between fork and exec: cap its address space and CPU time. The
        numbers are worked out here, so the child only makes the two system calls."""
        limits = []
        for what, value in ((resource.RLIMIT_AS, self.memory), (resource.RLIMIT_CPU, math.ceil(self.timeout))):
            hard = resource.getrlimit(what)[1]
            cap = (lambda n: n) if hard == resource.RLIM_INFINITY else (lambda n, hard=hard: min(n, hard))
            # CPU: the soft limit sends SIGXCPU (reported as a time-out), the hard one SIGKILL 5 s later
            limits.append((what, (cap(value), hard if what == resource.RLIMIT_AS else cap(value + 5))))

        def apply() -> None:
            for what, pair in limits:
                resource.setrlimit(what, pair)
        return apply

    def _diagnostic(self, code: str, message: str) -> LimitError:
        g = self._graph
        span = g.scopes[0].span if g is not None and 0 in g.scopes else None
        err = LimitError(code, message, span, hint="draw less with `--depth N` (fewer block levels open), or "
                         "write the source with `-o x.dot` and run Graphviz on it yourself")
        err.sources = g.sources if g is not None else {}
        return err

    def _out_of_time(self, why: str) -> LimitError:
        return self._diagnostic("E092", f"Graphviz's dot ran out of time: {why}, the limit "
                                        "(ARCHDSL_DOT_TIMEOUT sets it, in seconds)")

    def _out_of_memory(self, why: str) -> LimitError:
        return self._diagnostic("E093", f"Graphviz's dot ran out of memory under the limit of {_mb(self.memory)} "
                                        f"of address space: {why} (ARCHDSL_DOT_MEMORY sets it, in bytes)")

    def svg(self) -> str:
        return self.pipe("svg").decode()

    def save(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write the drawing in ``format`` (svg png pdf dot; by default the one the path's suffix
        names) through the one output writer, archdsl.files (``-`` is standard output)."""
        fmt = format or FORMATS.get(Path(path).suffix.lower())
        if fmt not in FORMATS.values():
            raise ValueError(f"cannot tell the format of {str(path)!r}: use one of {', '.join(FORMATS)}")
        return write_atomic(path, self.dot if fmt == "dot" else self.pipe(fmt))

    def _repr_svg_(self) -> str | None:
        return self.svg() if shutil.which("dot") else None


def _setting(value, variable: str, default: float) -> float:
    """A keyword, else a positive number in the environment variable, else the default."""
    if value is not None:
        return value
    try:
        number = float(os.environ.get(variable, ""))
    except ValueError:
        return default
    return number if number > 0 and math.isfinite(number) else default


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _mb(n: int) -> str:
    return f"{n / 1024**3:g} GB" if n >= 1024**3 else f"{n / 1024**2:g} MB"


def check_options(max_nodes: int | None = None, max_edges: int | None = None, layout: str = "auto") -> None:
    """OptionError unless the bounds are positive integers and the layout is one of LAYOUTS
    (checked before a spec is)."""
    for name, bound in (("max_nodes", max_nodes), ("max_edges", max_edges)):
        if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool) or bound < 1):
            raise OptionError(f"{name.replace('_', '-')} must be a positive integer, got {bound!r}")
    if layout not in LAYOUTS:
        raise OptionError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


def render(graph: ArchGraph, *, failed: dict | None = None, depth: int | None = None, expand=(),
           unroll: bool = False, rankdir: str = "TB", layout: str = "auto", max_nodes: int | None = None,
           max_edges: int | None = None, dot_timeout: float | None = None,
           dot_memory: int | None = None) -> Rendering:
    """Draw an :class:`ArchGraph` (``archdsl.render`` draws a spec: it checks it first).

    The drawing has at most ``max_nodes`` nodes and ``max_edges`` edges (2,000 and 5,000 by
    default): over that, dense connections are bundled, and if it is still over, LimitError
    E091. ``dot_timeout`` (seconds) and ``dot_memory`` (bytes) bound Graphviz (60 s, 2 GB).
    ``failed`` is the op a shape error stopped at (the second half of ``ArchError.partial``,
    whose first half is then ``graph``): it is drawn in red after the network up to it.
    ``layout`` is ``"column"`` (the flow top to bottom), ``"u"`` (each encoder stage beside
    the decoder stage its long skip feeds, the U of an encoder-decoder network) or ``"auto"``
    (the default: ``u`` when long skips pair stages of equal resolution, else ``column``).
    Raises OptionError for an ``expand`` that names nothing or a ``u`` with nothing to pair.
    """
    check_options(max_nodes=max_nodes, max_edges=max_edges, layout=layout)
    if not isinstance(graph, ArchGraph):
        raise TypeError(f"draw.render takes an ArchGraph, got {type(graph).__name__} (archdsl.render takes a spec)")
    opts = dict(depth=depth, expand=(expand,) if isinstance(expand, str) else tuple(expand), unroll=unroll,
                rankdir=rankdir, layout=layout, max_nodes=max_nodes or MAX_NODES,
                max_edges=max_edges or MAX_EDGES)
    return Rendering(_Drawing(graph, failed, **opts).source(), graph=graph, timeout=dot_timeout, memory=dot_memory)


def display(graph: ArchGraph) -> str | None:
    """A graph in a notebook (``ArchGraph._repr_svg_``): its default drawing as SVG, None
    without Graphviz (the notebook shows the text repr instead)."""
    return render(graph)._repr_svg_()


# ----------------------------------------------------------------------------- text

def _num(n: float) -> str:
    """Three significant digits and K/M/G: 9408 -> 9.41K, 25557032 -> 25.6M."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div * 0.9995:
            return f"{n / div:#.3g}".rstrip(".") + suffix
    return f"{n:g}"


def _value(v) -> str:
    """An argument in a fold's label: 0.9907407 -> 0.991."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _shape(shape) -> str:
    return "×".join(map(str, shape))


def _small(text: str) -> str:
    return f'<font point-size="9" color="#333333">{text}</font>'


def _range_name(first: str, last: str) -> str:
    """layer3.1 .. layer3.5 -> layer3.1–5; b.denselayer1 .. b.denselayer6 -> b.denselayer1–6."""
    a, b = first.rsplit(".", 1)[-1], last.rsplit(".", 1)[-1]
    i = len(os.path.commonprefix([a, b]))
    while i and b[i - 1].isdigit():
        i -= 1
    return f"{first}–{b[i:]}"


# ----------------------------------------------------------------------------- the drawing

class _Drawing:
    """Assigns IR nodes to drawn units (an op ``n<node>``, or a closed scope or fold ``s<scope>``)
    and writes the dot source."""

    def __init__(self, graph: ArchGraph, failure: dict | None, *, depth: int | None, expand: tuple,
                 unroll: bool, rankdir: str, layout: str = "auto", max_nodes: int = MAX_NODES,
                 max_edges: int = MAX_EDGES):
        self.g, self.t, self.failure, self.rankdir, self.unroll = graph, graph.table, failure, rankdir, unroll
        self.layout, self.region, self._lines = layout, {}, {}
        self.max_nodes, self.max_edges, self.markers = max_nodes, max_edges, {}
        self.scopes = graph.scopes
        self.kids, self.level = defaultdict(list), {0: 0}  # level: block instances on the scope's path
        for sid in sorted(self.scopes)[1:]:
            s = self.scopes[sid]
            self.kids[s.parent].append(sid)
            self.level[sid] = self.level[s.parent] + (s.kind == "block")
        self._extents()
        self.forced = self._forced(expand)
        if depth is None:
            depth = max((d for d in range(max(self.level.values()) + 2) if self._layout(d) <= BUDGET), default=0)
        self._layout(depth)

    def _extents(self) -> None:
        """First and last node (a scope's nodes are the ones between), parameters, direct non-joins."""
        self.lo, self.hi, self.params, self.loose, self.sigs = {}, {}, Counter(), defaultdict(list), {}
        for n, d in self.t.items():
            self.lo.setdefault(d["scope"], n)
            self.hi[d["scope"]] = n
            self.params[d["scope"]] += d["params"]
            if OPS[d["op"]].category != "join":
                self.loose[d["scope"]].append(n)
        for sid in sorted(self.scopes, reverse=True):
            p = self.scopes[sid].parent
            if sid in self.lo and p is not None:
                self.lo[p] = min(self.lo.get(p, self.lo[sid]), self.lo[sid])
                self.hi[p] = max(self.hi.get(p, self.hi[sid]), self.hi[sid])
                self.params[p] += self.params[sid]

    def _forced(self, expand: tuple) -> set:
        """The scopes ``expand`` names (by path or block, globs allowed) or the failure lies in, and
        their ancestors."""
        def named(s, p):
            return fnmatch.fnmatchcase(s.name, p) or (s.kind == "block" and fnmatch.fnmatchcase(s.block, p))
        for p in expand:
            if not any(named(s, p) for s in self.scopes.values()):
                top = ", ".join(s.name for s in self.scopes.values() if s.parent == 0)
                raise OptionError(f"--expand {p!r} names no block, instance or group (top level: {top})")
        forced = set()
        for sid, s in self.scopes.items():
            hit = any(named(s, p) for p in expand) or \
                (self.failure is not None and self.failure["name"].startswith(s.name + "."))
            while hit and sid is not None:
                forced.add(sid)
                sid = self.scopes[sid].parent
        return forced

    def _layout(self, depth: int) -> int:
        """Open, close and fold scopes for ``depth``; returns the number of boxes."""
        self.opened, self.closed = {0}, {0: None}  # closed: a scope's outermost closed scope or None
        for sid in sorted(self.scopes)[1:]:
            s = self.scopes[sid]
            if sid in self.forced or (s.parent in self.opened and self.level[sid] < depth):
                self.opened.add(sid)
            up = self.closed[s.parent]
            self.closed[sid] = up if up is not None else (None if sid in self.opened else sid)
        self.runs = self._runs()
        self.unit, self.members = self._units()
        return sum(u[0] == "s" or OPS[self.t[int(u[1:])]["op"]].category != "join" for u in self.members)

    def _signature(self, sid: int) -> tuple:
        """What a copy computes: its ops, each op's output shape and parameter count."""
        if sid not in self.sigs:
            self.sigs[sid] = tuple((self.t[n]["op"], self.t[n]["shape"], self.t[n]["params"])
                                   for n in range(self.lo[sid], self.hi[sid] + 1) if n in self.t)
        return self.sigs[sid]

    def _foldable(self, a: int, b: int) -> bool:
        """Whether copy ``b`` folds with ``a``: one block, the same ops, shapes and parameter counts,
        and the same arguments but those that change none of these (stochastic depth's ``survival``).
        DenseNet's layers fold, their inputs widening; GhostNet's ``mid=200`` beside ``mid=184`` does not."""
        x, y = self.scopes[a], self.scopes[b]
        return x.repeat[0] == y.repeat[0] and x.block == y.block and (
            self._signature(a) == self._signature(b) or x.args == y.args and
            [op for op, *_ in self._signature(a)] == [op for op, *_ in self._signature(b)] and
            self._signature(a)[-1][1] == self._signature(b)[-1][1])

    def _runs(self) -> dict:
        """Closed scope -> the list of copies folded with it (``[itself]`` when not folded)."""
        runs = {}
        for parent in sorted(self.opened):
            prev = None  # the run the next copy may join
            for sid in self.kids[parent]:
                s = self.scopes[sid]
                can = s.repeat and s.kind == "block" and sid in self.lo and sid not in self.opened and not self.unroll
                if can and prev is not None and self._foldable(prev[0], sid) and not any(
                        self.hi[prev[-1]] < n < self.lo[sid] for n in self.loose[parent]):
                    prev.append(sid)
                    runs[sid] = prev
                else:
                    runs[sid] = [sid]
                    prev = runs[sid] if can else None
        return runs

    def _units(self):
        spans = defaultdict(list)  # open scope -> (first node, last node, unit) of each fold in it
        for sid, run in self.runs.items():
            if len(run) > 1 and sid == run[0]:
                spans[self.scopes[sid].parent].append((self.lo[sid], self.hi[run[-1]], f"s{sid}"))
        unit, members = {}, defaultdict(list)
        for n, d in self.t.items():
            c = self.closed[d["scope"]]
            u = f"s{self.runs[c][0]}" if c is not None else \
                next((f for a, b, f in spans[d["scope"]] if a < n < b), f"n{n}")
            unit[n] = u
            members[u].append(n)
        return unit, members

    # --- edges
    def _ancestry(self) -> dict:
        """Each node's ancestors as a bit set (an int), in one pass over the creation order: linear
        in the edges, where a search from every join was cubic in the layers of a dense block."""
        anc = {}
        for n in self.t:
            bits = 0
            for u in self.g.args(n):
                bits |= anc[u] | (1 << u)
            anc[n] = bits
        return anc

    def _skips(self, v: int, anc: dict) -> set:
        """The inputs of join ``v`` that are ancestors of its latest input."""
        ins = self.g.args(v)
        latest = anc[max(ins)]
        return {u for u in ins if latest >> u & 1}

    def _edges(self) -> dict:
        rank, edges = list(EDGES), {}
        anc = self.anc = self._ancestry()

        def add(a, b, kind):
            if a != b and ((a, b) not in edges or rank.index(kind) < rank.index(edges[a, b])):
                edges[a, b] = kind
        for v, d in self.t.items():
            ins = self.g.args(v)
            skips = self._skips(v, anc) if OPS[d["op"]].category == "join" and len(ins) > 1 else ()
            for u in ins:
                kind = ("dense" if d["op"] == "concat" and self._dense(v) else "skip") if u in skips else \
                    "tap" if d["tap"] and not self.t[u]["tap"] else "main"
                add(self.unit[u], self.unit[v], kind)
        for i, o in enumerate(self.g.outputs):
            add(self.unit[o.node], f"o{i}", "tap" if o.train_only else "main")
        for u in self.failure["inputs"] if self.failure else ():
            add(self.unit[u], "fail", "fail")
        return edges

    def _dense(self, v: int) -> bool:
        """Whether concat ``v`` is one a ``dense`` join made (its span is the layer's or the
        ``dense`` statement's, not a ``concat`` join's): its ancestor inputs are dense connections,
        where those of a written ``concat { {}; @enc2 }`` are skips."""
        span = self.t[v]["span"]
        text = self.g.sources.get(span.file) if span is not None else None
        if text is None:
            return True
        if span.file not in self._lines:
            self._lines[span.file] = text.splitlines()
        lines = self._lines[span.file]
        line = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
        return re.match(r"concat\b", line[span.col - 1:]) is None

    def _bounded(self, edges: dict) -> dict:
        """The edges to draw, within ``max_nodes`` and ``max_edges``: over the edge bound, each unit's
        dense inputs (two or more) are bundled into one marker; still over either bound, E091."""
        nodes = len(self.members) + len(self.g.outputs) + (self.failure is not None)
        if len(edges) > self.max_edges:
            edges = self._bundle(edges)
            nodes += len(self.markers)
        bundled = bool(self.markers)
        if nodes > self.max_nodes or len(edges) > self.max_edges:
            span = self.scopes[0].span if 0 in self.scopes else None
            err = LimitError(
                "E091", f"the drawing would have {nodes:,} nodes and {len(edges):,} edges"
                        f"{' with its dense connections bundled' if bundled else ''}, over the bounds of "
                        f"{self.max_nodes:,} nodes and {self.max_edges:,} edges that Graphviz can lay out in "
                        "reasonable time and memory", span,
                hint="draw fewer boxes with `--depth N` (0 closes every block), put repeated layers in a block "
                     "so that they fold, or raise the bounds with `--max-nodes N` / `--max-edges N`")
            err.sources = self.g.sources
            raise err
        return edges

    def _bundle(self, edges: dict) -> dict:
        """Each unit with two or more dense inputs gets one marker ``d<unit>`` that stands for them
        all, with one edge into the unit (``self.markers``: unit -> the units it stands for)."""
        into = defaultdict(list)
        for (a, b), kind in edges.items():
            if kind == "dense":
                into[b].append(a)
        self.markers = {b: sources for b, sources in into.items() if len(sources) > 1}
        out = {}
        for (a, b), kind in edges.items():
            if kind != "dense" or b not in self.markers:
                out[a, b] = kind
            elif a == self.markers[b][0]:
                out[f"d{b}", b] = "bundle"
        return out

    def _unit_name(self, u: str) -> str:
        return self.t[int(u[1:])]["name"] if u[0] == "n" else self.scopes[int(u[1:])].name

    def _marker(self, b: str) -> dict:
        sources, color = self.markers[b], EDGES["dense"][0]["color"]
        names = [self._unit_name(a) for a in sources if a[0] in "ns"]
        return {"label": f"dense ×{len(sources)}", "shape": "box", "style": "dashed,rounded", "color": color,
                "fontcolor": color, "fontsize": "8", "height": "0.2", "margin": "0.04,0.01",
                "tooltip": f"{len(sources)} dense inputs of {self._unit_name(b)}: {names[0]} … {names[-1]}"}

    # --- nodes
    def _fill(self, category: str) -> str:
        category = category if category in CATEGORIES else "other"
        self.used.add(category)
        return CATEGORIES[category]

    def _rel(self, name: str, container: int) -> str:
        """``name`` inside the cluster of ``container``, whose title shows the full path."""
        prefix = self.scopes[container].name + "."
        return name[len(prefix):] if container and name.startswith(prefix) else name

    def _op(self, n: int, container: int) -> dict:
        d, op = self.t[n], OPS[self.t[n]["op"]]
        attrs = {"fillcolor": self._fill(op.category), "tooltip": d["name"], **({} if d["tap"] else MAIN)}
        if op.category == "join":
            a = d["attrs"]
            notes = [f"{k} {', '.join(f'{x:g}' for x in a[k])}" for k in ("scale", "survival")
                     if a.get(k) and any(x != 1 for x in a[k])]
            notes += [f"drop {a['drop_path']:g}"] if a.get("drop_path") else []
            notes += [_shape(d["shape"])] if op.name == "concat" else []
            symbol = JOIN_SYMBOLS.get(op.name, op.name)
            attrs.update(shape="circle", label=symbol, width="0.3", fixedsize="true",
                         fontsize="13" if len(symbol) == 1 else "7")
            return {**attrs, "xlabel": f"<{_small(html.escape(' · '.join(notes)))}>"} if notes else attrs
        name = self._rel(d["name"], container)
        if op.name == "param":   # a declared tensor: a note beside the join it enters
            kind = d["attrs"]["kind"]
            info = _shape(d["shape"]) + (f" · {_num(d['params'])} params" if d["params"] else " · buffer")
            return {"fillcolor": attrs["fillcolor"], "tooltip": d["name"], "shape": "note",
                    "style": "filled,dashed" if kind == "buffer" else "filled",
                    "label": f"<<b>{html.escape(name)}</b> {kind}<br/>{_small(info)}>"}
        parts = [] if name.isdigit() or "#" in name else [f"<b>{html.escape(name)}</b>"]
        head = " ".join(parts + ([] if op.name == "input" else [html.escape(op.label(d["attrs"]))]))
        info = _shape(d["shape"]) + (f" · {_num(d['params'])} params" if d["params"] else "")
        style = "filled,rounded,dashed" if d["tap"] else "filled,rounded"
        return {**attrs, "label": f"<{head}<br/>{_small(info)}>", "style": style}

    def _box(self, unit: str, container: int) -> dict:
        nodes, run = self.members[unit], self.runs[int(unit[1:])]
        first, k = self.scopes[run[0]], len(run)
        each = {sum(self.t[n]["params"] for n in nodes if self.closed[self.t[n]["scope"]] == s) for s in run}
        total = sum(self.t[n]["params"] for n in nodes)
        params = f"{k} × {_num(each.pop())} = {_num(total)}" if k > 1 and len(each) == 1 else _num(total)
        ops = Counter(self.t[n]["op"] for n in nodes if self.closed[self.t[n]["scope"]] == run[0])
        summary = ", ".join(f"{c} {op}" if c > 1 else op for op, c in list(ops.items())[:5]) + ", …" * (len(ops) > 5)
        varied = [(a, [self.scopes[s].args.get(a) for s in run]) for a in first.args]
        summary += "".join(f" · {a} {_value(v[0])}…{_value(v[-1])}" for a, v in varied if len(set(map(repr, v))) > 1)
        weight = Counter()
        for n in nodes:
            weight[OPS[self.t[n]["op"]].category] += self.t[n]["params"] + 1e-3
        full = first.name if k == 1 else _range_name(first.name, self.scopes[run[-1]].name)
        name = self._rel(full, container)
        tap = all(self.t[n]["tap"] for n in nodes)
        label = (f"<b>{html.escape(name)}</b> {html.escape(first.block or '')}{f' ×{k}' * (k > 1)}<br/>"
                 f"{_small(html.escape(summary))}<br/>{_shape(self.t[nodes[-1]]['shape'])} · {params} params")
        return {"label": f"<{label}>", "fillcolor": self._fill(weight.most_common(1)[0][0]), "tooltip": full,
                "style": "filled,rounded" + ",dashed" * tap, **({} if tap else MAIN),
                **({"peripheries": "2"} if k > 1 else {})}

    def _title(self, edges: dict) -> str:
        g = self.g
        ins = ", ".join(f"{html.escape(k)} {_shape(self.t[n]['shape'])}" for k, n in g.inputs.items())
        cells = "".join(f'<td bgcolor="{v}">{c}</td>' for c, v in CATEGORIES.items() if c in self.used)
        cells += "".join(f'<td><font color="{EDGES[k][0]["color"]}">{EDGES[k][1]}</font></td>'
                         for k in sorted({"dense" if k == "bundle" else k for k in edges.values()},
                                         key=list(EDGES).index) if EDGES[k][1])
        return (f'<<table border="0" cellspacing="2" cellpadding="2"><tr><td align="left">'
                f'<font point-size="16"><b>{html.escape(g.network)}</b></font>   {_num(g.total_params)} '
                f'params ({g.total_params:,}) · input {ins}</td></tr><tr><td align="left">'
                f'<table border="0" cellspacing="3" cellpadding="2"><tr>{cells}</tr></table></td></tr></table>>')

    # --- the source
    def source(self) -> str:
        dot = graphviz.Digraph(self.g.network, graph_attr={
            "rankdir": self.rankdir, "fontname": FONT, "labelloc": "t", "labeljust": "l", "nodesep": "0.2",
            "ranksep": "0.25", "newrank": "true"},
            node_attr={"shape": "box", "style": "filled,rounded", "fontname": FONT, "fontsize": "10",
                       "margin": "0.08,0.03", "height": "0.3", "penwidth": "0.7", "color": "#444444"},
            edge_attr={"arrowsize": "0.6", "color": "#333333", "penwidth": "0.9"})
        where = defaultdict(list)  # open scope -> [(first node, unit or child scope)] drawn in it
        for u, nodes in self.members.items():
            s = self.scopes[self.runs[int(u[1:])][0]].parent if u[0] == "s" else self.t[nodes[0]]["scope"]
            where[s].append((nodes[0], u))
        end = max(self.t, default=0) + 1
        where[0] += [(end + i, f"o{i}") for i in range(len(self.g.outputs))]
        if self.failure is not None:
            inner = max((s for s in self.opened if self.failure["name"].startswith(self.scopes[s].name + ".")),
                        default=0)
            where[inner].append((end + len(self.g.outputs), "fail"))
        framed = self._framed(where)
        for sid in sorted(self.scopes, reverse=True):
            if sid in where and sid:
                inner, up = where[sid], where[self.scopes[sid].parent]
                if len(inner) > 1 or framed[sid] and not isinstance(inner[0][1], int):
                    up.append((min(inner)[0], sid))
                elif framed[sid]:  # a cluster around one cluster is one, titled with the outer scope
                    where[sid] = where.pop(inner[0][1])
                    up.append((inner[0][0], sid))
                else:  # a cluster around one thing is left out
                    up.append(inner[0])
        edges = self._bounded(self._edges())  # before anything is drawn: E091 costs no work
        self.used = {"io"}
        pairs = self._u_pairs() if self.layout != "column" else []
        if self.layout == "u" and not pairs and self.failure is None:
            raise OptionError("layout u sets each encoder stage beside the decoder stage it feeds, but this network "
                              "has no long skip (a `@name` tensor joined back at its resolution after a lower one): "
                              "use layout auto or column")
        if pairs:
            first, last = self._pos(pairs[-1][0]), self._pos(pairs[-1][1])
            self.region = {u: "enc" if self._pos(u) <= first else "dec" if self._pos(u) >= last else "mid"
                           for u in [*self.members, *(f"o{i}" for i in range(len(self.g.outputs))), "fail"]}
        self._emit(dot, 0, where)
        for (a, b), kind in edges.items():
            attrs = EDGES[kind][0]
            if self.region.get(b) == "dec" and attrs.get("constraint") != "false" and a[0] != "d":
                if self.region.get(a) == "enc":
                    attrs = {**attrs, "constraint": "false"}
                else:  # the decoder climbs back: its edges are laid out upwards, drawn downstream
                    dot.edge(b, a, **attrs, dir="back")
                    continue
            dot.edge(a, b, **attrs)
        self._ranks(dot, edges, pairs)
        dot.attr(label=self._title(edges))
        return dot.source

    # --- layout
    def _pos(self, u: str) -> float:
        """Where a drawn thing comes in the flow: its first node (an output just after its tensor)."""
        if u[0] in "ns":
            return self.members[u][0]
        if u[0] == "o":
            return self.members[self.unit[self.g.outputs[int(u[1:])].node]][0] + 0.5
        return math.inf if u == "fail" else self._pos(u[1:]) - 0.5

    def _long_skips(self) -> list:
        """(source, join) of each long skip: an ancestor input of a join (not a dense connection) at
        the resolution of the join's latest input, with an op on the way between that takes a lower
        resolution up (the decoder's upsampling of what the encoder brought down): U-Net's
        ``concat { {}; @enc2 }``, not a residual shortcut around a squeeze-excite's 1×1 gate."""
        anc, out, t = self.anc, [], self.t

        def up(w: int, shape: tuple) -> bool:  # a non-join op w that raises a resolution below shape's
            return OPS[t[w]["op"]].category != "join" and any(
                len(t[x]["shape"]) == len(t[w]["shape"]) == len(shape) and
                math.prod(t[x]["shape"][1:]) < min(math.prod(shape[1:]), math.prod(t[w]["shape"][1:]))
                for x in self.g.args(w))
        for v, d in self.t.items():
            ins = self.g.args(v)
            if OPS[d["op"]].category != "join" or len(ins) < 2 or d["op"] == "concat" and self._dense(v):
                continue
            last = max(ins)
            for u in sorted(self._skips(v, anc)):
                shape = self.t[u]["shape"]
                if len(shape) < 2 or shape[1:] != self.t[last]["shape"][1:]:
                    continue
                if any(anc[w] >> u & 1 and (w == last or anc[last] >> w & 1) and up(w, shape)
                       for w in range(u + 1, last + 1) if w in t):
                    out.append((u, v))
        return out

    def _u_pairs(self) -> list:
        """The (encoder anchor, decoder anchor) units the U pairs, outermost first: long skips
        between drawn units, each nested in the one before."""
        skips = {(self.unit[u], self.unit[v]) for u, v in self._long_skips() if self.unit[u] != self.unit[v]}
        chain = []
        for a, b in sorted(skips, key=lambda p: (self._pos(p[0]), -self._pos(p[1]))):
            if not chain or self._pos(chain[-1][0]) < self._pos(a) and self._pos(b) < self._pos(chain[-1][1]):
                chain.append((a, b))
        return chain

    def _ranks(self, dot, edges: dict, pairs: list) -> None:
        """Same-rank rows: the heads of parallel branches in spec order, left to right (invisible edges
        between them; Graphviz would otherwise order them as it likes), and each U pair side by side."""
        into, heads = Counter(), defaultdict(list)
        for (a, b), kind in edges.items():
            if EDGES[kind][0].get("constraint") != "false":
                into[b] += 1
        for (a, b), kind in edges.items():
            if kind == "main" and b[0] in "ns" and into[b] == 1 and self.region.get(b) != "dec":
                heads[a].append(b)
        for a, row in heads.items():
            if len(row) > 1:
                sub = graphviz.Digraph()
                sub.attr(rank="same")
                for x, y in zip(row, row[1:]):
                    sub.edge(x, y, style="invis")
                dot.subgraph(sub)
        for a, b in pairs:
            sub = graphviz.Digraph()
            sub.attr(rank="same")
            sub.node(a)
            sub.node(b)
            dot.subgraph(sub)

    def _framed(self, where: dict) -> dict:
        """Open scope -> whether it is drawn as a cluster: around two things or more, around one
        cluster (which it titles: ``stages.1 preact_stage``, not ``stages.1.blocks``), or around
        one box when a sibling of its kind is a cluster (every stage of a network framed alike,
        the single-block ones too)."""
        count, only = Counter(), {}
        for sid in sorted(self.scopes, reverse=True):
            if sid in where or count[sid]:
                count[sid] += len(where.get(sid, ()))
                parent = self.scopes[sid].parent
                if parent is not None:
                    count[parent] += 1
                    only[parent] = sid
        clustered = {}
        for sid in sorted(count, reverse=True):
            clustered[sid] = count[sid] > 1 or count[sid] == 1 and not where.get(sid) and clustered[only[sid]]
        kind = defaultdict(set)
        for sid, yes in clustered.items():
            if yes and sid:
                s = self.scopes[sid]
                kind[s.parent].add((s.kind, s.block))
        return {sid: yes or sid != 0 and (self.scopes[sid].kind, self.scopes[sid].block) in
                kind[self.scopes[sid].parent] for sid, yes in clustered.items()}

    def _emit(self, dot, sid: int, where: dict, nesting: int = 0) -> None:
        for _, item in sorted(where[sid], key=lambda t: t[0]):
            if isinstance(item, int):
                s = self.scopes[item]
                sub = graphviz.Digraph(f"cluster_{item}")
                kind = f"{html.escape(s.block)} · " if s.kind == "block" else "· "
                sub.attr(label=f"<<b>{html.escape(s.name)}</b> {kind}{_num(self.params[item])} params>",
                         style="rounded,filled", fillcolor="#ffffff" if nesting % 2 else "#f4f4f4",
                         color="#9a9a9a", fontsize="10", labeljust="l")
                self._emit(sub, item, where, nesting + 1)
                dot.subgraph(sub)
            elif item[0] in "ns":
                attrs = self._op(int(item[1:]), sid) if item[0] == "n" else self._box(item, sid)
                if "group" in attrs and self.region.get(item) == "dec":
                    attrs["group"] = "decoder"  # a second straight column, the U's right arm
                dot.node(item, **attrs)
                if item in self.markers:
                    dot.node(f"d{item}", **self._marker(item))
            elif item == "fail":
                f = self.failure
                why = "<br/>".join(html.escape(line) for line in textwrap.wrap(f"✗ {f['message']}", 48))
                head = f"<b>{html.escape(f['name'])}</b> {html.escape(f['op'])}"
                dot.node("fail", label=f"<{head}<br/>{_small(why)}>", fillcolor="#fbb4b4", color="#d7191c",
                         penwidth="2")
            else:
                o = self.g.outputs[int(item[1:])]
                name = html.escape(f"{o.name} (training only)" if o.train_only else o.name)
                dot.node(item, label=f"<<b>{name}</b><br/>{_small(_shape(self.t[o.node]['shape']))}>",
                         fillcolor=CATEGORIES["io"], style="filled,rounded" + ",dotted" * o.train_only)
