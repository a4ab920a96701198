"""``archdsl compare``: two specs side by side (``compare A B``, shared options), two variants
each with its own options (``compare A [--set ...] --vs B [--set ...]``, B often the same file),
or run folders of ``archdsl train`` in one table (``compare RUN_DIR...``: a row per run, or per
folder of ``seed*/`` runs with the mean and sample standard deviation over its seeds).

A composition module: the specs are checked by the front end and summarised by ``analyze``
(``compare_table`` draws the side-by-side table); run folders are read from their
``summary.json`` alone.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .benchmark import (BenchError, is_library, parse_variant, resolve_source, side_kwargs, usage_error,
                        variant_label, variant_namespace)

RUN_FORMATS = ("table", "markdown", "csv", "json")


# ----------------------------------------------------------------------------- specs and variants

def add_compare_options(p: argparse.ArgumentParser) -> None:
    """What ``compare`` adds to its FILE... and common options: ``--vs`` and ``--format``."""
    p.add_argument("--vs", nargs=argparse.REMAINDER, metavar="OTHER [--set NAME=VALUE ...]",
                   help="compare FILE against OTHER with its own --set/--input/--network (e.g. the same file)")
    p.add_argument("--format", choices=RUN_FORMATS, default="table",
                   help="for run folders: table (default), markdown, csv or json")
    p.add_argument("--measure", action="store_true",
                   help="for run folders: also time each run's spec.arch (forward, batch 1, CPU)")


def run_compare(args) -> int:
    """``archdsl compare A B``, ``compare A [--set ...] --vs B [--set ...]``, ``compare RUN_DIR...``."""
    from rich.console import Console
    files = [Path(f) if not isinstance(f, Path) else f for f in args.files]
    folders = [f.is_dir() for f in files]
    if any(folders):
        if not all(folders) or args.vs is not None:
            raise usage_error("compare takes spec files or run folders, not both (and --vs only with specs)")
        rows = read_runs(files, measure=getattr(args, "measure", False))
        for r in rows:
            if r.left_out:
                print(f"note: {r.name}: left out {', '.join(r.left_out)} (no summary.json: unfinished?)",
                      file=sys.stderr)
        print(render_runs(rows, getattr(args, "format", "table")), end="")
        return 0
    if args.vs is not None:
        if len(files) != 1:
            raise usage_error(f"compare ... --vs takes one spec before --vs, got {len(files)}")
        b_ns, _ = parse_variant(args.vs, "archdsl compare FILE --vs", {})
        a, b = compare_variants(files[0], side_kwargs(files[0], args), resolve_source(b_ns.other),
                                side_kwargs(None, variant_namespace(b_ns, args)))
    else:
        if len(files) != 2:
            raise usage_error(f"compare takes two specs (or one and --vs OTHER, or run folders), got {len(files)}")
        from . import summary
        from .cli import check_args
        kwargs = check_args(args)
        a, b = (summary(f, **kwargs) for f in files)
    from .analyze import compare_table
    Console(highlight=False, width=None if sys.stdout.isatty() else 120).print(compare_table(a, b))
    return 0


def compare_variants(a, a_check: dict, b, b_check: dict):
    """The summaries of two variants, each checked with its own options (check keywords and
    network parameters); when both are the same network they are named by their parameters
    (``resnet [unit=sk]``)."""
    import dataclasses

    from . import summary
    if is_library(a) or is_library(b):
        raise BenchError("E114", "compare takes specs: a torchvision model has no summary",
                         hint="benchmark it instead: archdsl bench SPEC --vs torchvision:NAME")
    sa, sb = summary(a, **a_check), summary(b, **b_check)
    if sa.network == sb.network:
        sa = dataclasses.replace(sa, network=variant_label(sa.network, a_check, "A"))
        sb = dataclasses.replace(sb, network=variant_label(sb.network, b_check, "B"))
    return sa, sb


# ----------------------------------------------------------------------------- compare RUN_DIR...

@dataclass
class RunRow:
    """One run folder, or one folder of seeds: the mean and standard deviation over its seeds."""

    name: str
    seeds: list
    val_acc: tuple                # (mean, std); std is 0.0 for one run
    best_val_acc: tuple
    params: int | None
    macs: int | None
    wall_s: tuple
    spec: Path | None = None      # the run's spec.arch (the first seed's)
    latency_ms: float | None = None   # with measure: forward, batch 1, CPU, median
    left_out: list = field(default_factory=list)   # seed folders without a summary.json (unfinished)

    def to_dict(self) -> dict:
        d = {"name": self.name, "seeds": self.seeds, "runs": len(self.seeds), "params": self.params,
             "macs": self.macs}
        for k in ("val_acc", "best_val_acc", "wall_s"):
            d[k], d[k + "_std"] = getattr(self, k)
        if self.latency_ms is not None:
            d["latency_ms"] = self.latency_ms
        return d


def _summary_json(folder: Path) -> dict:
    path = folder / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError("E115", f"{folder} is not a run folder: it has no summary.json",
                         hint="compare takes folders written by `archdsl train` (or folders of their seed*/ runs)") \
            from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise BenchError("E115", f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise BenchError("E115", f"{path} is not a run summary: it holds {type(data).__name__}, not an object")
    for key in ("val_acc", "best_val_acc"):
        v = data.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BenchError("E115", f"{path} has no number `{key}`", hint="it is written by `archdsl train`")
    return data


def _mean_std(values: list) -> tuple:
    values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not values:
        return (None, None)
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def _shown_path(folder: Path) -> str:
    """A run folder as the table names it: relative to the working directory when inside it."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve())) if folder.is_absolute() else str(folder)
    except ValueError:
        return str(folder)


