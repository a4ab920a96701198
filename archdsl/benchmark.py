"""``archdsl bench`` (a spec alone or against another, ``--vs``), the command-line split at
``--vs`` that ``archdsl compare`` shares (``archdsl.comparison``), and the measured complexity
chart (``archdsl chart --measure``).

A composition module: it checks specs with the front end, builds them with ``compile`` (and
library models with ``reference``, which never downloads), counts them with ``analyze``, and
times them here.

How ``bench`` measures (``bench(spec, vs=OTHER)``, ``archdsl bench SPEC --vs OTHER``):

* both models are built (the spec with seed 0; ``torchvision:NAME`` with random weights, its
  ``num_classes`` following the spec's class count unless ``--set num_classes=N`` after ``--vs``
  says otherwise), moved to the device, dtype and memory format, and optionally
  ``torch.compile``\\ d; each gets its own random batch of inputs;
* a *step* is one forward pass under ``torch.inference_mode`` in eval mode, or with
  ``--train`` one training step in train mode: forward, the sum over the outputs of the
  cross-entropy against random labels (one label per image for an ``[N, C]`` output, one per
  position for a dense ``[N, C, H, W]`` one; any other output adds its mean square), backward,
  and an SGD step (learning rate 1e-3, momentum 0.9; the gradients are set to None after it);
* ``--warmup`` steps of each model (compiling, allocator and cache warm-up), then ``--runs``
  timed steps of each, alternated in one process and the order flipped every run (A B, B A,
  A B...), so that drift of the machine (clock, heat, other load) falls on both alike; on CUDA
  each step is timed between two synchronisations;
* reported per model: the median latency, its spread (interquartile range and min-max),
  throughput (batch / median, images/s), parameters, MACs (the spec's from its summary, a
  library model's counted by ``torch.utils.flop_counter`` on one image), and peak memory: on
  CUDA measured, the model's own weights and optimizer state plus the most
  ``torch.cuda.max_memory_allocated`` rose above its level during one step; on the CPU the
  summary's estimate (weights + activations for a forward pass, the SGD-momentum training
  total for ``--train``), marked as an estimate (none for a library model). The ratio is A's
  median over B's: below 1, A is faster.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, fields

from .errors import ArchError

DTYPES = ("float32", "bfloat16", "float16")
_SUMMARY_DTYPE = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
_LIBRARY = "torchvision:"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
_CHECK_KEYS = ("network", "inputs", "limits", "roots", "plugins", "text", "base")


class BenchError(ArchError):
    """A benchmark (or a comparison, ``archdsl.comparison``) that cannot be made."""


def usage_error(message: str) -> SystemExit:
    from .cli import _usage as usage
    return SystemExit(usage(message))


# ----------------------------------------------------------------------------- options

@dataclass
class BenchOptions:
    """What applies to both models of a benchmark (see the module docstring)."""

    batch: int = 1
    size: int | None = None       # sets the spec's `size` parameter (a library model's input side)
    device: str = "cpu"
    dtype: str = "float32"
    channels_last: bool = False
    compile: bool = False
    train: bool = False
    runs: int = 20
    warmup: int = 3
    threads: int | None = None    # torch.set_num_threads for the benchmark (default: torch's)

    def checked(self) -> "BenchOptions":
        for name, least in (("batch", 1), ("size", 1), ("runs", 1), ("warmup", 0), ("threads", 1)):
            v = getattr(self, name)
            if v is None and name in ("size", "threads"):
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise BenchError("E114", f"--{name} must be an integer >= {least}, got {v!r}")
        if self.dtype not in DTYPES:
            raise BenchError("E114", f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise BenchError("E114", f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.device.startswith("cuda"):
            import torch
            if not torch.cuda.is_available():
                raise BenchError("E111", f"--device {self.device} needs CUDA, and torch sees no CUDA device here",
                                 hint="benchmark on the CPU (--device cpu), or on a machine with a GPU")
            index = int(self.device.partition(":")[2] or 0)
            if index >= torch.cuda.device_count():
                raise BenchError("E111", f"--device {self.device}: there are {torch.cuda.device_count()} CUDA "
                                 f"device(s) here", hint="cuda:0 is the first")
        return self


# ----------------------------------------------------------------------------- results

@dataclass
class Measure:
    """One model's timings (milliseconds) and sizes."""

    label: str
    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    images_per_s: float
    params: int
    macs: int | None
    peak_bytes: int | None
    peak_estimate: bool           # True: the summary's estimate (CPU); False: measured (CUDA)
    times_ms: list = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, label: str, times_s: list, batch: int, params: int, macs, peak, estimate: bool) -> "Measure":
        ms = sorted(t * 1e3 for t in times_s)
        q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else (ms[0],) * 3
        median = statistics.median(ms)
        return cls(label, median, q1, q3, ms[0], ms[-1], batch / (median / 1e3) if median > 0 else math.inf,
                   params, macs, peak, estimate, [t * 1e3 for t in times_s])


