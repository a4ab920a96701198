"""ResNet-50 images/s on a GPU: archdsl's compiled model against torchvision's, both with bf16
autocast, channels_last and torch.compile (run by bench/gpu.sh).

    python bench/bench_gpu.py [--batch 256] [--steps 50] [--no-compile] [--device cuda]

Both models hold the same weights. Inference runs under torch.inference_mode; a training
step is forward, cross-entropy, backward and an SGD step. Rounds alternate between the
models and the table shows the median throughput of the rounds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import archdsl  # noqa: E402

SPEC = ROOT / "specs" / "resnet50.arch"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def runner(model, x, train: bool, compile_: bool):
    """A function running one batch: inference, or one training step."""
    model = model.to(x.device, memory_format=torch.channels_last).train(train)
    fn = torch.compile(model) if compile_ else model
    if not train:
        def step():
            with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16):
                fn(x)
        return step
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    y = torch.randint(0, 1000, (x.shape[0],), device=x.device)

    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(fn(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    print(f"ResNet-50, {torch.cuda.get_device_name(device) if device.type == 'cuda' else device}, "
          f"torch {torch.__version__}, batch {args.batch}, bf16 autocast, channels_last, "
          f"{'eager' if args.no_compile else 'torch.compile'}")
    print(f"{'mode':<10} {'archdsl img/s':>14} {'torchvision img/s':>18} {'ratio':>7}")
    for train in (False, True):
        tv = torchvision.models.resnet50()
        ours = archdsl.load(SPEC)
        ours.load_state_dict(tv.state_dict(), strict=True)
        x = torch.randn(args.batch, 3, 224, 224, device=device).to(memory_format=torch.channels_last)
        steps = [runner(m, x, train, not args.no_compile) for m in (ours, tv)]
        for s in steps:         # compile and warm up
            for _ in range(3):
                s()
        rates = ([], [])
        for r in range(args.rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                sync(device)
                t = time.perf_counter()
                for _ in range(args.steps):
                    steps[i]()
                sync(device)
                rates[i].append(args.batch * args.steps / (time.perf_counter() - t))
        a, b = statistics.median(rates[0]), statistics.median(rates[1])
        print(f"{'train' if train else 'inference':<10} {a:>14.1f} {b:>18.1f} {a / b:>7.3f}")


if __name__ == "__main__":
    main()
