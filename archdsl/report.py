"""Terminal output shared by the commands: the layer table of ``archdsl check``, whether to
colour, and the one way user text reaches rich.

Rich reads ``[...]`` in a plain string as markup (``[/x]`` raises MarkupError, ``[bold red]``
styles what follows) and ``:name:`` as an emoji, and passes escape sequences through to the
terminal. Names of files, labels and meta strings are the user's, so every one of them goes
to rich as a :func:`plain` Text, never as a string.
"""
from __future__ import annotations

import os

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


def use_color(stream) -> bool:
    """Whether to style what goes to ``stream`` (diagnostics on stderr): a terminal that is not
    ``TERM=dumb``, unless ``NO_COLOR`` is set (to anything but the empty string, no-color.org);
    ``FORCE_COLOR`` set (not empty, not ``0``) styles a pipe or a file too. ``NO_COLOR`` wins."""
    if os.environ.get("NO_COLOR", ""):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    if os.environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _rows(graph: ArchGraph) -> list[tuple[str, str, str, str]]:
    rows = []
    for n in graph.nodes():
        d = graph.node(n)
        rows.append((printable(d["name"]), printable(OPS[d["op"]].label(d["attrs"])), fmt_shape(d["shape"]),
                     f"{d['params']:,}" if d["params"] else ""))
    return rows


def _totals(graph: ArchGraph) -> str:
    outs = ", ".join(f"{o.name} {fmt_shape(graph.node(o.node)['shape'])}" + (" (training only)" if o.train_only else "")
                     for o in graph.outputs)
    return printable(f"{graph.network}: {len(graph)} ops, {graph.total_params:,} parameters "
                     f"({fmt_count(graph.total_params)}), outputs: {outs}")


def _shorten(name: str, width: int, mark: str = "…") -> str:
    """A dotted name cut in the middle to ``width`` characters: its start and its leaf stay."""
    if len(name) <= width:
        return name
    tail = max(1, (width - len(mark)) * 3 // 5)
    return name[:max(0, width - len(mark) - tail)] + mark + name[-tail:]


def print_check(graph: ArchGraph, quiet: bool = False, wide: bool = False) -> None:
    """A table of every op (name, op, output shape, parameters) and the totals.

    On a terminal the table fits its width: a name too long is cut in the middle (``…``) and
    op labels wrap; ``wide`` shows every name whole. Anywhere else (a pipe, a file) each row is
    one line with the names whole and the columns aligned, so ``grep`` and ``awk`` see them."""
    from rich.console import Console
    console = Console(highlight=False)
    if not console.is_terminal or wide:
        _print_plain(graph, quiet)
        return
    from rich.table import Table
    from rich.text import Text
    if not quiet:
        rows = _rows(graph)
        widest = [max([len(head)] + [len(r[i]) for r in rows]) for i, head in enumerate(_HEADS)]
        room = max(16, console.width - min(widest[1], 24) - sum(widest[2:]) - 6)  # op labels may wrap
        table = Table(title=Text(printable(graph.network)), title_justify="left", box=None, pad_edge=False)
        table.add_column("name", no_wrap=True)
        table.add_column("op")
        table.add_column("output", justify="right", no_wrap=True)
        table.add_column("params", justify="right", no_wrap=True)
        mark = "…" if console.encoding.startswith("utf") else "..."
        for name, op, shape, params in rows:
            table.add_row(Text(_shorten(name, room, mark)), Text(op), shape, params)
        console.print(table)
    console.print(Text(_totals(graph)))


_HEADS = ("name", "op", "output", "params")


def _print_plain(graph: ArchGraph, quiet: bool) -> None:
    """The check table as plain aligned lines on standard output, nothing cut or wrapped."""
    import sys
    lines = []
    if not quiet:
        rows = [_HEADS, *_rows(graph)]
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        lines.append(printable(graph.network))
        lines += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}  {d:>{w[3]}}".rstrip() for a, b, c, d in rows]
    lines.append(_totals(graph))
    sys.stdout.write("\n".join(lines) + "\n")
