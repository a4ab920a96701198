"""``archdsl zoo``: every spec of a folder in one table, optionally proven against its reference.

Each spec names its reference implementation with ``meta reference``:
``"torchvision.models.resnet50"`` or ``"timm:inception_v4"``. With ``--parity`` the
reference is built (random weights, no download), its ``state_dict`` is loaded into the
compiled spec with ``strict=True``, and the two outputs are compared in eval mode.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .analyze import summary
from .report import fmt_count


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


def source_lines(path: Path, seen: set | None = None) -> int:
    """Non-blank, non-comment lines of a spec and of every file it imports (each once)."""
    seen = set() if seen is None else seen
    path = path.resolve()
    if path in seen:
        return 0
    seen.add(path)
    count = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        code = line.split("#", 1)[0].strip()
        if not code:
            continue
        count += 1
        m = re.match(r'import\s+"([^"]+)"', code)
        if m and (path.parent / m.group(1)).exists():
            count += source_lines(path.parent / m.group(1), seen)
    return count


def reference_model(reference: str):
    """Build a reference model from its ``meta reference`` name, with random weights."""
    if reference.startswith("timm:"):
        import timm
        return timm.create_model(reference[5:], pretrained=False)
    if reference.startswith("torchvision.models."):
        import torchvision
        name = reference.rsplit(".", 1)[1]
        kwargs = {"init_weights": True} if name.startswith(("googlenet", "inception", "vgg")) else {}
        return getattr(torchvision.models, name)(weights=None, **kwargs)
    raise ValueError(f"unknown reference {reference!r}")


def parity(spec: Path, reference: str, shape: tuple) -> str:
    """Load the reference's weights into the compiled spec and compare outputs (batch 1)."""
    import torch
    from .compile import load
    ref = reference_model(reference).eval()
    ours = load(spec).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = ours(x), ref(x)
    err = ((a - b).abs().max() / b.abs().max()).item()
    if err > 1e-5:
        return f"FAILS (rel. err {err:.1e})"
    return "identical outputs" if err == 0 else f"equal (rel. err {err:.0e})"


def entries(folder: Path, run_parity: bool = False, progress=None) -> list[Entry]:
    out = []
    for spec in sorted(folder.glob("*.arch")):
        s = summary(spec)
        ref = s.meta.get("reference", "")
        e = Entry(spec.stem, s.network, s.totals["params"], s.totals["macs"],
                  ", ".join("x".join(map(str, v)) for v in s.inputs.values()), ref or "paper", s.top1,
                  source_lines(spec))
        if not ref:
            e.parity = "paper"
        elif run_parity:
            e.parity = parity(spec, ref, next(iter(s.inputs.values())))
        out.append(e)
        if progress:
            progress(e)
    return out


def markdown(rows: list[Entry]) -> str:
    lines = ["| spec | parameters | GMACs | input | reference | top-1 | parity | lines |",
             "|---|---:|---:|---|---|---:|---|---:|"]
    for e in rows:
        top1 = f"{e.top1:.2f}" if e.top1 is not None else ""
        gmacs = e.macs / 1e9
        macs = f"{gmacs:.3f}" if gmacs >= 0.01 else f"{gmacs:.2g}"
        lines.append(f"| `{e.spec}` | {e.params:,} | {macs} | {e.input} | {e.reference} | {top1} "
                     f"| {e.parity} | {e.lines} |")
    return "\n".join(lines) + "\n"


def cli(args) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        print(f"archdsl: error: no folder {folder}", flush=True)
        return 2
    if args.format == "markdown":
        print(markdown(entries(folder, args.parity)), end="")
        return 0
    from rich.console import Console
    from rich.table import Table
    console = Console(highlight=False)
    table = Table(title=f"archdsl zoo: {folder}", title_justify="left", box=None)
    for col, just in (("spec", "left"), ("params", "right"), ("MACs", "right"), ("input", "left"),
                      ("reference", "left"), ("top-1", "right"), ("parity", "left"), ("lines", "right")):
        table.add_column(col, justify=just)
    with console.status("checking specs...") as status:
        rows = entries(folder, args.parity, lambda e: status.update(f"checked {e.spec}"))
    table.caption = "parity: run with --parity" if not args.parity else None
    for e in rows:
        table.add_row(e.spec, fmt_count(e.params), fmt_count(e.macs), e.input, e.reference.split(".")[0].split(":")[0],
                      f"{e.top1:.2f}" if e.top1 is not None else "", e.parity, str(e.lines))
    console.print(table)
    return 0
