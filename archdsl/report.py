"""Terminal output shared by the commands: the layer table of ``archdsl check``, and the one
way user text reaches rich.

Rich reads ``[...]`` in a plain string as markup (``[/x]`` raises MarkupError, ``[bold red]``
styles what follows) and ``:name:`` as an emoji, and passes escape sequences through to the
terminal. Names of files, labels and meta strings are the user's, so every one of them goes
to rich as a :func:`plain` Text, never as a string.
"""
from __future__ import annotations

from .ir import ArchGraph
from .ops import OPS
from .values import escape


def printable(text, limit: int = 1000) -> str:
    """``text`` with control and bidi characters written as escapes (``\\x1b``, ``\\n``), cut to
    about ``limit`` characters: a name cannot move the cursor, recolour the terminal or fake an
    output line. The one escaping rule of the language's values (``values.escape``)."""
    return escape(str(text), limit)


def plain(text, style: str = ""):
    """User text as a rich ``Text``: shown literally, never parsed as markup or emoji codes."""
    from rich.text import Text
    return Text(printable(text), style=style)


def fmt_shape(shape) -> str:
    return " x ".join(map(str, shape))


def fmt_count(n: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def print_check(graph: ArchGraph, quiet: bool = False) -> None:
    """A table of every op (name, op, output shape, parameters) and the totals."""
    from rich.console import Console
    from rich.table import Table
    console = Console(highlight=False)
    if not quiet:
        table = Table(title=plain(graph.network), title_justify="left", box=None, pad_edge=False)
        table.add_column("name")
        table.add_column("op")
        table.add_column("output", justify="right")
        table.add_column("params", justify="right")
        for n in graph.nodes():
            d = graph.node(n)
            table.add_row(plain(d["name"]), plain(OPS[d["op"]].label(d["attrs"])), fmt_shape(d["shape"]),
                          f"{d['params']:,}" if d["params"] else "")
        console.print(table)
    outs = ", ".join(f"{o.name} {fmt_shape(graph.node(o.node)['shape'])}" + (" (training only)" if o.train_only else "")
                     for o in graph.outputs)
    console.print(plain(f"{graph.network}: {len(graph)} ops, {graph.total_params:,} parameters "
                        f"({fmt_count(graph.total_params)}), outputs: {outs}"))
