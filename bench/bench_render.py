"""`archdsl render` on ResNet-152 as whole processes: the default folded view and every op drawn.

    python bench/bench_render.py [--runs N] [--spec FILE]

Each case runs `archdsl render SPEC -o OUT.svg` in a fresh process (Python start-up,
parsing, elaboration, the dot source and Graphviz's layout all counted) and reports the
median wall and CPU time of N runs (on a busy machine the CPU time is the steadier
figure) and the drawing's size. Targets: folded < 1 s, expanded < 5 s.
Without specs/resnet152.arch, the ResNet-152 spec is made from specs/resnet50.arch.
"""
from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [("default (folded)", [], 1.0), ("every op (--depth 99 --unroll)", ["--depth", "99", "--unroll"], 5.0)]


def spec_path(given: str | None, tmp: Path) -> Path:
    if given:
        return Path(given)
    if (ROOT / "specs" / "resnet152.arch").exists():
        return ROOT / "specs" / "resnet152.arch"
    text = (ROOT / "specs" / "resnet50.arch").read_text().replace("[3, 4, 6, 3]", "[3, 8, 36, 3]")
    (tmp / "lib").symlink_to(ROOT / "specs" / "lib")
    out = tmp / "resnet152.arch"
    out.write_text(text.replace("resnet50", "resnet152"))
    return out


def children_cpu() -> float:
    """User and system seconds of finished child processes (archdsl and the dot it runs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--spec", help="the spec to draw (default: ResNet-152)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = spec_path(args.spec, tmp)
        print(f"{spec.name}, median of {args.runs} processes")
        for name, extra, target in CASES:
            out = tmp / "x.svg"
            cmd = [sys.executable, "-m", "archdsl.cli", "render", str(spec), "-o", str(out), *extra]
            times, cpu = [], []
            for _ in range(args.runs):
                t, c = time.perf_counter(), children_cpu()
                subprocess.run(cmd, check=True, cwd=ROOT)
                times.append(time.perf_counter() - t)
                cpu.append(children_cpu() - c)
            svg = out.read_text()
            nodes = len(re.findall(r'<g id="node\d+" class="node">', svg))
            clusters = len(re.findall(r'class="cluster"', svg))
            median = statistics.median(times)
            print(f"  {name:32s} {median:5.2f} s wall, {statistics.median(cpu):5.2f} s CPU (target < {target:g} s: "
                  f"{'ok' if median < target else 'SLOW'})  {nodes} nodes, {clusters} clusters, "
                  f"{len(svg) / 1e3:.0f} kB SVG")


if __name__ == "__main__":
    main()
