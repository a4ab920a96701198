"""``archdsl train`` and ``archdsl.train()``: the training loop, from a spec to a run folder.

A composition module: it checks the spec with the front end, then hands the IR to the stages
(``compile`` builds the model, ``analyze`` counts it, ``data`` feeds it, ``runs`` keeps the run
folder). What one run does, in order:

1. check the spec (``--set``, ``--input``, ``--network`` as every command takes them) and its
   outputs: one output, or one output plus training-only taps (auxiliary losses, each weighted
   by ``--aux-weight``, 0.3 as in GoogLeNet); any other set of outputs is E107;
2. open the data (``archdsl.data``); a ``classes`` parameter the command line does not set
   follows the data's class count (said in a note); any other mismatch is a diagnostic;
3. train, evaluating every epoch (or every ``--eval-every`` steps) and checkpointing every
   epoch (or every ``--ckpt-every`` steps), atomically; SIGINT or SIGTERM checkpoints and
   stops (exit 130); a loss that is not finite stops the run (E108), its last good checkpoint
   kept; ``--resume RUN_DIR`` goes on from the checkpoint with the options stored in the folder.

Defaults (``archdsl train my.arch`` trains on the digits with these): SGD with momentum 0.9
(Nesterov off), learning rate 0.05 on a cosine schedule over all the steps, weight decay 5e-4
on every parameter, batch 64, 10 epochs, no label smoothing, fp32 (no AMP), seed 0, the
first CUDA device when there is one (else the CPU), 0 loader workers (the digits and CIFAR are
tensors batched by indexing: on the digits a worker process only adds start-up time), gradient
clipping off, no gradient accumulation. ``--sched step`` multiplies the learning rate by 0.1 at
50 % and 75 % of the steps; ``onecycle`` is torch's OneCycleLR with the learning rate as its
peak. A step is one optimizer update (``--grad-accum K`` batches); ``--steps`` and ``--epochs``
count the whole run, so a resumed run stops where the uninterrupted one would.

Several processes (``torchrun --nproc-per-node N -m archdsl train ...``, or ``--nproc N``, which
starts torchrun on this machine): ``archdsl.distributed`` joins the process group, wraps the
model in DistributedDataParallel and shares ``--batch``, the global batch, between the
processes; process 0 alone writes the run folder and prints. ``--sync-bn`` (CUDA) makes
BatchNorm's statistics those of the global batch.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import distributed, runs
from .errors import ArchError
from .runs import AMP, OPTIMIZERS, SCHEDULES, Options, TrainError

_CHECK_KEYS = ("network", "inputs", "limits", "roots", "plugins", "text", "base")
_SUMS = ("loss_sum", "correct", "seen", "images")   # the loop's counts, which every process adds to


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run after it wrote a checkpoint (``run_dir``, ``step``)."""

    def __init__(self, run_dir: Path, step: int, signame: str):
        super().__init__(f"{signame}: stopped; the checkpoint in {run_dir} is at step {step}")
        self.run_dir, self.step, self.signame = run_dir, step, signame


@dataclass
class TrainResult:
    """What a run gives back: its evaluations, accuracies (fractions), folder and files."""

    history: list = field(default_factory=list)   # the rows of metrics.jsonl
    val_acc: float = 0.0                           # at the end
    best_val_acc: float = 0.0
    best_epoch: float = 0
    run_dir: Path | None = None
    weights: Path | None = None                    # weights.safetensors (final)
    summary: dict = field(default_factory=dict)    # summary.json


# ----------------------------------------------------------------------------- the API

