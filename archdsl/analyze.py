"""Per-layer summaries (parameters, MACs, memory) from the IR, the complexity chart and
side-by-side comparisons; conventions in docs/analysis.md.

Nothing here builds the model or imports torch; matplotlib is imported by the chart only.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields

from .errors import ArchError, Span
from .files import write_atomic
from .ir import ArchGraph, is_tensor_decl
from .ops import OPS
from .report import fmt_count, fmt_shape, plain, printable
from .values import BlockRef, OpRef, Tensor, describe, show, type_name

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
INDEX_BYTES = 8                 # int64 argmax indices that max pooling keeps for backward
COLUMNS = ("name", "op", "output", "params", "macs", "activation_bytes", "train_only")


@dataclass
class Row:
    """One op, or one scope's ops added up (``ops`` > 1); ``activation_bytes`` is for the batch."""

    name: str
    op: str
    output: tuple
    params: int
    macs: int
    activation_bytes: int
    train_only: bool = False    # computed in training only (taps): left out of the totals
    ops: int = 1


@dataclass
class Summary:
    network: str
    batch: int
    dtype: str
    depth: int | None
    inputs: dict                # name -> shape
    outputs: dict               # name -> shape
    rows: list
    totals: dict                # flat ints; see docs/analysis.md
    categories: dict = field(default_factory=dict)   # op category -> count
    meta: dict = field(default_factory=dict)         # the spec's `meta` statements, values as evaluated
    graph: ArchGraph | None = field(default=None, repr=False, compare=False)  # for meta spans and sources

    @property
    def top1(self) -> float | None:
        """``meta top1`` (ImageNet top-1, percent), checked to be one; None when not declared."""
        return self.meta_number("top1", "percent", 0, 100)

    def meta_number(self, name: str, unit: str, low: float, high: float) -> float | None:
        """A meta value a command computes with: a number in [low, high] or absent (None); anything
        else is E063 at its `meta` line, where it is read (elaboration lets a meta be any value)."""
        v = self.meta.get(name)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.meta_error(name, "E063", f"meta {name} must be a number ({unit}), got {describe(v)}",
                                  hint=f"write it as a number literal: `meta {name} = 76.13`")
        if not low <= v <= high:
            raise self.meta_error(name, "E063", f"meta {name} must be between {low} and {high} ({unit}), "
                                                f"got {show(v)}")
        return v

    def meta_error(self, name: str, code: str, message: str, hint: str | None = None) -> ArchError:
        """A diagnostic about ``meta name``, pointing at its statement, with the source to show."""
        err = ArchError(code, message, self.graph.meta_span(name) if self.graph else None, hint=hint)
        err.sources = dict(self.graph.sources) if self.graph else {}
        return err

    def to_dict(self) -> dict:
        """Plain data for JSON: meta values converted by :func:`meta_json` (they can be any value
        of the language: ranges, tuple-keyed dicts, blocks, tensors)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("graph", "rows", "meta")}
        out = {k: dict(v) if isinstance(v, dict) else v for k, v in out.items()}
        out["rows"] = [asdict(r) for r in self.rows]
        out["meta"] = meta_json(self.meta)    # one budget for all the values
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in self.rows:
            w.writerow([r.name, r.op, fmt_shape(r.output), r.params, r.macs, r.activation_bytes, int(r.train_only)])
        return out.getvalue()

    def cells(self) -> list[tuple[str, ...]]:
        """The rows for people (markdown, HTML): ``HEADERS``' columns, numbers formatted as the
        terminal table formats them (parameters exact, MACs in K/M/G, activations in bytes)."""
        out = []
        for r in self.rows:
            op = r.op if r.ops == 1 else f"{r.op} ({r.ops} ops)"
            out.append((printable(r.name), printable(op), fmt_shape(r.output), f"{r.params:,}", fmt_count(r.macs),
                        fmt_bytes(r.activation_bytes), "yes" if r.train_only else ""))
        return out

    def to_markdown(self) -> str:
        """A GitHub-flavoured markdown table with the totals below it (the csv and json formats
        carry the exact numbers under the machine names of ``COLUMNS``)."""
        head = "| " + " | ".join(HEADERS) + " |"
        lines = [f"**{_md(self.network)}** (batch {self.batch}, {self.dtype})", "", head,
                 "|" + "|".join("---:" if right else "---" for right in RIGHT) + "|"]
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in self.cells()]
        return "\n".join(lines) + "\n\n" + "\n".join(f"- **{k}**: {_md(v)}" for k, v in self.notes()) + "\n"

    def _repr_html_(self) -> str:
        """A notebook shows a summary as an HTML table, the totals below it."""
        from html import escape
        align = lambda right: ' style="text-align:right"' if right else ' style="text-align:left"'  # noqa: E731
        head = "".join(f"<th{align(right)}>{escape(h)}</th>" for h, right in zip(HEADERS, RIGHT))
        body = []
        for row, r in zip(self.cells(), self.rows):
            style = ' style="opacity:0.6" title="computed in training only"' if r.train_only else ""
            body.append(f"<tr{style}>" + "".join(f"<td{align(right)}>{escape(c)}</td>" for c, right in zip(row, RIGHT))
                        + "</tr>")
        notes = "".join(f'<tr><th style="text-align:left">{escape(k)}</th><td style="text-align:left">'
                        f"{escape(printable(v))}</td></tr>" for k, v in self.notes())
        return (f'<div class="archdsl-summary"><table><caption style="text-align:left"><b>{escape(printable(self.network))}'
                f"</b> (batch {self.batch}, {escape(self.dtype)})</caption><thead><tr>{head}</tr></thead><tbody>"
                + "".join(body) + f"</tbody></table><table>{notes}</table></div>")

    def lines(self) -> list[str]:
        """The table as fixed-width text, header first (rich.Table takes seconds on 500 rows)."""
        cells = [("name", "op", "output", "params", "MACs", "activations")]
        for r in self.rows:
            op = (r.op if r.ops == 1 else f"{r.op} ({r.ops} ops)") + (" [train]" if r.train_only else "")
            cells.append((printable(r.name), printable(op), fmt_shape(r.output), f"{r.params:,}" if r.params else "",
                          fmt_count(r.macs) if r.macs else "", fmt_bytes(r.activation_bytes) if r.activation_bytes else ""))
        widths = [max(len(row[i]) for row in cells) for i in range(6)]
        return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                for row in cells]

    def notes(self) -> list[tuple[str, str]]:
        """The totals as (label, text) lines, conventions stated."""
        t, b, dt = self.totals, self.batch, self.dtype
        io_ = lambda d: ", ".join(f"{k} {fmt_shape(v)}" for k, v in d.items())  # noqa: E731
        return [
            ("network", f"{self.network}: {t['ops']} ops, {t['weight_depth']} conv/linear layers deep; "
                        f"{io_(self.inputs)} -> {io_(self.outputs)}"),
            ("parameters", f"{t['params']:,} ({fmt_count(t['params'])}) + {t['buffers']:,} buffer elements "
                           f"= {fmt_bytes(t['model_bytes'])} at {dt}"),
            ("compute", f"{fmt_count(t['macs'])} MACs per image (FLOPs = 2 x MACs = {fmt_count(t['flops'])}); "
                        f"{fmt_count(t['elementwise'])} elementwise ops apart"),
            ("activations", f"{fmt_bytes(t['activation_bytes_per_image'])} per image ({dt}, forward: allocated "
                            f"op outputs, input included); {fmt_bytes(t['activation_bytes'])} for batch {b}"),
            ("training", f"batch {b}: weights {fmt_bytes(t['model_bytes'])} + gradients {fmt_bytes(t['gradient_bytes'])}"
                         f" + optimizer state (SGD-momentum {fmt_bytes(t['gradient_bytes'])}, Adam "
                         f"{fmt_bytes(2 * t['gradient_bytes'])}) + kept for backward {fmt_bytes(t['saved_bytes'])} = "
                         f"SGD-momentum {fmt_bytes(t['train_sgd_bytes'])}, Adam {fmt_bytes(t['train_adam_bytes'])}"),
        ]

    def title(self) -> str:
        return printable(f"{self.network} (batch {self.batch}, {self.dtype})")

    def __str__(self) -> str:
        notes = [f"{label:<12} {text}" for label, text in self.notes()]
        return "\n".join([self.title(), *self.lines(), "", *notes]) + "\n"

    def print(self, console=None) -> None:
        """The table and the totals on a rich Console (the terminal by default)."""
        from rich.console import Console
        from rich.text import Text
        console = console or Console(highlight=False)
        header, *lines = self.lines()
        text = Text(self.title() + "\n", style="bold")   # Text: shown literally, never read as markup
        text.append(header + "\n", style="bold")
        for line, row in zip(lines, self.rows):
            text.append(line + "\n", style="dim" if row.train_only else "")
        for label, note in self.notes():
            text.append(f"{label:<12} ", style="bold")
            text.append(note + "\n")
        console.print(text, end="", no_wrap=True, overflow="ignore", crop=False)


HEADERS = ("name", "op", "output", "parameters", "MACs", "activations", "training only")
RIGHT = (False, False, True, True, True, True, False)   # the numbers' columns, right-aligned
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|<`*"})


def _md(text: str) -> str:
    """Text in a markdown table cell: shown literally (a `|` would end the cell, `<` start HTML)."""
    return printable(text).translate(_MD_SPECIAL)


def fmt_bytes(n: int) -> str:
    """Decimal units, as the lecture (1 MB = 10^6 bytes)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# ----------------------------------------------------------------------------- meta values