@dataclass
class BenchResult:
    """``a`` (and ``b`` with ``vs``), ``ratio`` = A's median latency / B's, the options, notes."""

    a: Measure
    b: Measure | None
    ratio: float | None
    options: dict
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"a": asdict(self.a), "b": asdict(self.b) if self.b else None, "ratio": self.ratio,
                "options": dict(self.options), "notes": list(self.notes)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def title(self) -> str:
        o = self.options
        what = "training step (SGD)" if o["train"] else "forward"
        extra = "".join(f", {k.replace('_', ' ')}" for k in ("channels_last", "compile") if o[k])
        order = ", A and B alternated" if self.b else ""
        return (f"bench: {what}, batch {o['batch']}, {o['device']}, {o['dtype']}{extra}; "
                f"{o['runs']} runs after {o['warmup']} warm-up{order}")

    def table(self):
        from rich.table import Table

        from .analyze import fmt_bytes
        from .report import fmt_count, plain
        t = Table(box=None, pad_edge=False, title=plain(self.title()), title_justify="left")
        for col in ("", "model", "median ms", "IQR ms", "min-max ms", "images/s", "peak memory", "params", "MACs"):
            t.add_column(col, justify="left" if col in ("", "model") else "right")
        for tag, m in (("A", self.a), ("B", self.b)):
            if m is None:
                continue
            peak = "" if m.peak_bytes is None else fmt_bytes(m.peak_bytes) + (" (estimate)" if m.peak_estimate else "")
            t.add_row(tag, plain(m.label), f"{m.median_ms:.3f}", f"{m.q1_ms:.3f}-{m.q3_ms:.3f}",
                      f"{m.min_ms:.3f}-{m.max_ms:.3f}", f"{m.images_per_s:,.1f}", peak, fmt_count(m.params),
                      "" if m.macs is None else fmt_count(m.macs))
        return t

    def verdict(self) -> str:
        if self.ratio is None:
            return ""
        r = self.ratio
        how = "the same time as B" if abs(r - 1) < 0.005 else \
            f"{(1 - r) * 100:.1f}% less time than B" if r < 1 else f"{(r - 1) * 100:.1f}% more time than B"
        return f"A / B = {r:.3f} (median latency): A takes {how}"

    def print(self, console=None) -> None:
        from rich.console import Console

        from .report import plain
        console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 140)
        console.print(self.table())
        if self.b is not None:
            console.print(plain(self.verdict()))
        for n in self.notes:
            console.print(plain(f"note: {n}"))


# ----------------------------------------------------------------------------- building the models

@dataclass
class _Model:
    label: str
    module: object
    inputs: list                  # input shapes, batch excluded
    params: int
    macs: int | None
    estimate: int | None          # CPU memory estimate, bytes (specs only)
    outputs: list = field(default_factory=list)   # output shapes (specs only), batch excluded


