"""Front-end speed: parse + elaborate + shape-check, warm and as a whole process.

    .venv/bin/python bench/bench_frontend.py

Targets (issue 2): ResNet-152 checked in under 50 ms warm; `archdsl check
specs/resnet50.arch` as a whole process in under 0.5 s, without importing torch.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archdsl  # noqa: E402


def warm(spec: Path, runs: int = 30, reparse: bool = False) -> float:
    """Median seconds of archdsl.check in a warm process; ``reparse`` empties the AST cache first."""
    from archdsl.syntax import _parse_cached
    archdsl.check(spec)
    times = []
    for _ in range(runs):
        if reparse:
            _parse_cached.cache_clear()
        t = time.perf_counter()
        archdsl.check(spec)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def process(args: list[str], runs: int = 7) -> float:
    exe = str(Path(sys.executable).with_name("archdsl"))
    subprocess.run([exe, *args], capture_output=True, check=True)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([exe, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    rows = []
    for name in ("resnet50", "resnet152", "densenet201", "inception_v4", "fractalnet_cifar"):
        spec = ROOT / "specs" / f"{name}.arch"
        if spec.exists():
            g = archdsl.check(spec)
            rows.append((f"check {name} (warm, {len(g)} ops)", warm(spec) * 1e3, 50 if name == "resnet152" else None))
            rows.append(("  ... parsing again each time", warm(spec, reparse=True) * 1e3, None))
    rows.append(("`archdsl check specs/resnet50.arch -q` (process)", process(["check", "specs/resnet50.arch", "-q"]) * 1e3, 500))
    probe = "import sys, archdsl.cli; archdsl.cli.main(['check', 'specs/resnet50.arch', '-q']); print('torch' in sys.modules)"
    torch_loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT).stdout.split()[-1]
    print(f"{'measurement':55} {'median ms':>10} {'target':>8}")
    for label, ms, target in rows:
        print(f"{label:55} {ms:10.1f} {'< ' + str(target) if target else '':>8}")
    print(f"torch imported by check: {torch_loaded}")


if __name__ == "__main__":
    main()
