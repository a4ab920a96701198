"""The compiled ResNet-18 against torchvision's: forward latency and construction time on CPU.

    python bench/bench_compile.py [--threads N] [--runs N]

Both models hold the same weights (torchvision's, loaded strict). Timings alternate
between the two models run by run, and the table shows medians and their ratio
(ours / torchvision; below 1 is faster). Targets: forward <= 1.02, construction <= 1.2.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import archdsl  # noqa: E402
from archdsl.compile import compile_graph  # noqa: E402

SPEC = ROOT / "specs" / "resnet18.arch"   # initialised as torchvision's: kaiming_normal, fan_out


def interleaved(f, g, runs: int, warmup: int = 3) -> tuple[float, float]:
    """Median seconds of f and of g, alternating which goes first."""
    for _ in range(warmup):
        f(), g()
    tf, tg = [], []
    for i in range(runs):
        for fn, out in ((f, tf), (g, tg)) if i % 2 == 0 else ((g, tg), (f, tf)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(tf), statistics.median(tg)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--runs", type=int, default=200, help="runs of the small cases (the batch-16 case uses a tenth)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    ours = archdsl.load(SPEC)
    tv = torchvision.models.resnet18()
    ours.load_state_dict(tv.state_dict(), strict=True)
    ours.eval(), tv.eval()
    rows = []
    for batch, size, runs, warmup in ((1, 64, args.runs, 5), (16, 224, max(10, args.runs // 10), 1)):
        x = torch.randn(batch, 3, size, size)
        with torch.inference_mode():
            assert torch.allclose(ours(x), tv(x), rtol=1e-4, atol=1e-5)
            a, b = interleaved(lambda: ours(x), lambda: tv(x), runs, warmup)
        rows.append((f"forward, batch {batch}, 3x{size}x{size}", a, b))

    graph = archdsl.check(SPEC)
    runs = max(10, args.runs // 10)
    rows.append(("construction: load(spec file)", *interleaved(lambda: archdsl.load(SPEC), torchvision.models.resnet18, runs)))
    rows.append(("construction: compile_graph(IR)", *interleaved(lambda: compile_graph(graph), torchvision.models.resnet18, runs)))

    print(f"ResNet-18, torch {torch.__version__}, {args.threads} threads, medians")
    print(f"{'case':<34} {'archdsl ms':>11} {'torchvision ms':>15} {'ratio':>7}")
    for name, a, b in rows:
        print(f"{name:<34} {a * 1e3:>11.3f} {b * 1e3:>15.3f} {a / b:>7.3f}")


if __name__ == "__main__":
    main()
