"""`archdsl summary` as a whole process, and what it imports.

    .venv/bin/python bench/bench_summary.py

Target (issue 6): `archdsl summary specs/resnet152.arch` in under 1 s, without importing
torch (nor matplotlib). Median of 5 runs after one warm-up; the table goes to a pipe.
"""
from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def process(args: list[str]) -> tuple[float, float]:
    """Median wall and CPU (user + sys) seconds of the command, output captured. CPU time
    is the steadier figure on a busy machine."""
    exe = str(Path(sys.executable).with_name("archdsl"))
    subprocess.run([exe, *args], capture_output=True, check=True, cwd=ROOT)
    wall, cpu = [], []
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run([exe, *args], capture_output=True, check=True, cwd=ROOT)
        wall.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    print(f"{'command (process, median of ' + str(RUNS) + ')':58} {'wall ms':>8} {'cpu ms':>8} {'target':>8}")
    for args, target in ((["summary", "specs/resnet152.arch"], 1000),
                         (["summary", "specs/resnet152.arch", "--depth", "2", "--format", "json"], 1000),
                         (["summary", "specs/resnet50.arch"], None)):
        if (ROOT / args[1]).exists():
            label = "archdsl " + " ".join(args)
            wall, cpu = process(args)
            print(f"{label:58} {wall * 1e3:8.0f} {cpu * 1e3:8.0f} {'< ' + str(target) if target else '':>8}")
    probe = ("import sys, archdsl.cli; archdsl.cli.main(['summary', 'specs/resnet152.arch']); "
             "print(sorted(m for m in ('torch', 'matplotlib', 'networkx') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT).stdout
    print(f"heavy modules imported by summary: {loaded.splitlines()[-1]}")


if __name__ == "__main__":
    main()
