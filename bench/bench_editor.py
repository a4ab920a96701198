"""Editor tooling speed: `archdsl fmt` over the zoo, and the language server re-checking a
500-op spec after an edit.

    .venv/bin/python bench/bench_editor.py

Targets (issue 15): re-checking a 500-op spec after an edit under 100 ms; formatting is
measured (every spec, library and doc example is formatted by a test in every CI run).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.fmt import format_source  # noqa: E402
from archdsl.lsp_analysis import check_document  # noqa: E402


def formatting(runs: int = 5) -> tuple[int, int, float]:
    """(files, lines, best CPU seconds) to format every spec and library of the zoo at 60
    columns (so that the layout has work to do)."""
    texts = [p.read_text() for p in sorted((ROOT / "specs").rglob("*.arch"))]
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        for text in texts:
            format_source(text, line_length=60)
        best = min(best, time.process_time() - start)
    return len(texts), sum(len(t.splitlines()) for t in texts), best


def recheck(runs: int = 15) -> float:
    """Median seconds for the language server's check of a 500-op spec after a one-character edit."""
    lines = ["network big() {", "    input x: [16, 32, 32]"]
    lines += [f"    c{i}: conv(16, 3, pad=1) -> r{i}: relu" for i in range(250)]
    text = "\n".join([*lines, "}", ""])
    path = str(ROOT / "big.arch")
    check_document(text, path)
    times = []
    for i in range(runs):
        edited = text.replace("pad=1)", "pad=1" + " " * (i + 1) + ")", 1)   # a new text each time: no cache
        start = time.perf_counter()
        check_document(edited, path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    files, lines, seconds = formatting()
    print(f"archdsl fmt: {files} files, {lines} lines in {seconds:.2f} s CPU ({seconds / lines * 1e3:.2f} ms a line)")
    print(f"language server, re-check of a 500-op spec after an edit: {recheck() * 1e3:.0f} ms (target < 100 ms)")
