"""The run folder of ``archdsl train``: what a run leaves, and its checkpoints.

A run folder holds:

* ``options.json``: the training options and how the spec was checked (what ``--resume`` reads);
* ``record.json``: the spec's loading record (``graph.record``), so a resumed run elaborates the
  very texts the run started from, whatever happened to the files since;
* ``spec.arch``: the network as one self-contained, concrete spec (``archdsl.specwriter``);
* ``metrics.jsonl``: one JSON object per evaluation;
* ``checkpoint.safetensors``: the last checkpoint (below);
* ``weights.safetensors`` (final) and ``best.safetensors`` (best validation accuracy): the model's
  ``state_dict``, as ``safetensors.torch.save_file`` writes it;
* ``summary.json``, ``curves.png``, and TensorBoard event files when tensorboard is installed.

This module also holds the parts of the loop that need no spec: the options (:class:`Options`),
the optimizer and schedule, the outputs a loss is taken from, and the signal handling.

Every file is written through :func:`archdsl.files.write_atomic` (a temporary file in the run
folder, then a rename), so a run killed at any instant leaves each file whole: the old one or
the new one. A checkpoint is one safetensors file, never a pickle: the model's tensors under
``model.<key>``, every other tensor (optimizer moments, RNG states) under ``state.<n>``, and the
rest (step, epoch, scheduler, the Python and NumPy RNG, the loss accumulated since the last
evaluation) as JSON in the file's metadata, tensors referenced by name. Loading one runs no code.
"""
from __future__ import annotations

import io
import json
import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from .errors import ArchError
from .files import write_atomic

CHECKPOINT = "checkpoint.safetensors"
FORMAT = 1
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "step", "none")
AMP = ("none", "bf16", "fp16")


class TrainError(ArchError):
    """A training run that cannot start or go on."""


