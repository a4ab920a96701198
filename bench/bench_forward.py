"""A compiled zoo spec against the library model it reproduces: forward latency at batch 1 on CPU.

    python bench/bench_forward.py --spec vit_b_16 [--threads N] [--runs N] [--size N]
    python bench/bench_forward.py --spec deeplabv3_resnet50 --threads 2

The reference is the one the spec names (``meta reference``, with its ``meta reference_args``),
built by ``archdsl.reference`` as ``archdsl zoo --parity`` builds it: random weights, never
downloaded, its constant tensors (a zero head, unit norms) randomised. Its state dict is loaded
into the compiled spec (strict), the outputs are checked equal (a tensor, or a dict / tuple of
them compared entry by entry), one profiled forward of each checks that both call the same
computing aten ops as often, and the two models are timed in the same process, alternating which
goes first run by run (as bench_compile.py does).

The table shows each model's median wall time, its spread (the middle half of the runs), its
best run and its median CPU time (all threads). The ratios ours / reference (below 1 is faster)
are of the medians, the median of the run-by-run ratios (each pair ran back to back, under the
same load: the steadier figure on a shared machine) and of the CPU times. Target: <= 1.02.
``--control`` times a second instance of the reference instead of the spec: the ratios that noise
and memory placement alone give on this machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "6")   # quiet: no profiler start and stop lines
ROOT = Path(__file__).resolve().parent.parent
import torch  # noqa: E402
sys.path.insert(0, str(ROOT))
import archdsl  # noqa: E402
from archdsl import reference as references  # noqa: E402

TARGET = 1.02


def spec_file(name: str) -> Path:
    """A zoo name (``vit_b_16``: specs/vit_b_16.arch) or a path to a spec."""
    path = Path(name)
    return path if path.suffix == ".arch" else ROOT / "specs" / f"{name}.arch"


def tensors(out) -> list[tuple[str, torch.Tensor]]:
    """A model's output as (name, tensor) pairs: a tensor, or a dict or tuple of them, in order (a
    named tuple's entries by name, as a dict's)."""
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        out = dict(zip(out._fields, out))
    if isinstance(out, dict):
        return [(f"{k}{'.' + n if n else ''}", t) for k, v in out.items() for n, t in tensors(v)]
    if isinstance(out, (tuple, list)):
        return [(f"{i}{'.' + n if n else ''}", t) for i, v in enumerate(out) for n, t in tensors(v)]
    return [("", out)]


def assert_same(ours, theirs) -> float:
    """The two outputs have one structure and equal values; the largest relative difference."""
    a, b = tensors(ours), tensors(theirs)
    assert [n for n, _ in a] == [n for n, _ in b], f"outputs {[n for n, _ in a]} vs {[n for n, _ in b]}"
    worst = 0.0
    for (name, x), (_, y) in zip(a, b):
        assert x.shape == y.shape, f"output {name or 0}: {tuple(x.shape)} vs {tuple(y.shape)}"
        rel = ((x - y).abs().max() / y.abs().max().clamp_min(1.0)).item()
        assert rel <= 1e-5, f"output {name or 0} differs: relative error {rel:.2e}"
        worst = max(worst, rel)
    return worst


def randomise_constants(model: torch.nn.Module, seed: int = 0) -> None:
    """Random values in every tensor a fresh model holds at one constant (a zero-initialised head,
    layer and batch norms' ones and zeros, running statistics), so equal outputs mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point() or t.numel() < 2 or t.std() > 0:
                continue
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5, generator=g)
            else:
                t.add_(0.1 * torch.randn(t.shape, generator=g))


def interleaved(f, g, runs: int, warmup: int) -> tuple[list, list]:
    """(wall, CPU) seconds of each run of f and of g, alternating which goes first. CPU time (all
    threads of the process) is the steadier figure on a machine other work shares."""
    for _ in range(warmup):
        f(), g()
    tf, tg = [], []
    for i in range(runs):
        for fn, out in ((f, tf), (g, tg)) if i % 2 == 0 else ((g, tg), (f, tf)):
            t, c = time.perf_counter(), time.process_time()
            fn()
            out.append((time.perf_counter() - t, time.process_time() - c))
    return tf, tg