META_ITEMS = 10_000     # items of meta that JSON shows, all values together (one may hold a million)
META_DEPTH = 32         # levels of nesting shown (values may nest 200 deep)
META_CHARS = 10_000     # characters of one string shown; every 32 characters cost an item


def meta_json(value):
    """A meta value (or the whole ``meta`` dict) as JSON data, for every value of the language:
    lists, tuples and ranges become lists; a dict is an object when its keys are strings and a
    list of ``[key, value]`` pairs otherwise (JSON keys are strings only, and ``1`` and ``"1"``
    are different keys); a tensor is its shape; blocks, ops and builtins are their shown name
    (``"block stem"``). Bounded: ``META_ITEMS`` items, ``META_DEPTH`` levels, ``META_CHARS``
    characters a string, anything cut marked ``"..."``, in time linear in what is shown, never
    recursing into a value's Python internals (a block value holds its whole syntax tree)."""
    return _json(value, [META_ITEMS], 0)


def _json(v, budget: list, depth: int):
    budget[0] -= 1
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, str):
        budget[0] -= min(len(v), META_CHARS) // 32
        return v if len(v) <= META_CHARS else v[:META_CHARS] + " ..."
    if isinstance(v, Tensor):
        return list(v.shape)
    if isinstance(v, (BlockRef, OpRef)):
        return show(v)
    if isinstance(v, (list, tuple, range, dict)):
        return _json_items(v, budget, depth)
    name = getattr(v, "name", None)   # a builtin function (`meta f = len`)
    return f"builtin {name}" if isinstance(name, str) else type_name(v)