@dataclass
class Options:
    """Every training option, with its default (documented in ``archdsl.training``)."""

    data: str = "digits"
    epochs: int | None = None       # 10 unless --steps is given
    steps: int | None = None
    batch: int = 64
    lr: float = 0.05
    opt: str = "sgd"
    momentum: float = 0.9
    sched: str = "cosine"
    wd: float = 5e-4
    label_smoothing: float = 0.0
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    device: str | None = None
    grad_clip: float | None = None
    grad_accum: int = 1
    seed: int = 0
    workers: int = 0
    threads: int | None = None      # torch's intra-op threads on the CPU (None: torch's default)
    eval_every: int | None = None
    ckpt_every: int | None = None
    aux_weight: float = 0.3
    out: str | None = None
    augment: bool = True
    quiet: bool = False
    sync_bn: bool = False           # BatchNorm statistics over every process's share of the batch (CUDA)

    def checked(self) -> "Options":
        def bad(option, why):
            return TrainError("E106", f"--{option.replace('_', '-')} {why}")
        if self.epochs is not None and self.steps is not None:
            raise TrainError("E106", "--epochs and --steps both given", hint="give one: both count the whole run")
        for name in ("epochs", "steps", "batch", "grad_accum", "eval_every", "ckpt_every", "threads"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise bad(name, f"must be a positive integer, got {v!r}")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise bad("lr", f"must be a positive number, got {self.lr!r}")
        for name, low, high in (("wd", 0, None), ("label_smoothing", 0, 1), ("aux_weight", 0, None),
                                ("momentum", 0, 1)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < low or (high is not None and v > high):
                raise bad(name, f"must be a number{f' in [{low}, {high}]' if high else f' >= {low}'}, got {v!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise bad("grad_clip", f"must be a positive number, got {self.grad_clip!r}")
        for name, choices in (("opt", OPTIMIZERS), ("sched", SCHEDULES), ("amp", AMP)):
            if getattr(self, name) not in choices:
                raise bad(name, f"must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise bad("workers", f"must be 0 or more, got {self.workers!r}")
        return self


class RunFolderError(ArchError):
    """A run folder that cannot be written or read back."""


def unwritable(path, why: str) -> RunFolderError:
    return RunFolderError("E109", f"cannot write the run folder {path}: {why}",
                          hint="name a folder you can write with `--out DIR`")


def make_run_dir(path: Path, fresh: bool) -> Path:
    """Create (or reuse, for a resumed run) the run folder, refusing one that cannot be written
    and, for a new run, one that already holds a run."""
    try:
        if path.exists() and not path.is_dir():
            raise unwritable(path, "it is a file, not a folder")
        if fresh and (path / CHECKPOINT).exists():
            raise RunFolderError("E109", f"{path} already holds a run", hint=f"continue it with `--resume {path}`, "
                                 "or name another folder with `--out DIR`")
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".archdsl-write-test"
        write_atomic(probe, b"")
        probe.unlink()
    except OSError as e:
        raise unwritable(path, e.strerror or str(e)) from None
    return path


def write_json(path: Path, value) -> None:
    write_atomic(path, json.dumps(value, indent=2, allow_nan=True) + "\n")


def read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError("E110", f"{path.parent} is not a run folder: it has no {path.name}",
                             hint="--resume takes a folder written by `archdsl train`") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise RunFolderError("E110", f"cannot read {what} {path}: {e}") from None


def append_metrics(path: Path, row: dict) -> None:
    """One more line of ``metrics.jsonl``: the file is rewritten whole and atomically (it is small),
    so a kill never leaves half a line."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    write_atomic(path, old + json.dumps(row, allow_nan=True) + "\n")


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the rows past ``step`` (written after the checkpoint a run resumes from)."""
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    write_atomic(path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows))


# ----------------------------------------------------------------------------- weights and checkpoints

def state_dict_tensors(model) -> dict:
    """A model's ``state_dict`` as safetensors can store it: contiguous CPU tensors, none sharing memory."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def save_weights(path: Path, model) -> None:
    from safetensors.torch import save
    write_atomic(path, save(state_dict_tensors(model)))


def _pack(obj, tensors: dict):
    """``obj`` as JSON data, its tensors moved into ``tensors`` and named."""
    import numpy as np
    import torch
    if isinstance(obj, torch.Tensor):
        name = f"state.{len(tensors)}"
        tensors[name] = obj.detach().to("cpu", copy=True).contiguous()
        return {"$tensor": name}
    if isinstance(obj, np.ndarray):
        name = f"state.{len(tensors)}"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"$ndarray": name}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"$tuple": [_pack(x, tensors) for x in obj]}
    if isinstance(obj, list):
        return [_pack(x, tensors) for x in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _pack(v, tensors) for k, v in obj.items()}
        return {"$items": [[_pack(k, tensors), _pack(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def _unpack(obj, tensors):
    if isinstance(obj, list):
        return [_unpack(x, tensors) for x in obj]
    if isinstance(obj, dict):
        if "$tensor" in obj:
            return tensors[obj["$tensor"]]
        if "$ndarray" in obj:
            return tensors[obj["$ndarray"]].numpy()
        if "$tuple" in obj:
            return tuple(_unpack(x, tensors) for x in obj["$tuple"])
        if "$items" in obj:
            return {_unpack(k, tensors): _unpack(v, tensors) for k, v in obj["$items"]}
        return {k: _unpack(v, tensors) for k, v in obj.items()}
    return obj


def save_checkpoint(run_dir: Path, model, state: dict) -> Path:
    """One atomic checkpoint: the model's weights and ``state`` (anything :func:`_pack` stores)."""
    from safetensors.torch import save
    tensors = {f"model.{k}": v for k, v in state_dict_tensors(model).items()}
    meta = json.dumps({"format": FORMAT, "state": _pack(state, tensors)}, allow_nan=True)
    path = run_dir / CHECKPOINT
    write_atomic(path, save(tensors, metadata={"archdsl": meta}))
    return path


def load_checkpoint(run_dir: Path) -> tuple[dict, dict]:
    """(model state_dict, state) of the run folder's checkpoint."""
    from safetensors import SafetensorError
    from safetensors.torch import load
    path = run_dir / CHECKPOINT
    try:
        raw = path.read_bytes()
        tensors = load(raw)
        n = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + n]).get("__metadata__", {})
        data = json.loads(meta["archdsl"])
        if data.get("format") != FORMAT:
            raise ValueError(f"checkpoint format {data.get('format')}, this archdsl reads {FORMAT}")
        state = _unpack(data["state"], tensors)
    except FileNotFoundError:
        raise RunFolderError("E110", f"{run_dir} has no checkpoint to resume from",
                             hint="a run writes one every epoch (or every `--ckpt-every` steps)") from None
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise RunFolderError("E110", f"cannot read the checkpoint {path}: {e}") from None
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return model, state


# ----------------------------------------------------------------------------- parts of the loop

def outputs(graph):
    """(the output trained and evaluated, [training-only taps]) or E107."""
    evals = [o for o in graph.outputs if not o.train_only]
    aux = [o for o in graph.outputs if o.train_only]
    if len(evals) != 1:
        names = ", ".join(f"`{o.name}` {list(graph.node(o.node)['shape'])}" for o in evals)
        raise TrainError("E107", f"network `{graph.network}` has {len(evals)} outputs ({names}): training needs "
                         "one output of class scores", notes=["training-only taps (`tap(train_only=true)`) are "
                                                              "auxiliary losses; other outputs are not"],
                         hint="choose one: write `output NAME` in the network (or make the others "
                              "`tap(train_only=true)`), or train another network of the file with `--network NAME`")
    if len(graph.inputs) != 1:
        raise TrainError("E107", f"network `{graph.network}` has {len(graph.inputs)} inputs "
                         f"({', '.join(graph.inputs)}): training feeds one image input",
                         hint="train a network with one `input`")
    return evals[0], aux


def split(out, graph, main, aux):
    """The main scores and the auxiliary ones from a model's training-mode output."""
    if len(graph.outputs) == 1:
        return out, []
    if isinstance(out, dict):
        return out[main.name], [out[a.name] for a in aux]
    if not isinstance(out, (tuple, list)):   # eval mode (validation): the one eval output
        return out, []
    by_name = dict(zip((o.name for o in graph.outputs), out))
    return by_name[main.name], [by_name[a.name] for a in aux]


def optimizer(model, o):
    import torch
    params = [p for p in model.parameters() if p.requires_grad]
    if o.opt == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.wd)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.wd)


