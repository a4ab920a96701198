"""``archdsl zoo``: every spec of a folder in one table, optionally proven against its reference.

Each spec names its reference implementation with ``meta reference``
(``"torchvision:resnet50"``, ``"timm:inception_v4"``; the older ``"torchvision.models.resnet50"``
still works), resolved by :mod:`archdsl.reference` and nothing else. With ``--parity`` the
reference is built with random weights (never downloaded), its ``state_dict`` is loaded into
the compiled spec with ``strict=True``, and the two outputs are compared in eval mode.
Without ``--parity`` the references' form is checked but no library (and no torch) is imported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import reference as references
from .analyze import Summary, summary
from .errors import ArchError
from .ir import ArchGraph
from .report import fmt_count, plain


@dataclass
class Entry:
    spec: str
    network: str
    params: int
    macs: int
    input: str
    reference: str
    top1: float | None
    lines: int
    parity: str = "-"


def count_lines(texts) -> int:
    """Non-blank, non-comment lines of some source texts."""
    return sum(1 for text in texts for line in text.splitlines() if line.split("#", 1)[0].strip())


def source_lines(graph: ArchGraph) -> int:
    """Non-blank, non-comment lines of a checked spec and of every file it imports, each file once.

    The files are the ones the loader read for it (``graph.sources``: ``std/`` imports,
    relative ones, links), so the count cannot drift from what a spec really uses."""
    return count_lines(graph.sources.values())


def reference_of(s: Summary) -> references.Reference | None:
    """The summary's spec's reference, its form checked (diagnostics at its meta lines)."""
    return references.from_meta(s.meta, s.meta_error)


def _tensors(out) -> list:
    """A model's output as a flat list of tensors (a tensor, a tuple or a dict of them)."""
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in _tensors(v)]
    return [out]


def parity(graph: ArchGraph, ref: references.Reference, s: Summary) -> str:
    """Load the reference's weights into the compiled spec and compare outputs (batch 1)."""
    import torch
    from .compile import compile_graph
    want = (s.totals["params"], s.totals["buffers"])
    got = references.size(ref)
    if got is not None and got != want:   # refused before anything is allocated
        return f"FAILS ({ref.label} has {got[0]:,} parameters and {got[1]:,} buffer elements, the spec " \
               f"{want[0]:,} and {want[1]:,})"
    model = references.build(ref, max_params=want[0]).eval()
    ours = compile_graph(graph).eval()
    try:
        ours.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as e:
        return f"FAILS (state_dict: {str(e).splitlines()[0]})"
    x = torch.randn(1, *next(iter(s.inputs.values())), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        try:
            a, b = _tensors(ours(x)), _tensors(model(x))
        except Exception as e:   # the reference refuses the spec's input: a failed comparison, not a crash
            return f"FAILS ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if len(a) != len(b) or any(p.shape != q.shape for p, q in zip(a, b)):
        return "FAILS (outputs differ in number or shape)"
    err = max(((p - q).abs().max() / q.abs().max().clamp_min(1e-30)).item() for p, q in zip(a, b))
    if err > 1e-5:
        return f"FAILS (rel. err {err:.1e})"
    return "identical outputs" if err == 0 else f"equal (rel. err {err:.0e})"


def folder_of(name) -> Path:
    """The zoo's folder; a missing one is E070 (the command's own argument, so no span)."""
    folder = Path(name)
    try:
        what = None if folder.is_dir() else "is not a folder" if folder.exists() else "does not exist"
    except (OSError, ValueError) as e:   # a NUL byte, a name too long
        what = f"cannot be read ({getattr(e, 'strerror', None) or e})"
    if what:
        raise ArchError("E070", f"cannot list the zoo: {str(folder)!r} {what}",
                        hint="`archdsl zoo DIR` takes a folder of .arch specs (default: ./specs, else the packaged zoo)")
    return folder


def entries(folder: Path, run_parity: bool = False, progress=None, *, check: Callable) -> list[Entry]:
    """A row for each ``*.arch`` of the folder, in name order; ``check`` is the front end
    (``archdsl.check``) that turns a spec's path into its IR."""
    out = []
    for spec in sorted(folder_of(folder).glob("*.arch")):
        graph = check(spec)
        s = summary(graph)
        ref = reference_of(s)
        e = Entry(spec.stem, s.network, s.totals["params"], s.totals["macs"],
                  ", ".join("x".join(map(str, v)) for v in s.inputs.values()), ref.text if ref else "paper",
                  s.top1, source_lines(graph))
        if not ref:
            e.parity = "paper"
        elif run_parity:
            e.parity = parity(graph, ref, s)
        out.append(e)
        if progress:
            progress(e)
    return out


def _cell(text: str) -> str:
    """A markdown table cell: a `|` would end the cell early."""
    return text.replace("|", "\\|")


def markdown(rows: list[Entry]) -> str:
    lines = ["| spec | parameters | GMACs | input | reference | top-1 | parity | lines |",
             "|---|---:|---:|---|---|---:|---|---:|"]
    for e in rows:
        top1 = f"{e.top1:.2f}" if e.top1 is not None else ""
        gmacs = e.macs / 1e9
        macs = f"{gmacs:.3f}" if gmacs >= 0.01 else f"{gmacs:.2g}"
        lines.append(f"| `{_cell(e.spec)}` | {e.params:,} | {macs} | {e.input} | {_cell(e.reference)} | {top1} "
                     f"| {_cell(e.parity)} | {e.lines} |")
    return "\n".join(lines) + "\n"


def print_zoo(folder, *, check: Callable, fmt: str = "table", run_parity: bool = False) -> None:
    """``archdsl zoo``: the folder's table on standard output, as ``fmt`` (table or markdown)."""
    folder = folder_of(folder)
    if fmt == "markdown":
        print(markdown(entries(folder, run_parity, check=check)), end="")
        return
    from rich.console import Console
    from rich.table import Table
    console = Console(highlight=False)
    # every user string (folder, spec and reference names, parity messages) goes to rich as a Text
    table = Table(title=plain(f"archdsl zoo: {folder}"), title_justify="left", box=None)
    for col, just in (("spec", "left"), ("params", "right"), ("MACs", "right"), ("input", "left"),
                      ("reference", "left"), ("top-1", "right"), ("parity", "left"), ("lines", "right")):
        table.add_column(col, justify=just)
    with console.status("checking specs...") as status:
        rows = entries(folder, run_parity, lambda e: status.update(plain(f"checked {e.spec}")), check=check)
    table.caption = "parity: run with --parity" if not run_parity else None
    for e in rows:
        library = "paper" if e.reference == "paper" else references.from_meta({"reference": e.reference}).library
        table.add_row(plain(e.spec), fmt_count(e.params), fmt_count(e.macs), plain(e.input), plain(library),
                      f"{e.top1:.2f}" if e.top1 is not None else "", plain(e.parity), str(e.lines))
    console.print(table)