def train(spec=None, data: str = "digits", **kwargs):
    """Train a spec (a path, spec text or an ``ArchGraph``) and return a :class:`TrainResult`.

    ``kwargs`` are training options (the fields of :class:`Options`: ``epochs``, ``steps``,
    ``lr``, ``out``...), check keywords (``network``, ``inputs``, ``limits``, ``roots``,
    ``plugins``) or network parameters (``classes=10``). ``seeds=[0, 1, 2]`` runs one run per
    seed into ``out/seed0``, ``out/seed1``... and returns the list of results. ``resume`` (a run
    folder) continues that run with its own options. ``callback(step, info)``, called after
    every step, may stop the run early by sending the process SIGINT or SIGTERM, as a user would.

    Under torchrun every process calls it; the process group it joins is left when it returns.
    Process 0 writes the run folder; the others' results hold the evaluations they took part in."""
    with distributed.scope():
        return _train(spec, data, **kwargs)


def _train(spec=None, data: str = "digits", *, seeds=None, resume=None, callback=None, argv=None, **kwargs):
    if resume is not None:
        return _resume(Path(resume), callback, **kwargs)
    fields = {f.name for f in dataclasses.fields(Options)}
    opts = {k: kwargs.pop(k) for k in list(kwargs) if k in fields}
    check = {k: kwargs.pop(k) for k in list(kwargs) if k in _CHECK_KEYS}
    options = Options(data=data, **opts).checked()
    if seeds is None:
        return _one(_check(spec, check, kwargs), options, kwargs, callback, argv)
    seeds = [int(s) for s in seeds]
    graph = _check(spec, check, kwargs)
    base = Path(options.out) if options.out else _default_dir(graph.network)
    return [_one(graph, dataclasses.replace(options, seed=s, out=str(base / f"seed{s}")), kwargs, callback, argv)
            for s in seeds]