def _json_items(v, budget: list, depth: int):
    if depth >= META_DEPTH:
        return "..."
    is_dict = isinstance(v, dict)
    shown, cut = [], False
    for item in v.items() if is_dict else v:
        if budget[0] <= 0:
            cut = True
            break
        shown.append((item[0], _json(item[1], budget, depth + 1)) if is_dict else _json(item, budget, depth + 1))
    if not is_dict:
        return shown + ["..."] if cut else shown
    if all(isinstance(k, str) for k, _ in shown):
        out = dict(shown)
        if cut:
            out["..."] = f"{len(v) - len(shown):,} more"
        return out
    pairs = [[_json(k, budget, depth + 1), x] for k, x in shown]
    return pairs + ["..."] if cut else pairs


def meta_span(graph: ArchGraph, name: str) -> Span | None:
    """Where ``meta name`` is stated (see ``ArchGraph.meta_span``)."""
    return graph.meta_span(name)


# ----------------------------------------------------------------------------- memory rules



def _computed(graph: ArchGraph, outputs) -> set:
    """The nodes the outputs depend on: what a forward pass computes."""
    seen, todo = set(), [o.node for o in outputs]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(graph.args(n))
    return seen


def storage(graph: ArchGraph) -> dict:
    """Node -> the node whose output tensor holds its result, as the compiled forward runs:
    views and pass-throughs share their input's; an op with an in-place form overwrites its
    input when the compiler allows it (input used once, not an output, and ``fresh`` by the
    registry's rule, as compile.py decides)."""
    uses = {n: 0 for n in graph.table}
    for n in _computed(graph, graph.outputs):
        for u in graph.args(n):
            uses[u] += 1
    keep = {o.node for o in graph.outputs} | set(graph.inputs.values())
    owner = {}
    for n, d in graph.table.items():
        op, args = OPS[d["op"]], graph.args(n)
        owner[n] = n
        if not args:
            continue
        names = [f"x{i}" for i in range(len(args))]
        expr = op.forward(d["attrs"], names, "m", False)
        if op.view or expr in names:
            owner[n] = owner[args[names.index(expr) if expr in names else 0]]
            continue
        u = args[0]
        producer = OPS[graph.table[u]["op"]]
        if (u not in keep and uses[u] == 1 and expr != op.forward(d["attrs"], names, "m", True)
                and producer.fresh_output(len(graph.args(u)))):
            owner[n] = owner[u]
    return owner