def is_library(source) -> bool:
    return isinstance(source, str) and source.startswith(_LIBRARY)


def _graph(spec, check: dict, size: int | None):
    """The spec's IR, checked with ``check`` (``size`` set when given, E113 if it has no ``size``)."""
    from . import check as check_spec
    from .ir import ArchGraph
    if isinstance(spec, ArchGraph):
        if any(v is not None for v in check.values()):
            raise TypeError("bench() of an ArchGraph takes no check options or parameters: "
                            f"{', '.join(sorted(check))}")
        if size is not None:
            raise BenchError("E113", f"--size cannot resize `{spec.network}`: it is already elaborated",
                             hint="pass the spec (a path or its text) to have its `size` parameter set")
        return spec
    check = {k: v for k, v in check.items() if v is not None}
    graph = check_spec(spec, **check)
    if size is None:
        return graph
    if "size" not in graph.params:
        shapes = ", ".join(f"{k}=[{', '.join(map(str, graph.node(n)['shape']))}]" for k, n in graph.inputs.items())
        raise BenchError("E113", f"network `{graph.network}` has no `size` parameter for --size {size} to set",
                         notes=[f"its parameters: {', '.join(graph.params) or 'none'}"],
                         hint=f"give the input shape instead: --input {shapes}" if shapes else None)
    if "size" in check:
        raise BenchError("E114", "--size and --set size=... both given", hint="give one of them")
    return check_spec(spec, **check, size=size)


def _spec_model(spec, check: dict, o: BenchOptions) -> _Model:
    from .analyze import summary
    from .compile import compile_graph
    graph = _graph(spec, check, o.size)
    totals = summary(graph, o.batch, _SUMMARY_DTYPE[o.dtype]).totals
    estimate = totals["train_sgd_bytes"] if o.train else totals["model_bytes"] + totals["activation_bytes"]
    module = compile_graph(graph, seed=0, limits=check.get("limits"))
    return _Model(graph.network, module, [tuple(graph.node(n)["shape"]) for n in graph.inputs.values()],
                  totals["params"], totals["macs"], estimate,
                  [tuple(graph.node(out.node)["shape"]) for out in graph.outputs if not out.train_only])


def _library_model(source: str, args: dict, o: BenchOptions, like: _Model | None, notes: list) -> _Model:
    """``torchvision:NAME`` built by archdsl.reference (random weights, nothing downloaded)."""
    import torch

    from . import reference
    name = source[len(_LIBRARY):]
    if not _NAME.fullmatch(name):
        raise BenchError("E114", f"{source!r}: NAME must be a model name torchvision registers "
                         "(lower-case letters, digits and _)", hint="for example torchvision:resnet18")
    args = dict(args)
    shape = args.pop("$input", None)
    if shape is None:
        if o.size is not None:
            shape = (3, o.size, o.size)
        elif like is not None and len(like.inputs) == 1 and len(like.inputs[0]) == 3:
            shape = like.inputs[0]
        else:
            shape = (3, 224, 224)
    if (like is not None and "num_classes" not in args and len(like.outputs) == 1 and len(like.outputs[0]) == 1
            and like.outputs[0][0] != 1000):
        args["num_classes"] = like.outputs[0][0]
        notes.append(f"{source} built with num_classes={args['num_classes']}, the class count of {like.label} "
                     "(set it with --set num_classes=N after --vs)")

    def error(meta, code, message, hint=None):   # the resolver's wording, for the command line
        return BenchError(code, message.replace("meta reference_args", f"--set of {source}")
                          .replace("meta reference", source), hint=hint)
    ref = reference.Reference("torchvision", name, {}, source, error)
    reference._checked_args(args, error)
    module = reference.build(ref, **args)
    params = sum(p.numel() for p in module.parameters())
    try:   # MACs: half the FLOPs torch counts on one image (convolutions and matrix products)
        from torch.utils.flop_counter import FlopCounterMode
        module.eval()
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            module(torch.randn(1, *shape))
        macs = counter.get_total_flops() // 2
    except Exception:  # the model refuses the input: said when it is benchmarked (E116)
        macs = None
    return _Model(source, module, [tuple(shape)], params, macs, None)