def _default_dir(name: str) -> Path:
    """``runs/<network>-<date>-<time>``, made unique."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{name}-{stamp}"
    n = 2
    while path.exists():
        path, n = Path("runs") / f"{name}-{stamp}-{n}", n + 1
    return path


def _check(spec, check: dict, params: dict):
    from . import check as check_spec
    from .ir import ArchGraph
    if isinstance(spec, ArchGraph):
        if params or any(v is not None for v in check.values()):
            raise TypeError("train() of an ArchGraph takes no check options or parameters: check the spec with them")
        return spec
    return check_spec(spec, **{k: v for k, v in check.items() if v is not None}, **params)


def _one(graph, options: Options, params: dict, callback, argv):
    """One run of a checked spec: prepare (data, model, run folder), then loop."""
    from . import data as D
    session = _Session(graph, options, params, argv)
    session.prepare(D, fresh=True)
    return session.run(callback)


def _resume(run_dir: Path, callback, **overrides):
    """Continue the run in ``run_dir`` (or every unfinished run of a folder of seeds)."""
    from . import data as D
    from .frontend import check_files
    if not (run_dir / "options.json").exists() and run_dir.is_dir():
        seeds = sorted(p for p in run_dir.glob("seed*") if (p / "options.json").exists())
        if seeds:
            return [_resume(p, callback, **overrides) for p in seeds]
    stored = runs.read_json(run_dir / "options.json", "the options of")
    record = runs.read_json(run_dir / "record.json", "the loading record of")
    allowed = {"epochs", "steps", "workers", "threads", "device", "quiet"}
    extra = set(overrides) - allowed
    if extra:
        raise TrainError("E110", f"--resume continues with the run's own options; cannot change {', '.join(sorted(extra))}",
                         hint="only --epochs/--steps (the totals), --workers, --threads and --device may be given "
                              "with --resume")
    fields = {f.name for f in dataclasses.fields(Options)}
    opts = {k: v for k, v in stored["options"].items() if k in fields}
    if ("epochs" in overrides or "steps" in overrides) and opts.get("sched") == "onecycle":
        raise TrainError("E110", "a onecycle run cannot change its length on resume: its schedule spans the run",
                         hint="resume without --epochs/--steps")
    if "epochs" in overrides or "steps" in overrides:
        opts["epochs"], opts["steps"] = overrides.pop("epochs", None), overrides.pop("steps", None)
    opts.update(overrides)
    opts["out"] = str(run_dir)
    options = Options(**opts).checked()
    try:
        graph = check_files(record)
    except ArchError:
        from . import check as check_spec
        graph = check_spec((run_dir / "spec.arch").read_text(encoding="utf-8"), text=True)
    session = _Session(graph, options, {}, stored.get("argv"))
    session.prepare(D, fresh=False)
    return session.run(callback)


# ----------------------------------------------------------------------------- one run

class _Session:
    def __init__(self, graph, options: Options, params: dict, argv):
        self.graph, self.o, self.params, self.argv = graph, options, params, argv

    # --- before the first step
    def prepare(self, D, fresh: bool) -> None:
        import torch
        o = self.o
        try:
            self.device = distributed.device_for(o.device)   # the GPU of the local rank under torchrun
        except ValueError as e:
            raise TrainError("E106", str(e), hint="--device cpu, cuda, cuda:N or auto") from None
        if o.amp == "fp16" and self.device.type != "cuda":
            raise TrainError("E111", "--amp fp16 needs CUDA: float16 autocast with its loss scaler is a GPU feature",
                             hint="use --amp bf16 on the CPU, or --device cuda on a machine with a GPU")
        if o.sync_bn:
            distributed.check_sync_bn(True, self.device)
        distributed.per_process_batch(o.batch, distributed.world_size())
        self.ctx = distributed.init(o.device)   # after what can be refused without the other processes
        self.main, self.aux = runs.outputs(self.graph)
        shape = self.graph.node(next(iter(self.graph.inputs.values())))["shape"]
        self.loaders = D.make_loaders(o.data, shape, o.batch, o.workers, o.seed, self.device, augment=o.augment,
                                      distributed=self.ctx.distributed)
        for loader in (self.loaders.train, self.loaders.val):
            if loader.num_workers > 0:   # Ctrl-C reaches the whole process group: the main process handles it
                loader.worker_init_fn = runs.QuietWorker(loader.worker_init_fn)
        given = set(self.params) | set(self.graph.record.get("params", {}))
        out_shape = self.graph.node(self.main.node)["shape"]
        n = D.match_classes(self.graph.params, out_shape, self.loaders.classes, given if fresh else True)
        if n is not None:
            self.graph = _recheck(self.graph, n)
            self.main, self.aux = runs.outputs(self.graph)
            if self.ctx.main:
                print(f"note: classes = {n}, the class count of {self.loaders.data.name} "
                      "(set it with --set classes=N)", file=sys.stderr)
        for a in self.aux:
            if self.graph.node(a.node)["shape"] != self.graph.node(self.main.node)["shape"]:
                raise TrainError("E107", f"the training-only output `{a.name}` is "
                                 f"{list(self.graph.node(a.node)['shape'])}, the output `{self.main.name}` is "
                                 f"{list(self.graph.node(self.main.node)['shape'])}: an auxiliary loss needs one "
                                 "score per class", hint="end the tap with `linear(classes)`")
        steps_epoch = -(-self.loaders.steps_per_epoch // o.grad_accum)
        self.steps_per_epoch = steps_epoch
        self.total = o.steps if o.steps is not None else (o.epochs or 10) * steps_epoch
        from . import analyze
        self.totals = analyze.summary(self.graph).totals

        def make_folder():   # process 0's; the others take its folder's name
            self.run_dir = runs.make_run_dir(Path(o.out) if o.out else _default_dir(self.graph.network), fresh)
            if fresh:
                self._write_start_files()
            return self.run_dir
        self.run_dir = distributed.main_first(make_folder, self.ctx)
        self.rows = []   # this process's evaluations (process 0's are metrics.jsonl)
        from .compile import compile_graph
        import random

        import numpy as np
        torch.manual_seed(o.seed)
        random.seed(o.seed)
        np.random.seed(o.seed)
        self.model = compile_graph(self.graph, seed=o.seed, device=self.device, limits=self.graph.record.get("limits"))
        if o.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if o.sync_bn:
            self.model = distributed.convert_sync_bn(self.model, self.device)
        self.forward = distributed.wrap(self.model, self.ctx, find_unused=distributed.unused_parameters(self.graph))
        if o.compile:
            try:
                self.forward = torch.compile(self.forward)
            except Exception as e:  # (no torch.compile on this Python, a broken install)
                raise self._compile_error(e) from None
        # validation runs outside DDP: the processes' shares of the validation split may differ by a batch
        self.evaluator = self.model if self.ctx.active else self.forward
        if self.ctx.rank:   # the same weights (DDP starts from process 0's), other dropout masks
            torch.manual_seed(o.seed + 1_000_003 * self.ctx.rank)
        self.optimizer = runs.optimizer(self.model, o)
        self.scheduler = runs.scheduler(self.optimizer, o, self.total)
        self.scaler = torch.amp.GradScaler("cuda", enabled=o.amp == "fp16")
        self.state = {"step": 0, "epoch": 0, "batch": 0, "best_val_acc": -1.0, "best_epoch": 0, "best_step": 0,
                      "loss_sum": 0.0, "correct": 0, "seen": 0, "wall_s": 0.0, "images": 0, "train_s": 0.0}
        if not fresh:
            self._restore()
        else:
            self._checkpoint()   # step 0: there is always a last good checkpoint
        self.threads = torch.get_num_threads()
        if o.threads:
            torch.set_num_threads(o.threads)

    def _write_start_files(self) -> None:
        from . import check as check_spec
        from .specwriter import SpecWriteError, write_checked
        o = self.o
        runs.write_json(self.run_dir / "options.json", {"options": dataclasses.asdict(o), "argv": self.argv_list()})
        runs.write_json(self.run_dir / "record.json", self.graph.record)
        try:
            text = write_checked(self.graph, lambda t: check_spec(t, text=True))
            from .files import write_atomic
            write_atomic(self.run_dir / "spec.arch", text)
        except (SpecWriteError, ArchError) as e:
            print(f"note: spec.arch not written: {getattr(e, 'message', e)}", file=sys.stderr)

    def argv_list(self) -> list:
        if self.argv is not None:
            return list(self.argv)
        o, d = self.o, Options()
        line = ["archdsl", "train", str(self.graph.record.get("shown", {}).get(self.graph.record.get("main"), "SPEC"))]
        from .specwriter import SpecWriteError, literal
        for k, v in self.graph.record.get("params", {}).items():
            try:
                line += ["--set", f"{k}={literal(v, k)}"]
            except SpecWriteError:
                line += ["--set", f"{k}=?"]
        for f in dataclasses.fields(Options):
            v = getattr(o, f.name)
            if f.name in ("quiet", "augment") or v == getattr(d, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            line += [flag] if v is True else [flag, str(v)]
        return line

    def _restore(self) -> None:
        import random

        import numpy as np
        import torch
        weights, state = runs.load_checkpoint(self.run_dir)
        try:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise TrainError("E110", f"the checkpoint in {self.run_dir} does not fit the run's network: "
                             f"{str(e).splitlines()[0]}") from None
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        if self.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.state = state["loop"]
        if self.ctx.rank:   # the sums are process 0's, which carries them on; other dropout masks
            self.state.update({k: 0 * self.state[k] for k in _SUMS})
            torch.manual_seed(self.o.seed + 1_000_003 * self.ctx.rank + self.state["step"])
        if self.ctx.main:
            runs.truncate_metrics(self.run_dir / "metrics.jsonl", self.state["step"])

    def _not_finite(self, what: str) -> TrainError:
        """E108: the run stops; the last checkpoint (always one of finite weights) stays."""
        return TrainError("E108", f"{what}: the run stopped",
                          notes=[f"the last good checkpoint is kept: {self.run_dir / runs.CHECKPOINT} "
                                 f"(step {self.checkpointed})"],
                          hint=f"lower the learning rate (--lr, now {self.o.lr:g}), clip the gradients "
                               "(--grad-clip 1.0), or train in fp32 (--amp none)")

    def _checkpoint(self) -> None:
        import random

        import numpy as np
        import torch
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise self._not_finite(f"the weights are not finite after step {self.state['step']}")
        rng = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
               "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None}
        if self.ctx.main:
            runs.save_checkpoint(self.run_dir, self.model, {
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng, "loop": dict(self.state)})
        self.checkpointed = self.state["step"]

    # --- the loop
    def run(self, callback) -> TrainResult:
        from .progress import Progress
        o, st = self.o, self.state
        self.checkpointed = st["step"]
        stop = runs.StopSignals()
        writer = runs.tensorboard_writer(self.run_dir) if st["step"] < self.total and self.ctx.main else None
        progress = Progress(self.total, st["step"], quiet=o.quiet or not self.ctx.main, title=self.graph.network)
        started = time.perf_counter()
        wall0 = st["wall_s"]
        try:
            with stop, progress:
                if st.get("eval_due"):   # stopped during an evaluation: do it now
                    self._evaluate(progress, writer)
                while st["step"] < self.total:
                    try:
                        self._epoch(progress, stop, callback, writer, started, wall0)
                    except (Exception, KeyboardInterrupt) as e:
                        if stop.signame is None or isinstance(e, ArchError):
                            raise
                        runs.stop_workers(self.loaders.train, self.loaders.val)
                        if isinstance(e, Interrupted):
                            raise
                        # a signal to the whole process group: a loader worker's end surfaced
                        # somewhere in a step; the last checkpoint is whole, this step may not be
                        raise Interrupted(self.run_dir, self.checkpointed, stop.signame) from None
        finally:
            st["wall_s"] = wall0 + time.perf_counter() - started
            if writer is not None:
                writer.close()
            import torch
            torch.set_num_threads(self.threads)
        return self._finish()

    def _epoch(self, progress, stop, callback, writer, started, wall0) -> None:
        o, st = self.o, self.state
        self.loaders.set_epoch(st["epoch"], st["batch"])
        self.model.train()
        group, t0 = [], time.perf_counter()
        batches = iter(self.loaders.train)
        left = self.loaders.steps_per_epoch - st["batch"]
        for i in range(left):
            x, y = self._guarded(stop, next, batches)
            group.append((x, y))
            if len(group) < o.grad_accum and i < left - 1:
                continue
            self._step(group)
            st["batch"] += len(group)
            group = []
            st["step"] += 1
            now = time.perf_counter()
            st["train_s"] += now - t0
            last_of_epoch = st["batch"] >= self.loaders.steps_per_epoch
            done = st["step"] >= self.total
            if last_of_epoch:
                st["epoch"], st["batch"] = st["epoch"] + 1, 0
            progress.update(st, self._rate() * self.ctx.world)
            if (o.eval_every and st["step"] % o.eval_every == 0) or (not o.eval_every and last_of_epoch) or done:
                st["wall_s"] = wall0 + time.perf_counter() - started
                st["eval_due"] = True    # (a checkpoint written while it runs evaluates again on resume)
                self._guarded(stop, self._evaluate, progress, writer)
            if (o.ckpt_every and st["step"] % o.ckpt_every == 0) or (not o.ckpt_every and last_of_epoch) or done:
                self._checkpoint()
            if callback is not None:
                callback(st["step"], dict(st))
            if distributed.any_rank(stop.signame is not None, self.ctx):   # every process stops here
                if self.checkpointed != st["step"]:
                    self._checkpoint()
                raise Interrupted(self.run_dir, st["step"], stop.signame or "SIGTERM")
            if done or last_of_epoch:
                break
            self.model.train()
            t0 = time.perf_counter()
        del batches

    def _guarded(self, stop, fn, *args):
        """``fn(*args)``; if it fails after a stop signal arrived (a SIGTERM sent to the whole
        process group ends the loader's workers too), checkpoint the whole steps done and stop."""
        try:
            return fn(*args)
        except Exception:
            if stop.signame is None:
                raise
        self._checkpoint()
        raise Interrupted(self.run_dir, self.state["step"], stop.signame)

    def _step(self, group) -> None:
        import torch
        o = self.o
        n = sum(len(y) for _, y in group)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(o.amp)
        for i, (x, y) in enumerate(group):
            with distributed.no_sync(self.forward, last=i == len(group) - 1):   # DDP averages at the last
                self._micro(x, y, n, dtype)
        if o.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def _micro(self, x, y, n: int, dtype) -> None:
        """One batch of a step: forward, loss, backward (scaled by its share of the step's images)."""
        import torch
        o, st = self.o, self.state
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if o.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            out = self._forward(x)
        main, aux = runs.split(out, self.graph, self.main, self.aux)
        main = main.float()
        loss = torch.nn.functional.cross_entropy(main, y, label_smoothing=o.label_smoothing)
        for a in aux:
            loss = loss + o.aux_weight * torch.nn.functional.cross_entropy(a.float(), y,
                                                                          label_smoothing=o.label_smoothing)
        value = loss.item()
        if distributed.any_rank(not math.isfinite(value), self.ctx) and math.isfinite(value):
            value = math.nan   # not finite in another process
        if not math.isfinite(value):
            raise self._not_finite(f"the loss is {value} at step {st['step'] + 1} (epoch {st['epoch'] + 1})")
        self.scaler.scale(loss * (len(y) / n)).backward()
        st["loss_sum"] += value * len(y)
        st["correct"] += int((main.detach().argmax(1) == y).sum())
        st["seen"] += len(y)
        st["images"] += len(y)

    def _forward(self, x):
        """The model on a batch; with --compile, a failure of torch.compile is E112."""
        if not self.o.compile:
            return self.forward(x)
        try:
            return self.forward(x)
        except Exception as e:  # torch.compile's errors come from many places (dynamo, inductor, a C++ compiler)
            raise self._compile_error(e) from None

    def _compile_error(self, e: Exception) -> TrainError:
        return TrainError("E112", f"torch.compile could not compile `{self.graph.network}`: "
                          f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}",
                          hint="train without --compile")

    def _rate(self) -> float:
        st = self.state
        return st["images"] / st["train_s"] if st["train_s"] > 0 else 0.0

    def _evaluate(self, progress, writer) -> None:
        from .data import validate
        st = self.state
        distributed.broadcast_buffers(self.model, self.ctx)
        v = validate(self.evaluator, self.loaders.val, self.device)   # summed over the processes
        sums = distributed.reduce_metrics({k: st[k] for k in _SUMS}, ctx=self.ctx)
        train_s = distributed.reduce_metrics({"train_s": st["train_s"]}, "max", self.ctx)["train_s"]
        epoch = st["step"] / self.steps_per_epoch
        row = {"epoch": int(epoch) if epoch == int(epoch) else round(epoch, 4), "step": st["step"],
               "train_loss": sums["loss_sum"] / max(sums["seen"], 1),
               "train_acc": sums["correct"] / max(sums["seen"], 1),
               "val_loss": v["val_loss"], "val_acc": v["val_acc"], "lr": self.optimizer.param_groups[0]["lr"],
               "images_per_s": round(sums["images"] / train_s if train_s > 0 else 0.0, 1), "wall_s": round(st["wall_s"], 3)}
        self.rows.append(row)
        st["loss_sum"], st["correct"], st["seen"], st["images"], st["train_s"] = 0.0, 0, 0, 0, 0.0
        st["eval_due"] = False
        if v["val_acc"] > st["best_val_acc"]:
            st["best_val_acc"], st["best_epoch"], st["best_step"] = v["val_acc"], row["epoch"], st["step"]
            if self.ctx.main:
                runs.save_weights(self.run_dir / "best.safetensors", self.model)
        if self.ctx.main:
            runs.append_metrics(self.run_dir / "metrics.jsonl", row)
        if writer is not None:
            for k in ("train_loss", "val_loss", "val_acc", "images_per_s", "lr"):
                writer.add_scalar(k, row[k], st["step"])
        progress.evaluated(row, self.total)
        self.model.train()

    def _finish(self) -> TrainResult:
        st = self.state
        history = runs.read_metrics(self.run_dir / "metrics.jsonl") if self.ctx.main else list(self.rows)
        weights = self.run_dir / "weights.safetensors"
        if self.ctx.main:
            runs.save_weights(weights, self.model)
        final = history[-1]["val_acc"] if history else 0.0
        summary = {"network": self.graph.network, "val_acc": final, "best_val_acc": max(st["best_val_acc"], 0.0),
                   "best_epoch": st["best_epoch"], "best_step": st["best_step"], "steps": st["step"],
                   "params": self.totals["params"], "macs": self.totals["macs"], "wall_s": round(st["wall_s"], 3),
                   "argv": self.argv_list(), "seed": self.o.seed, "world_size": self.ctx.world, "data": str(self.loaders.data),
                   "device": str(self.device)}
        if self.ctx.main:
            runs.write_json(self.run_dir / "summary.json", summary)
            try:
                runs.write_curves(self.run_dir / "curves.png", history)
            except (ImportError, RuntimeError, ValueError) as e:
                print(f"note: curves.png not drawn: {e}", file=sys.stderr)
        distributed.barrier(self.ctx)
        return TrainResult(history, final, summary["best_val_acc"], st["best_epoch"], self.run_dir, weights, summary)