# aten ops that make views or empty tensors: no work, and two spellings of one layout change
# (flatten + transpose, reshape + permute) call different ones
VIEWS = {f"aten::{n}" for n in ("view", "_unsafe_view", "reshape", "flatten", "unflatten", "permute", "transpose",
                                "t", "expand", "select", "slice", "narrow", "split", "chunk", "unsqueeze",
                                "squeeze", "as_strided", "alias", "detach", "empty", "empty_like",
                                "empty_strided", "resolve_conj", "resolve_neg")}


def aten_calls(f) -> dict[str, int]:
    """How many times one run of f calls each aten op that computes (torch.profiler, CPU)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        f()
    return {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::") and e.key not in VIEWS}


def call_difference(a: dict, b: dict) -> str:
    """`same` or the ops whose call counts differ (ours vs the reference's)."""
    diff = [f"{k} {a.get(k, 0)} vs {b.get(k, 0)}" for k in sorted(set(a) | set(b)) if a.get(k, 0) != b.get(k, 0)]
    return "the same computing aten ops, as often" if not diff else "aten calls differ: " + ", ".join(diff[:8])


def middle_half(times: list[float]) -> str:
    q = statistics.quantiles(times, n=4, method="inclusive")
    return f"{q[0] * 1e3:.1f}-{q[2] * 1e3:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spec", default="vit_b_16", help="a zoo spec's name or a .arch path (default: vit_b_16)")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--runs", type=int, default=20, help="timed runs of each model (default 20)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--size", type=int, default=None, help="the spec's `size` parameter (and the input's)")
    p.add_argument("--control", action="store_true",
                   help="time a second instance of the reference in the spec's place: the ratio noise gives")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    path = spec_file(args.spec)
    params = {} if args.size is None else {"size": args.size}
    try:
        graph = archdsl.check(path, **params)
        ref = references.from_graph(graph)
    except archdsl.ArchError as e:
        sys.exit(e.render())
    if ref is None:
        sys.exit(f"{path.name} names no `meta reference` to compare with")
    theirs = references.build(ref).eval()   # with the spec's reference_args (ViT's follow `size`)
    randomise_constants(theirs)
    ours = references.build(ref).eval() if args.control else archdsl.load(path, seed=0, **params).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    mine = f"{ref.library} copy" if args.control else "archdsl"

    (shape,) = [graph.node(n)["shape"] for n in graph.inputs.values()]
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        err = assert_same(ours(x), theirs(x))
        calls = call_difference(aten_calls(lambda: ours(x)), aten_calls(lambda: theirs(x)))
        a, b = interleaved(lambda: ours(x), lambda: theirs(x), args.runs, args.warmup)

    wall_a, wall_b = [w for w, _ in a], [w for w, _ in b]
    cpu_a, cpu_b = [c for _, c in a], [c for _, c in b]
    ratio = statistics.median(wall_a) / statistics.median(wall_b)
    paired = statistics.median(u / v for u, v in zip(wall_a, wall_b))   # run i of each: the same load
    what = f"a second {ref.label}" if args.control else f"{graph.network} ({path.name})"
    print(f"{what} against {ref.label}, torch {torch.__version__}, {args.threads} threads")
    print(f"forward, batch 1, input {'x'.join(map(str, shape))}: {args.runs} runs each after {args.warmup} "
          f"warm-up, interleaved; outputs equal (max rel. err {err:.0e})")
    print(f"one forward each, profiled: {calls}")
    print(f"{'model':<16} {'median ms':>10} {'middle half ms':>18} {'best ms':>9} {'CPU median ms':>14}")
    for name, wall, cpu in ((mine, wall_a, cpu_a), (ref.library, wall_b, cpu_b)):
        print(f"{name:<16} {statistics.median(wall) * 1e3:>10.1f} {middle_half(wall):>18} {min(wall) * 1e3:>9.1f} "
              f"{statistics.median(cpu) * 1e3:>14.1f}")
    verdict = "" if args.control else f"  (target <= {TARGET}: {'met' if max(ratio, paired) <= TARGET else 'missed'})"
    print(f"ratio {mine} / {ref.library}: medians {ratio:.3f}, paired runs {paired:.3f}, CPU "
          f"{statistics.median(cpu_a) / statistics.median(cpu_b):.3f}{verdict}")


if __name__ == "__main__":
    main()