def _prepare(a, a_check, b, b_check, o: BenchOptions, notes: list) -> list[_Model]:
    """The models to benchmark, specs first (a library model takes a spec's input shape)."""
    models: list = [None, None]
    sides = [(0, a, a_check), (1, b, b_check)] if b is not None else [(0, a, a_check)]
    for i, src, chk in sides:
        if not is_library(src):
            models[i] = _spec_model(src, chk, o)
    for i, src, chk in sides:
        if is_library(src):
            like = next((m for m in models if m is not None), None)
            models[i] = _library_model(src, chk, o, like, notes)
    return [m for m in models if m is not None]


# ----------------------------------------------------------------------------- timing

def _tensors(out) -> list:
    """Every tensor of a model's output (a tensor, tuple, list, dict or named tuple)."""
    import torch
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for x in out for t in _tensors(x)]
    return []


def _loss(outputs: list, targets: list):
    import torch.nn.functional as F
    total = 0
    for t, y in zip(outputs, targets):
        total = total + (F.cross_entropy(t.float(), y) if y is not None else t.float().square().mean())
    return total


def _targets(outputs: list, device) -> list:
    import torch
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, t.shape[1], (t.shape[0], *t.shape[2:]), generator=g).to(device)
            if t.dim() >= 2 and t.shape[1] > 1 else None for t in outputs]


class _Step:
    """One model's step, ready to call: what ``bench`` times."""

    def __init__(self, m: _Model, o: BenchOptions, device):
        import torch
        self.m, self.o, self.device = m, o, device
        dtype = getattr(torch, o.dtype)
        fmt = torch.channels_last if o.channels_last else torch.contiguous_format
        model = m.module.to(device=device, dtype=dtype)
        if o.channels_last:
            model = model.to(memory_format=torch.channels_last)
        g = torch.Generator().manual_seed(1)
        self.xs = [torch.randn(o.batch, *s, generator=g).to(device=device, dtype=dtype,
                                                            memory_format=fmt if len(s) == 3 else torch.preserve_format)
                   for s in m.inputs]
        self.model = model.train(o.train)
        self.run = model
        if o.compile:
            self.run = torch.compile(model)
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9) if o.train else None
        self.targets = None

    def __call__(self) -> None:
        try:
            self._step()
        except ArchError:
            raise
        except Exception as e:  # what torch says, on this model, as a diagnostic
            raise self._failed(e) from None

    def _step(self) -> None:
        import torch
        if self.opt is None:
            with torch.inference_mode():
                self.run(*self.xs)
            return
        outs = _tensors(self.run(*self.xs))
        if self.targets is None:
            self.targets = _targets(outs, self.device)
        _loss(outs, self.targets).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def _failed(self, e: Exception) -> ArchError:
        import torch
        text = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        shapes = ", ".join(str(list(x.shape)) for x in self.xs)
        if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower():
            return BenchError("E116", f"{self.m.label} ran out of memory at batch {self.o.batch}: {text}",
                              hint="lower --batch")
        if self.o.compile and type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
            return BenchError("E112", f"torch.compile could not compile {self.m.label}: {text}",
                              hint="benchmark without --compile")
        if "more than 1 value per channel" in text:
            return BenchError("E116", f"{self.m.label} cannot take a training step at batch {self.o.batch}: {text}",
                              hint="batch norm needs more than one value per channel in training: --batch 2 or more")
        where = "--input x=[C,H,W] after --vs" if is_library(self.m.label) else "--input NAME=SHAPE"
        return BenchError("E116", f"{self.m.label} failed on its input {shapes} ({self.o.dtype}, {self.o.device}): "
                          f"{text}", hint=f"give it the input it takes ({where}, or --size N), or another --dtype")

    def persistent_bytes(self) -> int:
        """The model's own weights, buffers and optimizer state."""
        n = sum(t.numel() * t.element_size() for t in [*self.model.parameters(), *self.model.buffers()])
        if self.opt is not None:
            n += sum(v.numel() * v.element_size() for s in self.opt.state.values() for v in s.values()
                     if hasattr(v, "numel"))
        return n