def _weight_depth(graph: ArchGraph) -> int:
    """Conv and linear layers on the longest path: ResNet-50's 50, VGG-16's 16."""
    depth = {}
    for n, d in graph.table.items():
        here = OPS[d["op"]].category in ("conv", "linear")
        depth[n] = max((depth[u] for u in graph.args(n)), default=0) + here
    return max(depth.values(), default=0)


# ----------------------------------------------------------------------------- the summary

def check_options(batch: int = 1, dtype: str = "fp32", depth: int | None = None) -> None:
    """ValueError unless the options make a summary (checked before a spec is)."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    if batch < 1 or (depth is not None and depth < 0):
        raise ValueError("batch must be at least 1 and depth at least 0")


def summary(graph: ArchGraph, batch: int = 1, dtype: str = "fp32", depth: int | None = None) -> Summary:
    """Per-op (or, with ``depth``, per-scope) parameters, MACs and activation memory, and the
    totals of an IR (``archdsl.summary`` takes a spec too: it checks it first)."""
    check_options(batch, dtype, depth)
    if not isinstance(graph, ArchGraph):
        raise TypeError(f"analyze.summary takes an ArchGraph, got {type(graph).__name__} "
                        "(archdsl.summary takes a spec)")
    size = DTYPE_BYTES[dtype]
    owner = storage(graph)
    inference = _computed(graph, [o for o in graph.outputs if not o.train_only])
    rows, kept, categories = [], set(), {}
    elementwise = indices = 0
    for n, d in graph.table.items():
        op, args = OPS[d["op"]], graph.args(n)
        shape, numel = d["shape"], math.prod(d["shape"])
        categories[op.category] = categories.get(op.category, 0) + 1
        if op.elementwise and n in inference:
            elementwise += numel * (len(args) - 1 if op.arity is None else 1)  # a join of k: k - 1 each
        kept.update(owner[u] for u in args if op.keeps == "input" and not is_tensor_decl(graph.table[u]))
        if op.keeps == "output":
            kept.add(owner[n])
        indices += numel if op.category == "pool" and op.keeps == "input" else 0  # max pools' argmax
        allocated = owner[n] == n and not is_tensor_decl(d)   # a param or buffer is a weight, not an activation
        rows.append(Row(d["name"], op.label(d["attrs"]), tuple(shape), d["params"],
                        op.macs(d["attrs"], [graph.table[u]["shape"] for u in args], shape),
                        numel * size * batch if allocated else 0, n not in inference))
    used = [r for r in rows if not r.train_only]
    model = (graph.total_params + graph.total_buffers) * size
    grads = graph.total_params * size
    saved = (sum(math.prod(graph.table[n]["shape"]) for n in kept) * size + indices * INDEX_BYTES) * batch
    activations = sum(r.activation_bytes for r in used)
    totals = {
        "ops": len(graph), "weight_depth": _weight_depth(graph),
        "params": graph.total_params, "buffers": graph.total_buffers, "model_bytes": model,
        "macs": sum(r.macs for r in used), "flops": 2 * sum(r.macs for r in used), "elementwise": elementwise,
        "activation_bytes_per_image": activations // batch, "activation_bytes": activations,
        "gradient_bytes": grads, "saved_bytes": saved,
        "train_sgd_bytes": model + 2 * grads + saved, "train_adam_bytes": model + 3 * grads + saved,
    }
    if depth is not None:
        rows = _aggregate(graph, rows, depth)
    shape = lambda n: tuple(graph.table[n]["shape"])  # noqa: E731
    return Summary(graph.network, batch, dtype, depth, {k: shape(n) for k, n in graph.inputs.items()},
                   {o.name: shape(o.node) for o in graph.outputs}, rows, totals, categories, dict(graph.meta), graph)


def _aggregate(graph: ArchGraph, rows: list, depth: int) -> list:
    """One row per scope ``depth`` levels below the network (ops above that stay single rows),
    training-only ops apart."""
    groups: dict = {}
    for n, row in zip(graph.table, rows):
        chain = graph.scope_chain(graph.table[n]["scope"])
        if len(chain) <= depth:
            groups[n] = row
            continue
        s = chain[depth]
        g = groups.get((s.id, row.train_only))
        if g is None:
            groups[(s.id, row.train_only)] = Row(s.name or graph.network, s.block or s.kind, row.output,
                                                 row.params, row.macs, row.activation_bytes, row.train_only)
        else:
            g.output, g.params, g.macs = row.output, g.params + row.params, g.macs + row.macs
            g.activation_bytes += row.activation_bytes
            g.ops += 1
    return list(groups.values())


# ----------------------------------------------------------------------------- output

FORMATS = {"table": str, "csv": Summary.to_csv, "json": Summary.to_json, "markdown": Summary.to_markdown}


def write_summary(s: Summary, fmt: str, path) -> None:
    """Write the summary as ``fmt`` (table, csv, json, markdown) to ``path`` (``-``: standard output)."""
    write_atomic(path, FORMATS[fmt](s))


COMPARED = (("parameters", "params", fmt_count), ("buffers", "buffers", fmt_count),
            ("MACs", "macs", fmt_count), ("elementwise ops", "elementwise", fmt_count),
            ("activations / image", "activation_bytes_per_image", fmt_bytes),
            ("training (Adam, batch 1)", "train_adam_bytes", fmt_bytes),
            ("conv/linear depth", "weight_depth", str), ("ops", "ops", str))


def compare_table(a: Summary, b: Summary):
    """A rich Table of two summaries: each metric, its difference and ratio (B / A)."""
    from rich.table import Table
    t = Table(box=None, pad_edge=False, title=plain(f"{a.network} vs {b.network}"), title_justify="left")
    for col in ("", a.network, b.network, "B - A", "B / A"):
        t.add_column(plain(col), justify="left" if not col else "right")
    rows = [(label, a.totals[k], b.totals[k], f) for label, k, f in COMPARED]
    rows += [(f"{c} ops", a.categories.get(c, 0), b.categories.get(c, 0), str)
             for c in sorted(set(a.categories) | set(b.categories)) if c != "io"]
    for label, x, y, f in rows:
        diff = ("+" if y > x else "-" if y < x else "") + f(abs(y - x))
        t.add_row(label, f(x), f(y), diff, f"{y / x:.2f}" if x else "")
    for label, p, q in (("inputs", a.inputs, b.inputs), ("outputs", a.outputs, b.outputs)):
        shapes = lambda d: ", ".join(f"{k} {fmt_shape(v)}" for k, v in d.items())  # noqa: E731
        same = "same" if list(p.values()) == list(q.values()) else "differs"
        t.add_row(label, plain(shapes(p)), plain(shapes(q)), same, "")
    return t


def chart(summaries: list[Summary], path) -> list[str]:
    """The lecture's complexity chart as a PNG: top-1 against GMACs, circle area proportional
    to parameters, for the summaries whose spec declares ``meta top1``; params against GMACs
    when none does. Returns the names left out for lack of accuracy."""
    acc = [s for s in summaries if s.top1 is not None]   # checked (E063) before matplotlib loads
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown, left_out = (acc, [s.network for s in summaries if s.top1 is None]) if acc else (summaries, [])
    biggest = max(s.totals["params"] for s in shown) or 1
    area = lambda p: 3000 * p / biggest  # noqa: E731  (points squared)
    fig, ax = plt.subplots(figsize=(11, 7), dpi=120)
    xs = [s.totals["macs"] / 1e9 for s in shown]
    ys = [s.top1 if acc else s.totals["params"] / 1e6 for s in shown]
    colors = [plt.cm.tab20(i % 20) for i in range(len(shown))]
    ax.scatter(xs, ys, s=[area(s.totals["params"]) for s in shown], c=colors, alpha=0.55,
               edgecolors="black", linewidths=0.5)
    ax.autoscale_view()
    placed = []   # label boxes in pixels: each label takes the first free offset above or below
    for s, x, y in sorted(zip(shown, xs, ys), key=lambda t: -t[0].totals["params"]):
        px, py = ax.transData.transform((x, y))
        w = 6.5 * len(s.network)
        dy = next(d for d in (8, -22, 22, -36, 36, -50, 50, 64, -64, 0) if d == 0 or not any(
            abs(px - qx) < (w + qw) / 2 and abs(py + d - qy) < 14 for qx, qy, qw in placed))
        placed.append((px, py + dy, w))
        ax.annotate(s.network, (x, y), xytext=(0, dy), textcoords="offset pixels", ha="center", fontsize=7,
                    arrowprops=None if dy == 8 else {"arrowstyle": "-", "lw": 0.4, "color": "gray"})
    for p in (5e6, 25e6, 100e6):
        ax.scatter([], [], s=area(p), color="lightgray", edgecolors="black", label=f"{p / 1e6:g}M params")
    ax.legend(loc="lower right", labelspacing=2, borderpad=1.2, fontsize=8, title="circle area")
    ax.set_xlabel("operations (GMACs per image)")
    ax.set_ylabel("top-1 accuracy (%)" if acc else "parameters (millions)")
    ax.set_title("accuracy against computation" if acc else "parameters against computation")
    ax.grid(alpha=0.3)
    if left_out:
        fig.text(0.01, 0.01, "not shown (no meta top1): " + ", ".join(left_out), fontsize=7, wrap=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buf.getvalue())
    return left_out