def _recheck(graph, classes: int):
    """The graph checked again from its record with ``classes`` set (the classes rule)."""
    from .frontend import check_files
    record = dict(graph.record)
    record["params"] = {**record.get("params", {}), "classes": classes}
    return check_files(record)


# ----------------------------------------------------------------------------- the command

def add_parser(subparsers) -> argparse.ArgumentParser:
    """``archdsl train``: the subcommand and its options (defaults in the module docstring)."""
    from .cli import _common
    p = subparsers.add_parser("train", help="train a spec on the digits (or --data) and keep a run folder",
                              description="Train a spec (on the bundled digits unless --data says otherwise) and keep a run folder: metrics, weights, checkpoints, a concrete spec.arch.")
    _common(p, optional="not with --resume")
    a = p.add_argument
    a("--data", help="digits (default), cifar10:PATH, cifar100:PATH, mnist:PATH or imagefolder:PATH")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=int, metavar="N", help="epochs in the whole run (default 10)")
    g.add_argument("--steps", type=int, metavar="N", help="optimizer steps in the whole run (instead of --epochs)")
    a("--batch", type=int, metavar="N", help="batch size (default 64)")
    a("--lr", type=float, metavar="X", help="learning rate (default 0.05; the peak for onecycle)")
    a("--opt", choices=OPTIMIZERS, help="optimizer (default sgd, momentum 0.9)")
    a("--sched", choices=SCHEDULES, help="learning-rate schedule over the run (default cosine)")
    a("--wd", type=float, metavar="X", help="weight decay (default 5e-4)")
    a("--label-smoothing", type=float, metavar="X", help="label smoothing (default 0)")
    a("--amp", choices=AMP, help="autocast dtype (default none; fp16 needs CUDA)")
    a("--channels-last", action="store_true", default=None, help="channels-last memory format")
    a("--compile", action="store_true", default=None, help="torch.compile the model")
    a("--device", help="cpu, cuda, cuda:N or auto (default: CUDA when there is one)")
    a("--grad-clip", type=float, metavar="X", help="clip the gradient norm to this (default off)")
    a("--grad-accum", type=int, metavar="K", help="batches per optimizer step (default 1)")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    s.add_argument("--seeds", metavar="A,B,...", help="comma-separated seeds: one run per seed, in RUN_DIR/seedN")
    a("--workers", type=int, metavar="N", help="data loader worker processes (default 0)")
    a("--threads", type=int, metavar="N", help="torch's CPU threads (default: torch's; 1 is fastest on a busy machine)")
    a("--eval-every", type=int, metavar="N", help="evaluate every N steps (default: every epoch)")
    a("--ckpt-every", type=int, metavar="N", help="checkpoint every N steps (default: every epoch)")
    a("--aux-weight", type=float, metavar="X", help="weight of each training-only tap's loss (default 0.3)")
    a("--out", metavar="RUN_DIR", help="the run folder (default runs/<network>-<time>)")
    a("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its own options")
    a("--quiet", action="store_true", default=None, help="no progress output")
    distributed.add_options(p)
    return p