def interleaved(steps: list, runs: int, warmup: int, sync=lambda: None) -> list[list[float]]:
    """Seconds of every run of every step: ``warmup`` untimed rounds, then ``runs`` rounds in
    alternating order (forwards on even rounds, backwards on odd ones)."""
    for _ in range(warmup):
        for s in steps:
            s()
    sync()
    times: list = [[] for _ in steps]
    for i in range(runs):
        order = range(len(steps)) if i % 2 == 0 else range(len(steps) - 1, -1, -1)
        for k in order:
            sync()
            t = time.perf_counter()
            steps[k]()
            sync()
            times[k].append(time.perf_counter() - t)
    return times


def _peak(step: _Step, device) -> int:
    """CUDA: the model's persistent bytes + what one step allocated at most beyond what was there."""
    import torch
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return step.persistent_bytes() + max(0, torch.cuda.max_memory_allocated(device) - before)


def _measure(models: list, o: BenchOptions) -> list[Measure]:
    import torch
    device = torch.device(o.device)
    old_threads = torch.get_num_threads()
    if o.threads:
        torch.set_num_threads(o.threads)
    try:
        steps = [_Step(m, o, device) for m in models]
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        times = interleaved(steps, o.runs, max(o.warmup, 1 if o.compile else 0), sync)
        out = []
        for m, s, t in zip(models, steps, times):
            peak, estimate = (_peak(s, device), False) if device.type == "cuda" else (m.estimate, True)
            out.append(Measure.of(m.label, t, o.batch, m.params, m.macs, peak, estimate))
        return out
    finally:
        torch.set_num_threads(old_threads)


# ----------------------------------------------------------------------------- the API

def bench(spec, vs=None, *, vs_options: dict | None = None, **options) -> BenchResult:
    """Benchmark a spec (a path, spec text, an ``ArchGraph`` or ``"torchvision:NAME"``), alone or
    against ``vs`` (the same kinds), as the module docstring describes.

    ``options`` are :class:`BenchOptions` fields (``batch``, ``size``, ``device``, ``dtype``,
    ``channels_last``, ``compile``, ``train``, ``runs``, ``warmup``, ``threads``), applying to
    both, and check keywords and network parameters for ``spec`` (``classes=10``, ``inputs``...);
    ``vs_options`` are those of ``vs`` (for ``torchvision:NAME``: constructor arguments, and
    ``inputs={"x": [3, 64, 64]}`` for its input shape)."""
    names = {f.name for f in fields(BenchOptions)}
    o = BenchOptions(**{k: options.pop(k) for k in list(options) if k in names})
    return _bench(spec, vs, o, options, vs_options or {})


def _bench(spec, vs, o: BenchOptions, a_check: dict, b_check: dict) -> BenchResult:
    """:func:`bench` with its options apart from each side's check keywords and parameters."""
    o = o.checked()
    a_check, b_check = dict(a_check), dict(b_check)
    notes: list = []
    for src, chk in ((spec, a_check), (vs, b_check)):
        if is_library(src):
            inputs = chk.pop("inputs", None) or {}
            bad = set(chk) & set(_CHECK_KEYS)
            if bad or len(inputs) > 1:
                raise BenchError("E114", f"{src} takes constructor arguments and one input shape, not "
                                 f"{', '.join(sorted(bad)) or 'several inputs'}")
            if inputs:
                chk["$input"] = _shape(next(iter(inputs.values())), src)
    models = _prepare(spec, a_check, vs, b_check, o, notes)
    if len(models) == 2 and models[0].label == models[1].label:   # two variants of one network
        for m, chk, tag in zip(models, (a_check, b_check), "AB"):
            m.label = variant_label(m.label, chk, tag)
    measures = _measure(models, o)
    a, b = measures[0], measures[1] if len(measures) > 1 else None
    ratio = a.median_ms / b.median_ms if b is not None and b.median_ms > 0 else None
    return BenchResult(a, b, ratio, asdict(o), notes)