def scheduler(optimizer, o, total: int):
    import torch
    sched = torch.optim.lr_scheduler
    if o.sched == "onecycle":
        return sched.OneCycleLR(optimizer, max_lr=o.lr, total_steps=max(total, 2))
    if o.sched == "step":
        return sched.MultiStepLR(optimizer, milestones=[total // 2, total * 3 // 4], gamma=0.1)
    if o.sched == "cosine":
        return sched.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    return sched.LambdaLR(optimizer, lambda s: 1.0)


class QuietWorker:
    """A loader worker's ``worker_init_fn`` that leaves SIGINT (Ctrl-C reaches the whole process
    group) to the main process, which checkpoints and stops the workers itself; then runs
    ``inner``. SIGTERM keeps its default: the loader stops a stuck worker with it."""

    def __init__(self, inner=None):
        self.inner = inner

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.inner is not None:
            self.inner(worker_id)


def stop_workers(*loaders) -> None:
    """Shut the loaders' worker processes down now (after a signal to the process group some are
    already gone, and torch's own shutdown, run later from a finaliser, would print their end)."""
    for loader in loaders:
        it = getattr(loader, "_iterator", None)
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is None:
            continue
        for _ in range(3):   # the loader's SIGCHLD handler may raise again while it shuts down
            try:
                shutdown()
                break
            except Exception:
                continue
        loader._iterator = None


class StopSignals:
    """SIGINT and SIGTERM, while the loop runs, ask it to checkpoint and stop at the next step;
    a second one stops at once (KeyboardInterrupt). Only the main thread can take signals."""

    def __init__(self):
        self.signame, self.old = None, {}

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signame is not None:
            raise KeyboardInterrupt
        self.signame = signal.Signals(signum).name

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)
        return False


# ----------------------------------------------------------------------------- what a run shows

def write_curves(path: Path, rows: list[dict]) -> None:
    """``curves.png``: losses and validation accuracy against the step (matplotlib, Agg)."""
    if not rows:
        return
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(9, 3.5), dpi=100)
    left, right = fig.subplots(1, 2)
    steps = [r["step"] for r in rows]
    left.plot(steps, [r["train_loss"] for r in rows], label="train loss")
    left.plot(steps, [r["val_loss"] for r in rows], label="validation loss")
    left.set_xlabel("step")
    left.legend()
    right.plot(steps, [r["val_acc"] for r in rows], color="tab:green", label="validation accuracy")
    right.set_xlabel("step")
    right.set_ylim(0, 1)
    right.legend()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    write_atomic(path, out.getvalue())


def tensorboard_writer(run_dir: Path):
    """A TensorBoard ``SummaryWriter`` into the run folder, or None without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    try:
        return SummaryWriter(log_dir=os.fspath(run_dir))
    except Exception:  # an exotic install: the run goes on without event files
        return None


def finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