def read_runs(folders, *, measure: bool = False, runs: int = 10, warmup: int = 2,
              threads: int | None = None) -> list[RunRow]:
    """A row per run folder (``summary.json``) or per folder of seeds (``seed*/summary.json``:
    mean and sample standard deviation over the seeds). ``measure``: also time each run's
    ``spec.arch`` (forward, batch 1, CPU, the runs' models alternated in one loop)."""
    rows = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise BenchError("E115", f"{folder} is not a run folder: no such folder")
        left_out = []
        if (folder / "summary.json").exists():
            found = [folder]
        else:
            subs = sorted((p for p in folder.glob("seed*") if p.is_dir()), key=lambda p: (len(p.name), p.name))
            found = [p for p in subs if (p / "summary.json").exists()]
            left_out = [p.name for p in subs if p not in found]
            if not found:
                _summary_json(folder)      # E115: no summary.json
        data = [_summary_json(p) for p in found]
        first = data[0]
        count = lambda k: first.get(k) if isinstance(first.get(k), int) else None  # noqa: E731
        rows.append(RunRow(_shown_path(folder), [r.get("seed") for r in data],
                           _mean_std([r["val_acc"] for r in data]), _mean_std([r["best_val_acc"] for r in data]),
                           count("params"), count("macs"), _mean_std([r.get("wall_s") for r in data]),
                           found[0] / "spec.arch", None, left_out))
    if measure:
        from . import check
        from .benchmark import measure_latencies
        for r in rows:
            if not r.spec.is_file():
                raise BenchError("E115", f"{r.name} has no spec.arch to time", hint="compare it without --measure")
        graphs = [check(r.spec) for r in rows]
        for r, m in zip(rows, measure_latencies(graphs, runs=runs, warmup=warmup, threads=threads, together=True)):
            r.latency_ms = m.median_ms
    return rows


def _pm(v: tuple, n: int, digits: int = 4) -> str:
    mean, std = v
    if mean is None:
        return ""
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


RUN_COLUMNS = ("run", "seeds", "val_acc", "best_val_acc", "params", "MACs", "wall s")


def _columns(rows: list) -> tuple:
    return RUN_COLUMNS + (("latency ms",) if any(r.latency_ms is not None for r in rows) else ())


def _cells(r: RunRow, columns: tuple) -> list[str]:
    from .report import fmt_count
    n = len(r.seeds)
    cells = [r.name, str(n), _pm(r.val_acc, n), _pm(r.best_val_acc, n), "" if r.params is None else fmt_count(r.params),
             "" if r.macs is None else fmt_count(r.macs), _pm(r.wall_s, n, 1)]
    if len(columns) > len(RUN_COLUMNS):
        cells.append("" if r.latency_ms is None else f"{r.latency_ms:.3f}")
    return cells


def render_runs(rows: list[RunRow], fmt: str = "table") -> str:
    """The runs as ``table`` (rich), ``markdown``, ``csv`` (plain numbers) or ``json``."""
    if fmt not in RUN_FORMATS:
        raise BenchError("E114", f"--format must be one of {', '.join(RUN_FORMATS)}, got {fmt!r}")
    if fmt == "json":
        return json.dumps([r.to_dict() for r in rows], indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        keys = list(rows[0].to_dict()) if rows else []
        w.writerow(keys)
        for r in rows:
            d = r.to_dict()
            w.writerow([" ".join(map(str, d[k])) if k == "seeds" else "" if d[k] is None else d[k] for k in keys])
        return out.getvalue()
    if fmt == "markdown":
        from .report import printable
        cols = _columns(rows)
        lines = ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]
        lines += ["| " + " | ".join(printable(c).replace("|", "\\|") for c in _cells(r, cols)) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    from rich.console import Console
    from rich.table import Table

    from .report import plain
    t = Table(box=None, pad_edge=False, title="runs (mean ± std over seeds)", title_justify="left")
    cols = _columns(rows)
    for c in cols:
        t.add_column(c, justify="left" if c == "run" else "right", overflow="fold", no_wrap=c != "run")
    for r in rows:
        cells = _cells(r, cols)
        t.add_row(plain(cells[0]), *cells[1:])
    tty = sys.stdout.isatty()
    width = None if tty else 100 + max((len(r.name) for r in rows), default=0)
    console = Console(highlight=False, width=width, file=io.StringIO(), force_terminal=tty)
    console.print(t)
    return console.file.getvalue()