def variant_label(name: str, check: dict, tag: str) -> str:
    """``resnet [unit=sk]``: a network named by the parameters it was checked with (``name (A)``
    without any)."""
    sets = [f"{k}={getattr(v, 'text', v)}" for k, v in check.items() if k not in _CHECK_KEYS and k != "$input"]
    return f"{name} [{', '.join(sets)}]" if sets else f"{name} ({tag})"


def _shape(value, what: str) -> tuple:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                          for v in value):
        return tuple(value)
    raise BenchError("E114", f"the input shape of {what} must be a list of positive integers, got {value!r}",
                     hint="for example --input x=[3,64,64]")


def measure_latencies(graphs, *, runs: int = 10, warmup: int = 2, threads: int | None = None,
                      together: bool = False) -> list[Measure]:
    """Forward latency of IRs at batch 1 on the CPU (float32): what ``chart --measure`` plots and
    ``compare RUN_DIR... --measure`` tabulates. ``together``: all the models alternated in one
    loop, as ``bench`` alternates two (all held at once); otherwise one after the other."""
    from .analyze import summary
    from .compile import compile_graph
    o = BenchOptions(runs=runs, warmup=warmup, threads=threads).checked()

    def model(graph) -> _Model:
        totals = summary(graph).totals
        shapes = [tuple(graph.node(n)["shape"]) for n in graph.inputs.values()]
        return _Model(graph.network, compile_graph(graph, seed=0), shapes, totals["params"], totals["macs"],
                      totals["model_bytes"] + totals["activation_bytes"])

    if together:
        return _measure([model(g) for g in graphs], o)
    return [_measure([model(g)], o)[0] for g in graphs]


def measure_latency(graph, **options) -> Measure:
    """:func:`measure_latencies` of one IR."""
    return measure_latencies([graph], **options)[0]


# ----------------------------------------------------------------------------- variants on the command line

def split_variants(argv) -> tuple[list, list | None]:
    """A command line's tokens as (A's, B's): B's are what follows ``--vs`` (None without one).
    ``--vs`` needs OTHER right after it, and is given once."""
    argv = list(argv)
    if "--vs" not in argv:
        return argv, None
    i = argv.index("--vs")
    a, b = argv[:i], argv[i + 1:]
    if "--vs" in b:
        raise usage_error("--vs is given twice: compare two variants, one on each side of it")
    if not b or b[0].startswith("-"):
        raise usage_error("--vs needs the other spec right after it (the same file for a --set variant), e.g. "
                          "`--vs A.arch --set unit=plain`")
    return a, b


class _Parser(argparse.ArgumentParser):
    """Usage errors as ``archdsl: error: ...``, exit 2."""

    def error(self, message):
        raise usage_error(message)


_SHARED = {  # options that apply to both sides, whichever side of --vs they are written on
    "batch": dict(type=int, help="images per step (default 1)"),
    "size": dict(type=int, help="set the `size` parameter of the specs (a library model's input side)"),
    "device": dict(help="cpu (default), cuda or cuda:N"),
    "dtype": dict(choices=DTYPES, help="float32 (default), bfloat16 or float16"),
    "channels_last": dict(action="store_true", default=None, help="channels-last memory format"),
    "compile": dict(action="store_true", default=None, help="torch.compile both models"),
    "train": dict(action="store_true", default=None, help="time a training step (SGD) instead of a forward pass"),
    "runs": dict(type=int, help="timed runs of each model (default 20)"),
    "warmup": dict(type=int, help="untimed runs of each model first (default 3)"),
    "threads": dict(type=int, help="CPU threads (default: torch's)"),
    "format": dict(choices=("table", "json"), help="table (default) or json"),
}


