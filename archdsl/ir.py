"""The IR: an elaborated network as a ``networkx.MultiDiGraph`` (a DiGraph subclass).

``ArchGraph.g`` is that graph. It is built on first use from the node table the
elaborator fills, because importing networkx costs a quarter of a second and
``archdsl check`` must answer in under half of one without it.
Nodes are integers in creation order, which is a topological order. Each node's
data: ``op`` (a name in ``ops.OPS``), ``attrs`` (resolved attributes), ``name``
(hierarchical, dotted; the module path in the compiled model), ``shape`` (output
shape, batch excluded), ``params`` / ``buffers`` (element counts), ``span`` (source),
``stack`` (block call frames) and ``scope`` (innermost :class:`Scope` id). A ``param`` or
``buffer`` declaration is a node of op ``param`` (no inputs) marked ``batched=False``: its
``shape`` is the registered tensor's, without a batch dimension (:func:`is_tensor_decl`).
Edges ``u -> v`` have ``key`` = the input position of ``u`` in ``v``.

The IR sits below every stage (the front end builds it; compile, draw and analyze read
it), so it imports none of them. The two things it does that need a stage, showing itself
in a notebook (the drawing stage) and being elaborated again from its loading record (the
front end), go through :data:`HOOKS`, which the composing layer (``archdsl/__init__.py``,
run before any stage) fills in.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from .errors import LimitError, Span
from .ops import OPS

# What the IR borrows from the stages above it, installed by ``archdsl/__init__.py``:
# "display": graph -> SVG text, the notebook drawing (archdsl.draw.display);
# "replay": (record, limits) -> graph, the front end's elaboration of a loading record.
HOOKS: dict = {"display": None, "replay": None}


@dataclass
class Scope:
    """A block instance, labelled group, repetition or tap: the renderer folds these."""

    id: int
    name: str               # dotted path ("" for the network itself)
    kind: str               # network | block | group | repeat | tap
    block: str | None       # the block's name for kind == "block"
    parent: int | None
    span: Span | None
    repeat: tuple | None = None   # (group id, index, count) for copies of a repetition or loop
    args: dict = field(default_factory=dict)


@dataclass
class OutputSpec:
    name: str
    node: int
    train_only: bool = False


@dataclass
class InitRule:
    """``init conv = kaiming_normal(mode="fan_out")`` or ``init "*.bn3" = zeros``."""

    target: str
    is_pattern: bool
    scheme: str
    kwargs: dict
    span: Span | None = None


@dataclass
class ArchGraph:
    network: str
    table: dict = field(default_factory=dict)       # node -> data, in creation order
    preds: dict = field(default_factory=dict)       # node -> [input nodes in input order]
    inputs: dict = field(default_factory=dict)      # input name -> node
    outputs: list = field(default_factory=list)     # [OutputSpec]
    output_dict: bool = False                       # `output {a, b}`: the model returns {"a": .., "b": ..}
    scopes: dict = field(default_factory=dict)      # id -> Scope
    init: list = field(default_factory=list)        # [InitRule]
    meta: dict = field(default_factory=dict)        # `meta` statements (paper, year, top1, ...)
    params: dict = field(default_factory=dict)      # the network's resolved parameters
    sources: dict = field(default_factory=dict)     # file -> text, for diagnostics
    meta_spans: dict = field(default_factory=dict)  # meta name -> Span of the statement that set it
    space: dict = field(default_factory=dict)       # design-space dimension -> Domain (`choice(...)` defaults)
    design: dict = field(default_factory=dict)      # the value each dimension took
    design_params: dict = field(default_factory=dict)  # the network's parameters, chosen blocks by name
    total_params: int = 0
    total_buffers: int = 0

    # --- building (the elaborator's)
    def add(self, n: int, inputs: list[int], data: dict) -> None:
        self.table[n] = data
        self.preds[n] = list(inputs)
        self._nx = None

    def remove(self, n: int) -> None:
        del self.table[n], self.preds[n]
        self._nx = None

    # --- queries
    @property
    def g(self):
        """The IR as a ``networkx.MultiDiGraph``; edge keys are input positions."""
        if getattr(self, "_nx", None) is None:
            import networkx as nx
            g = nx.MultiDiGraph(network=self.network)
            g.add_nodes_from(self.table.items())
            g.add_edges_from((u, v, k) for v, us in self.preds.items() for k, u in enumerate(us))
            self._nx = g
        return self._nx

    def node(self, n: int) -> dict:
        return self.table[n]

    def args(self, n: int) -> list[int]:
        """The inputs of node ``n`` in input order."""
        return self.preds[n]

    def users(self, n: int) -> list[int]:
        """The nodes that take ``n`` as an input."""
        return [v for v, us in self.preds.items() if n in us]

    def nodes(self) -> list[int]:
        """Node ids in topological (creation) order."""
        return list(self.table)

    def by_name(self, name: str) -> int:
        for n, d in self.table.items():
            if d["name"] == name:
                return n
        raise KeyError(name)

    def scope_chain(self, sid: int) -> list[Scope]:
        """Scopes from the network down to ``sid``."""
        chain = []
        while sid is not None:
            chain.append(self.scopes[sid])
            sid = self.scopes[sid].parent
        return chain[::-1]

    def __len__(self) -> int:
        return len(self.table)

    def meta_span(self, name: str) -> Span | None:
        """Where ``meta name`` is stated (the statement whose value ``meta[name]`` holds), for
        diagnostics about meta values that a command reads; None when it is not stated."""
        return self.meta_spans.get(name)

    @classmethod
    def from_record(cls, record: dict, limits=None) -> ArchGraph:
        """The IR a loading record (``graph.record``) elaborates to, read from the record's texts
        alone (the front end's ``check_files``): what unpickling a compiled model rebuilds."""
        replay = HOOKS["replay"]
        if replay is None:
            raise RuntimeError("no front end is installed to elaborate a loading record (import archdsl)")
        return replay(record, limits=limits)

    def _repr_svg_(self) -> str | None:
        """A notebook shows a graph as its drawing (None without Graphviz: the text repr then)."""
        display = HOOKS["display"]
        return display(self) if display is not None else None

    # --- invariants
    def lint(self) -> None:
        """Check the IR's invariants; raises AssertionError naming the broken one."""
        names = set()
        for n, d in self.g.nodes(data=True):
            for key in ("op", "attrs", "name", "shape", "params", "buffers", "span", "stack", "scope"):
                assert key in d, f"node {n} lacks {key}"
            op = OPS.get(d["op"])
            assert op is not None, f"node {n} has unknown op {d['op']}"
            assert d["name"] not in names, f"duplicate name {d['name']}"
            names.add(d["name"])
            keys = sorted(k for _, _, k in self.g.in_edges(n, keys=True))
            assert keys == list(range(len(keys))), f"node {n} ({d['name']}) input keys {keys}"
            if op.arity is not None:
                assert len(keys) == op.arity, f"node {n} ({d['name']}) has {len(keys)} inputs, {op.name} takes {op.arity}"
            else:
                assert len(keys) >= 1, f"join {d['name']} has no inputs"
            for u in self.args(n):
                assert u < n, f"edge {u}->{n} breaks creation order"
            assert all(isinstance(s, int) and s > 0 for s in d["shape"]), f"{d['name']} shape {d['shape']}"
            assert d["scope"] in self.scopes, f"{d['name']} scope {d['scope']}"
            if d["op"] == "input":
                assert self.inputs.get(d["name"]) == n
            assert (d["op"] == "param") == is_tensor_decl(d), f"{d['name']} batched={d.get('batched')}"
        for o in self.outputs:
            assert o.node in self.g, f"output {o.name} is not a node"
        import networkx as nx
        assert nx.is_directed_acyclic_graph(self.g)
        assert list(nx.topological_sort(self.g)) and all(self.args(n) == [u for u, _, _ in sorted(
            self.g.in_edges(n, keys=True), key=lambda e: e[2])] for n in self.table)
        assert sum(d["params"] for _, d in self.g.nodes(data=True)) == self.total_params
        assert sum(d["buffers"] for _, d in self.g.nodes(data=True)) == self.total_buffers
        for s in self.scopes.values():
            assert s.parent is None or s.parent in self.scopes


def is_tensor_decl(d: dict) -> bool:
    """Whether a node (its data) is a ``param``/``buffer`` declaration, not an activation."""
    return d.get("batched", True) is False


def match_init(rules: list, op: str, name: str):
    """The last init rule that applies to a node (by op kind or name pattern), or None.

    A rule applies when it names the node's op kind (``init conv = ...``) or when its quoted
    pattern matches the node's whole name with ``fnmatch.fnmatchcase`` (``init "*.bn3" = ...``);
    of the rules that apply, the one written last wins. To look up many nodes, compile the
    rules once with :class:`InitRules`."""
    return InitRules(rules).match(op, name)


_WILDCARDS = re.compile(r"[*?\[]")


class InitRules:
    """Init rules compiled once, so looking up a node does not walk every rule: ``match(op, name)``
    answers exactly what ``match_init(rules, op, name)`` defines.

    Only the last rule per op kind and the last rule per distinct pattern can ever win, so the
    rest are dropped here. A pattern without wildcards (``*``, ``?``, ``[``) matches one name only
    and is a dictionary entry. The remaining patterns are tried from the latest backwards, stopping
    at the first match or as soon as no earlier rule could beat the kind or exact-name hit; each try
    costs one of ``budget`` steps (100,000 distinct patterns that miss 19,000 layers must end in a
    diagnostic, not in hours of matching)."""

    def __init__(self, rules: list, budget: int | None = None):
        self.rules = list(rules)
        self.kind, self.exact, latest = {}, {}, {}
        for i, r in enumerate(self.rules):
            if not r.is_pattern:
                self.kind[r.target] = i
            elif _WILDCARDS.search(r.target):
                latest[r.target] = i
            else:
                self.exact[r.target] = i
        self.patterns = sorted(((i, t) for t, i in latest.items()), reverse=True)   # latest first
        self._compiled: dict[str, object] = {}
        self.budget = budget
        self.tries = 0

    def match(self, op: str, name: str):
        """The rule that initialises a node with this op kind and name, or None."""
        best = max(self.kind.get(op, -1), self.exact.get(name, -1))
        for i, target in self.patterns:
            if i < best:
                break
            self.tries += 1
            if self.budget is not None and self.tries > self.budget:
                raise LimitError("E087", f"matching init patterns to layers needs over {self.budget:,} steps",
                                 self.rules[i].span, hint="use fewer distinct patterns, or raise the limit "
                                 "with `--limit steps=N`")
            if self._matcher(target)(name):
                best = i
                break
        return self.rules[best] if best >= 0 else None

    def _matcher(self, pattern: str):
        """``fnmatch.fnmatchcase(name, pattern)`` as a compiled regex (what fnmatchcase itself does)."""
        m = self._compiled.get(pattern)
        if m is None:
            m = self._compiled[pattern] = re.compile(fnmatch.translate(pattern)).match
        return m
