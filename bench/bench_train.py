"""The training loop against the model step alone: is the data path the bottleneck?

    python bench/bench_train.py [--threads N] [--steps N]

ResNet-18 (`specs/resnet18.arch`, classes=10, size=32) at batch 128 on the default data (the
bundled digits, prepared once as a tensor and batched by indexing). First the model step alone
(forward, cross-entropy, backward, SGD step) on one random batch held in memory; then
`archdsl.train` for the same number of steps, whose images/s (metrics.jsonl, time in steps and
data loading, evaluation excluded) is compared with it. Target: the loop at least 90% of the
step alone.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import archdsl  # noqa: E402

SPEC = ROOT / "specs" / "resnet18.arch"
PARAMS = {"classes": 10, "size": 32}


def step_alone(batch: int, steps: int) -> float:
    """Images/s of the model step alone, median over the steps after five warm-up steps."""
    model = archdsl.load(SPEC, seed=0, **PARAMS).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 5):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def loop(batch: int, steps: int, threads: int) -> float:
    """Images/s of `archdsl train` over the same number of steps (its own measure)."""
    with tempfile.TemporaryDirectory() as out:
        archdsl.train(SPEC, data="digits", batch=batch, steps=steps, eval_every=steps, threads=threads,
                      out=str(Path(out) / "run"), quiet=True, **PARAMS)
        rows = [json.loads(line) for line in (Path(out) / "run" / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["images_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=22)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    alone = step_alone(a.batch, a.steps)
    looped = loop(a.batch, a.steps, a.threads)
    print(f"ResNet-18 (classes=10, size=32), batch {a.batch}, {a.steps} steps, {a.threads} threads, torch {torch.__version__}")
    print(f"model step alone   {alone:8.1f} images/s")
    print(f"archdsl train loop {looped:8.1f} images/s")
    print(f"loop / step alone  {looped / alone:8.3f}   (target >= 0.90)")


if __name__ == "__main__":
    main()