def _variant_parser(prog: str, shared: dict) -> argparse.ArgumentParser:
    """What follows ``--vs``: OTHER, its own --set/--input/--network, and the shared options."""
    p = _Parser(prog=prog, add_help=False)
    p.add_argument("other", metavar="OTHER")
    p.add_argument("--set", action="append", metavar="NAME=VALUE")
    p.add_argument("--input", action="append", metavar="NAME=SHAPE")
    p.add_argument("--network")
    for name, kw in shared.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, **{**kw, "default": argparse.SUPPRESS})
    return p


def parse_variant(tokens: list, prog: str, shared: dict) -> tuple[argparse.Namespace, dict]:
    """B's namespace (other, set, input, network) and the shared options written after ``--vs``."""
    split_variants(["--vs", *tokens])
    ns = _variant_parser(prog, shared).parse_args(tokens)
    given = {k: getattr(ns, k) for k in shared if hasattr(ns, k)}
    return ns, given


def variant_namespace(ns: argparse.Namespace, args: argparse.Namespace) -> argparse.Namespace:
    """B's options as check_args reads them: its own --set/--input/--network, A's limits and roots."""
    return argparse.Namespace(set=ns.set, input=ns.input, network=ns.network, limit=args.limit,
                              allow_import=args.allow_import, plugin=[])


def resolve_source(name: str):
    from .frontend import resolve_spec
    return name if is_library(name) else resolve_spec(name)


def _library_args(ns) -> dict:
    """``--set``/``--input`` of a library model: constructor arguments and its input shape, constants."""
    from .cli import _pairs
    out = dict(_pairs(ns.set, "set"))
    if ns.network:
        raise usage_error("--network names a network of a spec file; torchvision:NAME is one model")
    inputs = _pairs(ns.input, "input")
    if inputs:
        out["inputs"] = inputs
    return out


def side_kwargs(source, ns) -> dict:
    from .cli import check_args
    if is_library(source):
        return _library_args(ns)
    return {k: v for k, v in check_args(ns).items() if v is not None}


# ----------------------------------------------------------------------------- archdsl bench

def add_parser(subparsers) -> argparse.ArgumentParser:
    """``archdsl bench SPEC [--set ...] [--vs OTHER [--set ...]] [options]``."""
    from .cli import _plugin_option
    from .errors import Limits
    p = subparsers.add_parser("bench", help="time a spec's forward pass or training step, alone or against --vs OTHER",
                              description="Time a spec (or torchvision:NAME), alone or against another: warm-up, "
                              "then the two alternated in one process; median and spread of latency, images/s, "
                              "peak memory, and the ratio A/B. --set/--input before --vs apply to SPEC, after it to "
                              "OTHER; the other options apply to both.")
    p.add_argument("spec", metavar="SPEC", help="an .arch spec file, a zoo name, or torchvision:NAME")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a network parameter of SPEC")
    p.add_argument("--input", action="append", metavar="NAME=SHAPE", help="override an input shape of SPEC")
    p.add_argument("--network", help="which network of the file (default: the last)")
    p.add_argument("--limit", action="append", metavar="NAME=N",
                   help=f"raise a resource limit ({', '.join(Limits.FIELDS)})")
    p.add_argument("--allow-import", action="append", metavar="DIR", help="another folder imports may read")
    _plugin_option(p)
    p.add_argument("--vs", nargs=argparse.REMAINDER, metavar="OTHER [--set NAME=VALUE ...]",
                   help="benchmark against OTHER: another spec, the same one with other --set values, or "
                        "torchvision:NAME (--set there gives its constructor arguments)")
    for name, kw in _SHARED.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, **kw)
    return p