_OPTION_FLAGS = ("epochs", "steps", "batch", "lr", "opt", "sched", "wd", "label_smoothing", "amp", "channels_last",
                 "compile", "device", "grad_clip", "grad_accum", "seed", "workers", "threads", "eval_every", "ckpt_every",
                 "aux_weight", "out", "quiet", "sync_bn")


def run(args) -> int:
    """``archdsl train``: 0 trained, 1 a diagnostic, 2 usage, 130 stopped by SIGINT/SIGTERM."""
    if getattr(args, "nproc", None) not in (None, 1):   # torchrun starts N processes that run the rest
        return distributed.launch_command(args, default_batch=Options.batch)
    try:
        return _run(args)
    except distributed.FollowerStop:
        return 1
    except ArchError:
        if distributed.is_main() or distributed.own_problem(args.device):
            raise
        return 1   # the same diagnostic as process 0's, which prints it


def _run(args) -> int:
    from .cli import _usage, check_args
    given = {k: getattr(args, k) for k in _OPTION_FLAGS if getattr(args, k, None) is not None}
    prog = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("")
    ours = prog.name == "archdsl" or (prog.name == "__main__.py" and prog.parent.name == "archdsl")
    argv = ["archdsl", *sys.argv[1:]] if ours and sys.argv[1:2] == ["train"] else None
    try:
        if args.resume:
            if args.file is not None or args.set or args.input or args.network or args.data or args.seeds:
                return _usage("--resume takes the spec and its options from the run folder: give no FILE, "
                              "--set, --input, --network, --data or --seeds with it")
            result = train(resume=args.resume, callback=None, **given)
        else:
            if args.file is None:
                return _usage("train needs a spec FILE (or --resume RUN_DIR)")
            seeds = None
            if args.seeds:
                try:
                    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
                except ValueError:
                    return _usage(f"--seeds takes comma-separated integers, got {args.seeds!r}")
            kwargs = check_args(args)
            result = train(args.file, data=args.data or "digits", seeds=seeds, argv=argv,
                           **{k: v for k, v in kwargs.items() if v is not None}, **given)
    except Interrupted as e:
        if not distributed.is_main():   # process 0 says it
            return 130
        print(f"archdsl: {e.signame}: stopped; the checkpoint is at step {e.step}. "
              f"Continue with: archdsl train --resume {e.run_dir}", file=sys.stderr)
        return 130
    for r in (result if isinstance(result, list) else [result]) if distributed.is_main() else []:
        print(f"{r.run_dir}: val_acc {r.val_acc:.4f} (best {r.best_val_acc:.4f} at epoch {r.best_epoch:g}), "
              f"{r.summary['steps']} steps in {r.summary['wall_s']:.1f} s")
    return 0

