"""``archdsl sample``: draw designs from a spec's design space, check each statically, and
report how many are valid and how their parameters, MACs, activation memory and depth are
distributed (a table, a CSV file, a plot of the empirical distribution functions).

A design space is declared by the domains of a network's parameters (``choice``,
``int_range``, ``float_range``; ``graph.space``); docs/design-spaces.md walks through one.
The spec is loaded once and each design is only elaborated (:class:`~archdsl.frontend.SpaceLoader`);
the figures come from the IR directly, not through a full summary.
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter

from .errors import ArchError
from .frontend import SpaceLoader
from .values import Domain, show

CSV_FIXED = ("valid", "error", "params", "macs", "activation_bytes_per_image", "weight_depth")
FIGURES = ("params", "macs", "activation_bytes_per_image", "weight_depth")


# ----------------------------------------------------------------------------- drawing designs

def draw(domain: Domain, rng):
    """One value of ``domain`` (plain: a block or op choice by name), from the numpy Generator ``rng``.
    Each domain draws exactly one number from ``rng``, so a seed fixes every design."""
    u = rng.random()
    if domain.kind == "choice":
        return domain.choices[min(int(u * len(domain.choices)), len(domain.choices) - 1)]
    if domain.kind == "int":
        if domain.log:  # as Optuna's suggest_int(log=True): uniform in log over [low - 0.5, high + 0.5]
            lo, hi = math.log(domain.low - 0.5), math.log(domain.high + 0.5)
            v = int(round(math.exp(lo + u * (hi - lo))))
            return min(max(v, domain.low), domain.high)
        n = domain.size()
        return domain.low + domain.step * min(int(u * n), n - 1)
    if domain.log:
        lo, hi = math.log(domain.low), math.log(domain.high)
        return min(max(math.exp(lo + u * (hi - lo)), domain.low), domain.high)
    return domain.low + u * (domain.high - domain.low)


def sample_designs(spec, n: int, seed: int = 0, **check_kwargs):
    """Draw ``n`` designs of ``spec``'s design space and elaborate each; returns an iterator of
    ``(design_values, graph_or_error)``.

    ``spec`` and ``check_kwargs`` are what :func:`archdsl.check` takes (a path or spec text,
    ``network=``, ``inputs=``, ``limits=``, parameters; a parameter given there is pinned and
    leaves the space). ``design_values`` is a dict, dimension name -> plain value (a block or op
    choice by its name, ``"bottleneck"``), in the space's declaration order; passing it to
    ``archdsl.check(spec, **params)`` after :meth:`SpaceLoader.overrides` gives the same graph.
    ``graph_or_error`` is the checked :class:`~archdsl.ir.ArchGraph` (with ``space``, ``design``
    and a replayable ``record``) or the :class:`ArchError` the design raised (a failed
    ``require`` is E122). The draws come from ``numpy.random.default_rng(seed)``, one number per
    dimension in declaration order: the same seed gives the same designs.

    Raises (before the first design) :class:`ArchError` when the spec cannot be loaded, E123
    when its space has no dimension or ``n`` is below 1.
    """
    space = open_space(spec, **check_kwargs)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ArchError("E123", f"nothing to sample: -n must be at least 1, got {show(n)}")
    return _designs(space, n, seed)


def open_space(spec, **check_kwargs) -> SpaceLoader:
    """The spec loaded once (:class:`SpaceLoader`), refused (E123) when it declares no domain."""
    space = SpaceLoader(spec, **check_kwargs)
    if not space.space:
        err = ArchError("E123", f"nothing to sample: network `{_network_name(space)}` declares no design space"
                        + (" (every dimension is pinned by a parameter given)" if space.params else ""),
                        hint="give a network parameter a domain: `width = choice([16, 32, 64])`, "
                             "`depth = int_range(2, 8)`, `mult = float_range(0.25, 4, log=true)`")
        err.sources = dict(space.loader.sources)
        raise err
    return space


def _network_name(space: SpaceLoader) -> str:
    nets = space.module.networks
    return space.network if space.network is not None else (list(nets)[-1] if nets else "?")


def _designs(space: SpaceLoader, n: int, seed: int):
    import numpy as np
    rng = np.random.default_rng(seed)
    for _ in range(n):
        values = {name: draw(d, rng) for name, d in space.space.items()}
        try:
            yield values, space.design(values)
        except ArchError as e:
            yield values, e


# ----------------------------------------------------------------------------- figures of a design

def figures(graph) -> dict:
    """params, MACs, activation bytes per image (fp32, every op output that a forward pass
    allocates, as ``archdsl summary`` counts it) and weight depth of a checked design."""
    from .analyze import summary
    t = summary(graph).totals
    return {k: t[k] for k in FIGURES}


# ----------------------------------------------------------------------------- a sample of one space

class Sample:
    """The designs drawn from one space: ``rows`` (dicts of the CSV's columns), the space's
    ``dims`` and the error codes of the invalid designs, counted."""

    def __init__(self, name: str, space: dict):
        self.name, self.space, self.rows, self.errors = name, space, [], Counter()
        self.messages: dict[str, str] = {}  # code -> the first message of that code

    @property
    def valid(self) -> list:
        return [r for r in self.rows if r["valid"]]

    def add(self, values: dict, result) -> None:
        row = {"space": self.name, "design": len(self.rows), **values}
        if isinstance(result, ArchError):
            row.update(valid=False, error=result.code, **{k: None for k in FIGURES})
            self.errors[result.code] += 1
            self.messages.setdefault(result.code, result.message)
        else:
            row.update(valid=True, error=None, **figures(result))
        self.rows.append(row)


def sample(spec, n: int, seed: int = 0, name: str | None = None, **check_kwargs) -> Sample:
    """``n`` designs of one spec's space drawn and checked (:func:`sample_designs`), as a :class:`Sample`."""
    space = open_space(spec, **check_kwargs)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ArchError("E123", f"nothing to sample: -n must be at least 1, got {show(n)}")
    s = Sample(name or _space_name(spec), space.space)
    for values, result in _designs(space, n, seed):
        s.add(values, result)
    return s


def _space_name(spec) -> str:
    from pathlib import Path
    if isinstance(spec, str) and ("\n" in spec or spec == "-"):
        return "<stdin>" if spec == "-" else "<string>"
    return Path(spec).stem


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return repr(v) if isinstance(v, float) else str(v)
    return show(v, 500)


def to_csv(samples: list) -> str:
    """The designs of every sample, one row each: ``space``, ``design``, one column per dimension
    (every space's, in order of appearance; empty where a space has no such dimension), then
    ``valid``, ``error`` (the diagnostic code), ``params``, ``macs``, ``activation_bytes_per_image``,
    ``weight_depth`` (empty for an invalid design)."""
    dims = []
    for s in samples:
        dims += [d for d in s.space if d not in dims]
    columns = ["space", "design", *dims, *CSV_FIXED]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for s in samples:
        for row in s.rows:
            w.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def quantiles(values: list) -> list:
    """The QUANTILES of ``values``, each a value of the sample: the smallest whose empirical
    distribution function reaches the level (what the plot's EDF reads)."""
    import numpy as np
    return [float(q) for q in np.quantile(np.asarray(values, dtype=float), QUANTILES, method="inverted_cdf")]


def _fmt(v: float) -> str:
    """A figure in at most six characters, three significant digits: 4.98M, 235K, 56."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= size * 0.9995:
            return f"{v / size:.3g}{unit}"
    return f"{v:.3g}"


_TITLES = {"params": "parameters", "macs": "MACs", "activation_bytes_per_image": "activation bytes",
           "weight_depth": "weight depth"}


def print_report(samples: list, console=None) -> None:
    """Per space: how many designs were valid, the most common diagnostics of the others, and a
    table of quantiles of the valid designs' figures."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    console = console or Console(highlight=False)
    for s in samples:
        valid = len(s.valid)
        console.print(Text(f"{s.name}: {len(s.rows):,} designs of {len(s.space)} dimensions "
                           f"({', '.join(s.space)}), {valid:,} valid ({100 * valid / len(s.rows):.1f}%)"))
        for code, count in s.errors.most_common(5):
            console.print(Text(f"  {count:>6,} × {code}: {s.messages[code]}"[:200]))
        if not valid:
            continue
        table = Table(title=f"{s.name}: the {valid:,} valid designs (per image)", title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("", no_wrap=True)
        for q in QUANTILES:
            table.add_column({0.0: "min", 1.0: "max"}.get(q, f"{q:.0%}"), justify="right", no_wrap=True)
        for f in FIGURES:
            table.add_row(_TITLES[f], *(_fmt(v) for v in quantiles([r[f] for r in s.valid])))
        console.print(table)


def plot(samples: list, path) -> None:
    """Histograms (above) and empirical distribution functions (below) of the valid designs'
    parameters and MACs, one curve per space, log-scaled, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np
    from .files import write_atomic
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=110)
    for col, (figure, unit, scale) in enumerate((("params", "parameters (millions)", 1e6),
                                                 ("macs", "MACs per image (millions)", 1e6))):
        values = {s.name: np.sort(np.asarray([r[figure] for r in s.valid], dtype=float)) / scale
                  for s in samples if s.valid}
        every = np.concatenate(list(values.values())) if values else np.zeros(0)
        positive = every[every > 0]
        logx = positive.size > 1 and positive.max() / positive.min() > 20
        if logx:
            bins = np.geomspace(positive.min(), positive.max(), 30)
        else:
            bins = 30
        hist, edf = axes[0][col], axes[1][col]
        for i, (name, v) in enumerate(values.items()):
            color = plt.cm.tab10(i % 10)
            hist.hist(v, bins=bins, histtype="step", color=color, label=name)
            edf.step(np.concatenate([v[:1], v]), np.arange(len(v) + 1) / len(v), where="post", color=color,
                     label=f"{name} ({len(v):,})")
        for ax in (hist, edf):
            if logx:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.grid(alpha=0.3)
            ax.set_xlabel(unit)
        hist.set_ylabel("designs")
        edf.set_ylabel("fraction of designs ≤ x")
        edf.set_ylim(0, 1)
        if values:
            edf.legend(fontsize=8, loc="lower right")
        else:
            edf.text(0.5, 0.5, "no valid design", ha="center", transform=edf.transAxes)
        hist.set_title(f"{_TITLES[figure]} of the valid designs: histogram")
        edf.set_title(f"{_TITLES[figure]}: empirical distribution function")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    write_atomic(path, buf.getvalue())


# ----------------------------------------------------------------------------- the command

def add_parser(subparsers):
    """``archdsl sample FILE... -n N [--seed S] [-o designs.csv] [--plot edf.png]``."""
    from .cli import _common
    p = subparsers.add_parser("sample", help="draw designs from a spec's design space and check each statically",
                              description="Draw N designs from each FILE's design space (the domains of its "
                              "network parameters), elaborate and shape-check each, and report how many are "
                              "valid, the commonest diagnostics of the others, and the distributions of "
                              "parameters, MACs, activation memory and weight depth. A parameter given with "
                              "--set is pinned: it leaves the space.")
    _common(p, many=True)
    p.add_argument("-n", type=int, default=100, metavar="N", help="designs per space (default: 100)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the random seed (default: 0)")
    p.add_argument("-o", "--out", metavar="CSV", help="write every design, one row each, as CSV")
    p.add_argument("--plot", metavar="PNG", help="write histograms and distribution functions of params and MACs")
    return p


def run(args) -> int:
    """``archdsl sample``: 0 when every space has a valid design; a diagnostic (exit 1) otherwise."""
    from .cli import check_args
    from .files import write_atomic
    if args.n < 1:
        raise ArchError("E123", f"nothing to sample: -n must be at least 1, got {args.n}")
    kwargs = check_args(args)
    samples, names = [], set()
    for spec in args.files:
        name = _space_name(spec)
        name = name if name not in names else str(spec)  # two specs of one name: their paths tell them apart
        names.add(name)
        given = kwargs
        if spec == "-":  # the spec on standard input, as every command reads it
            from .cli import _read_stdin
            spec, given = _read_stdin(args), {**kwargs, "text": True}
        samples.append(sample(spec, args.n, args.seed, name=name, **given))
    if args.out:
        write_atomic(args.out, to_csv(samples))
    if args.plot:
        plot(samples, args.plot)
    print_report(samples)
    some_valid(samples)
    return 0


def some_valid(samples: list) -> None:
    """E124 for the first sample without a valid design (its commonest diagnostic in the hint)."""
    for s in samples:
        if not s.valid:
            code, count = s.errors.most_common(1)[0]
            raise ArchError("E124", f"no valid design in the {len(s.rows):,} drawn from `{s.name}`",
                            hint=f"the commonest diagnostic is {code} ({count:,} designs): {s.messages[code]}"[:300])