def run(args) -> int:
    """``archdsl bench``: 0 measured, 1 a diagnostic, 2 usage."""
    b_ns = None
    if args.vs is not None:
        b_ns, given = parse_variant(args.vs, "archdsl bench SPEC --vs", _SHARED)
        for k, v in given.items():
            setattr(args, k, v)
    if args.spec == "-":   # the spec on standard input, read as every command reads it
        from .cli import _read_stdin
        a, args.stdin = _read_stdin(args), True
    else:
        a = resolve_source(args.spec)
    b = resolve_source(b_ns.other) if b_ns is not None else None
    options = {k: getattr(args, k) for k in _SHARED if k != "format" and getattr(args, k) is not None}
    result = _bench(a, b, BenchOptions(**options), side_kwargs(a, args),
                    side_kwargs(b, variant_namespace(b_ns, args)) if b_ns else {})
    if args.format == "json":
        print(result.to_json(), end="")
    else:
        result.print()
    return 0


# ----------------------------------------------------------------------------- chart --measure

def measured_chart(summaries: list, path, *, runs: int = 10, warmup: int = 2, threads: int | None = None,
                   note=None) -> list[str]:
    """The complexity chart (``analyze.chart``, unchanged, on the left) with a second panel on its
    right: measured forward latency (batch 1, CPU, float32, median of ``runs``; one spec after
    the other, so that only one model is held at a time) against MACs. ``note(message)`` hears
    each latency as it is measured. Returns the names the left panel leaves out (no ``meta top1``)."""
    import os
    import tempfile

    from .analyze import chart
    from .files import write_atomic
    from .report import printable
    fd, tmp = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        left_out = chart(summaries, tmp)    # first: its meta checks (E063) come before minutes of timing
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.image
        from matplotlib.figure import Figure
        img = matplotlib.image.imread(tmp)
    finally:
        os.unlink(tmp)
    measured = []
    for s in summaries:
        measured.append((s, measure_latency(s.graph, runs=runs, warmup=warmup, threads=threads)))
        if note is not None:
            m = measured[-1][1]
            note(f"{s.network}: {m.median_ms:.3f} ms (median of {runs}, IQR {m.q1_ms:.3f}-{m.q3_ms:.3f})")
    dpi, (h, w) = 120, img.shape[:2]
    panel = max(700, int(h * 1.1))
    fig = Figure(figsize=((w + panel) / dpi, h / dpi), dpi=dpi)
    fig.figimage(img, 0, 0)
    ax = fig.add_axes((w / (w + panel) + 0.07 * panel / (w + panel), 0.1, 0.8 * panel / (w + panel), 0.8))
    xs = [s.totals["macs"] / 1e9 for s, _ in measured]
    ys = [m.median_ms for _, m in measured]
    shown = [s for s, _ in measured if s.top1 is not None] or [s for s, _ in measured]   # the left panel's colours
    place = {id(s): i for i, s in enumerate(shown)}
    cmap = matplotlib.colormaps["tab20"]
    colors = [cmap(place[id(s)] % 20) if id(s) in place else "lightgray" for s, _ in measured]
    ax.scatter(xs, ys, s=30, c=colors, edgecolors="black", linewidths=0.5)
    for (s, _), x, y in zip(measured, xs, ys):
        ax.annotate(printable(s.network), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    spread = [[m.median_ms - m.q1_ms for _, m in measured], [m.q3_ms - m.median_ms for _, m in measured]]
    ax.errorbar(xs, ys, yerr=spread, fmt="none", ecolor="gray", lw=0.8)
    ax.set_xlabel("operations (GMACs per image)")
    ax.set_ylabel("measured latency (ms, batch 1, CPU, median; bars: IQR)")
    ax.set_title("latency against computation")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return left_out
