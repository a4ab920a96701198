"""Training in several processes: ``torchrun -m archdsl train`` and ``archdsl train --nproc N``.

A composition module beside ``archdsl.training``: the training loop calls it, and it knows nothing
of specs beyond the IR's node table (:func:`unused_parameters`). Plain ``torch.distributed``,
launched by torchrun: torchrun already does the hard part (rendezvous, one process per GPU,
restarts, several machines), so archdsl adds no launcher of its own, only the shortcut
``--nproc N``, which runs torchrun with the same interpreter.

What a process does under torchrun (``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its
environment, :func:`launched`):

* :func:`init` joins the process group: NCCL when the process trains on a GPU (the GPU of its
  local rank), gloo on the CPU. Without torchrun it is a one-process context and nothing is
  initialised, so the same loop serves both;
* the model is wrapped in ``DistributedDataParallel`` (:func:`wrap`), which averages the
  gradients over the processes; ``--sync-bn`` turns BatchNorm layers into SyncBatchNorm first
  (CUDA only: on the CPU it is E117);
* ``--batch`` is the global batch: each process loads ``batch / world`` of it (not a multiple:
  E118, :func:`per_process_batch`), through ``archdsl.data``'s sampler (the sample order rule
  below);
* process 0 alone writes the run folder and prints the progress (:func:`is_main`); evaluation
  sums every process's counts (:func:`reduce_metrics`), so all processes hold the same numbers;
* decisions that end the loop (a signal, a loss that is not finite) are taken together
  (:func:`any_rank`), so no process waits forever in a collective another one left;
* :func:`cleanup` leaves the process group at the end of a run and on errors.

The sample order rule (implemented by ``archdsl.data.Batches``): the training order of epoch
``e`` is the permutation ``P`` of a DistributedSampler with seed ``seed + e`` and ``drop_last``;
with ``W`` processes and a global batch ``B = W * b``, process ``r`` takes ``P[r::W]`` (its
first ``n // W`` entries), cut into batches of ``b``. Step ``k`` of process ``r`` is therefore
``P[k*B + r + W*j]`` for ``j < b``, and the ``W`` processes together see ``P[k*B : (k+1)*B]``:
exactly the batch ``k`` of one process with batch ``B``. Since every process has the same
per-process batch and the loss is a mean over it, DDP's average of the processes' gradients is
the gradient of the mean loss over the global batch: one process and ``W`` processes take the
same steps, up to the rounding of sums in another order. Except with BatchNorm, which
normalises with each process's own ``b`` samples (see docs: ``--sync-bn``).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ArchError

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class DistributedError(ArchError):
    """An option that does not fit training in several processes."""


class FollowerStop(Exception):
    """A process other than 0 stops because process 0 failed (process 0 says why)."""


# ----------------------------------------------------------------------------- the context

@dataclass
class Context:
    """Where this process stands: its rank among ``world`` processes, its device, and the
    process group's backend (None for one process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: object = None
    backend: str | None = None
    owned: bool = False        # this module initialised the process group (and ends it)

    @property
    def main(self) -> bool:
        """Process 0: the one that writes the run folder and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Several processes, gradients averaged between them."""
        return self.world > 1

    @property
    def distributed(self):
        """``(rank, world)`` for ``archdsl.data.make_loaders``, None for one process."""
        return (self.rank, self.world) if self.active else None


_CURRENT: Context | None = None


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(os.environ.get(k, "").strip() for k in ENV[:2])


def env_ranks() -> tuple[int, int, int]:
    """``(rank, world, local_rank)`` from the environment; ``(0, 1, 0)`` outside torchrun."""
    if not launched():
        return 0, 1, 0
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them), got "
                         + ", ".join(f"{k}={os.environ.get(k)!r}" for k in ENV)) from None
    return rank, world, local


def current() -> Context:
    """The context :func:`init` made, or the one the environment describes (nothing joined)."""
    if _CURRENT is not None:
        return _CURRENT
    rank, world, local = env_ranks()
    return Context(rank, world, local)


def is_main() -> bool:
    """Whether this process writes and prints: process 0, or the only one."""
    return current().main


def world_size() -> int:
    return current().world


def device_for(option=None, local_rank: int | None = None, world: int | None = None):
    """The device of a process: ``--device`` as one process reads it (None or ``auto``: CUDA
    when there is one); under torchrun ``cuda`` is the GPU of the local rank, and naming one
    GPU (``cuda:1``) is a mistake, since every process would take it. ValueError: usage.
    The rank and world default to the environment's."""
    import torch

    from .data import resolve_device
    if local_rank is None or world is None:
        _, world, local_rank = env_ranks()
    device = resolve_device(option)
    if world == 1 or device.type != "cuda":
        return device
    if device.index is not None:
        raise ValueError(f"--device {option}: under torchrun each process takes the GPU of its local rank; "
                         "give --device cuda (or leave it out)")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                         "start at most that many processes per machine (--nproc-per-node)")
    return torch.device("cuda", local_rank)


def init(device=None) -> Context:
    """Join the process group when torchrun started this process (NCCL on a GPU, gloo on the
    CPU) and return the :class:`Context`; one process: nothing is initialised. ``device`` is
    the ``--device`` option. Calling it again returns the same context; a process group the
    caller initialised itself is used as it is (and left to the caller to end)."""
    global _CURRENT
    import torch
    import torch.distributed as dist
    if _CURRENT is not None:
        return _CURRENT
    rank, world, local = env_ranks()
    dev = device_for(device, local, world)
    if world == 1 or not dist.is_available():
        _CURRENT = Context(0, 1, 0, dev)
        return _CURRENT
    if dist.is_initialized():
        _CURRENT = Context(dist.get_rank(), dist.get_world_size(), local, dev, dist.get_backend())
        return _CURRENT
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, **({"device_id": dev} if dev.type == "cuda" else {}))
    _CURRENT = Context(dist.get_rank(), dist.get_world_size(), local, dev, backend, owned=True)
    return _CURRENT


def cleanup() -> None:
    """Leave the process group this module joined (at the end of a run, and on errors)."""
    global _CURRENT
    ctx, _CURRENT = _CURRENT, None
    if ctx is not None and ctx.owned:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def scope():
    """``with scope():`` a run that may :func:`init`: the process group it joined is left when
    the block ends, however it ends (one the caller joined before stays)."""
    was = _CURRENT
    try:
        yield
    finally:
        if was is None:
            cleanup()


@contextlib.contextmanager
def session(device=None):
    """``with session(device) as ctx``: :func:`init` within a :func:`scope`."""
    with scope():
        yield init(device)


# ----------------------------------------------------------------------------- options

def per_process_batch(batch: int, world: int) -> int:
    """The batch of one process: ``--batch`` is the global batch, shared equally (E118)."""
    if world > 1 and batch % world:
        low, high = batch - batch % world, batch - batch % world + world
        raise DistributedError("E118", f"the batch of {batch} cannot be shared by {world} processes: "
                               f"--batch is the global batch, and each process takes batch / {world}",
                               notes=[f"{world} processes can share a batch of {low or world} or {high}"],
                               hint=f"give --batch a multiple of {world}, e.g. --batch {low or high}")
    return batch // world


def check_sync_bn(sync_bn: bool, device) -> None:
    """``--sync-bn`` needs CUDA: torch's SyncBatchNorm has no CPU kernel (E117)."""
    import torch
    if sync_bn and torch.device(device).type != "cuda":
        raise DistributedError("E117", f"--sync-bn needs CUDA: SyncBatchNorm has no CPU implementation "
                               f"(this run trains on {torch.device(device).type})",
                               notes=["without it each process normalises with its own part of the batch, "
                                      "so N processes train a slightly different model than one"],
                               hint="train on GPUs (--device cuda) for --sync-bn, or leave it out on the CPU")


def check_launch(nproc, batch: int, sync_bn: bool, device) -> None:
    """What ``--nproc N`` can refuse before starting any process (E117, E118; ValueError: usage)."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ValueError(f"--nproc takes a positive number of processes, got {nproc!r}")
    if launched():
        raise ValueError("--nproc starts torchrun, and this process already runs under it: leave --nproc out")
    import torch

    from .data import resolve_device
    dev = resolve_device(device)
    if dev.type == "cuda" and nproc > torch.cuda.device_count():
        raise ValueError(f"--nproc {nproc}: this machine has {torch.cuda.device_count()} GPU(s), one per process; "
                         f"start at most {torch.cuda.device_count()}, or train on the CPU with --device cpu")
    if dev.type == "cuda" and dev.index is not None:
        raise ValueError(f"--device {device}: with --nproc each process takes the GPU of its rank; give --device cuda")
    per_process_batch(batch, nproc)
    if sync_bn:
        check_sync_bn(True, dev)


def own_problem(device) -> bool:
    """Whether this process, not every one, has a problem: its local rank has no GPU. Process 0
    prints the diagnostics every process meets alike; the others print only those."""
    try:
        device_for(device)
    except ValueError:
        return True
    return False


# ----------------------------------------------------------------------------- the model

def unused_parameters(graph) -> bool:
    """Whether some parameters of the compiled network take no part in its training loss:
    those of nodes that feed no output. Every output counts, the training-only taps too (the
    loop turns each into an auxiliary loss, weighted even when the weight is 0), so DDP's
    slower search for unused parameters (``find_unused_parameters``) is needed only then.
    Stochastic depth and drop-path multiply by a mask: their parameters always have a gradient."""
    seen, todo = set(), [o.node for o in graph.outputs]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += graph.args(n)
    return any(graph.node(n).get("params") for n in graph.nodes() if n not in seen)


def convert_sync_bn(model, device):
    """BatchNorm layers as SyncBatchNorm (E117 off CUDA). The parameters are the same objects,
    and the state dict keeps its keys."""
    import torch
    check_sync_bn(True, device)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap(model, ctx: Context | None = None, *, find_unused: bool = False):
    """The module the loop calls forward on: ``DistributedDataParallel(model)`` with several
    processes, the model itself with one. ``model`` stays the one to save and load."""
    ctx = ctx or current()
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP
    ids = [ctx.device.index] if ctx.device is not None and ctx.device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)


def unwrap(module):
    """The model inside DDP (or inside ``torch.compile``)."""
    module = getattr(module, "_orig_mod", module)
    return getattr(module, "module", module) if type(module).__name__ == "DistributedDataParallel" else module


def no_sync(forward, last: bool):
    """The context of one backward of an accumulated step: DDP keeps the gradients local
    (``no_sync``) until the last batch of the step."""
    inner = getattr(forward, "_orig_mod", forward)
    if last or not hasattr(inner, "no_sync"):
        return contextlib.nullcontext()
    return inner.no_sync()


def broadcast_buffers(model, ctx: Context | None = None) -> None:
    """Process 0's buffers (BatchNorm's running statistics) to every process, so all evaluate
    and save the same model (DDP does so at each training forward, not after the last)."""
    ctx = ctx or current()
    if not ctx.active:
        return
    import torch.distributed as dist
    for b in model.buffers():
        dist.broadcast(b.data, 0)


# ----------------------------------------------------------------------------- collectives

def reduce_metrics(values: dict, op: str = "sum", ctx: Context | None = None) -> dict:
    """``values`` (numbers) summed (or their ``max``) over the processes, in float64; the same
    dict with one process. Every process must call it with the same keys, in the same order."""
    ctx = ctx or current()
    if not ctx.active:
        return dict(values)
    import torch
    import torch.distributed as dist
    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    out = dict(zip(keys, t.tolist()))
    return {k: int(out[k]) if isinstance(values[k], int) and not isinstance(values[k], bool) and op == "sum"
            else out[k] for k in keys}


def any_rank(flag: bool, ctx: Context | None = None) -> bool:
    """Whether ``flag`` holds in some process: a decision every process takes together."""
    ctx = ctx or current()
    if not ctx.active:
        return bool(flag)
    return reduce_metrics({"flag": 1.0 if flag else 0.0}, "max", ctx)["flag"] > 0


def barrier(ctx: Context | None = None) -> None:
    ctx = ctx or current()
    if ctx.active:
        import torch.distributed as dist
        dist.barrier()


def main_first(fn, ctx: Context | None = None):
    """Run ``fn`` in process 0 only (making the run folder) and give every process its result
    (which must pickle), or its failure: process 0 raises its error, the others
    :class:`FollowerStop`. With one process, ``fn()``."""
    ctx = ctx or current()
    if not ctx.active:
        return fn()
    import torch.distributed as dist
    message, error = [None], None
    if ctx.main:
        try:
            message = [("ok", fn())]
        except Exception as e:  # re-raised below, once every process knows
            error, message = e, [("failed", None)]
    dist.broadcast_object_list(message, 0, device=ctx.device if ctx.backend == "nccl" else None)
    status, result = message[0]
    if error is not None:
        raise error
    if status != "ok":
        raise FollowerStop("process 0 failed")
    return result


# ----------------------------------------------------------------------------- --nproc N

def add_options(parser) -> None:
    """``--nproc N`` and ``--sync-bn``, the options of ``archdsl train`` this module reads."""
    parser.add_argument("--nproc", type=int, metavar="N",
                        help="train in N processes on this machine (starts torchrun --standalone; one per GPU)")
    parser.add_argument("--sync-bn", action="store_true", default=None,
                        help="BatchNorm statistics over every process's part of the batch (CUDA only)")


def command_argv(args, command: str = "train", positional: str = "file",
                 skip=("command", "stdin", "nproc", "plugin")) -> list[str]:
    """The command line a parsed ``args`` came from, as ``--name=value`` options (a value may
    start with ``-``), without ``skip``: what the processes of ``--nproc`` run. Every option's
    destination is its flag (``label_smoothing`` is ``--label-smoothing``); lists repeat it."""
    out = [command]
    first = getattr(args, positional, None)
    tail = []
    if first is not None:
        (tail if str(first).startswith("-") else out).append(str(first))
    for key, value in vars(args).items():
        if key == positional or key in skip or key.startswith("_") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        for v in value if isinstance(value, list) else [value]:
            out.append(flag if v is True else f"{flag}={v}")
    return out + (["--", *tail] if tail else [])


def launch_command(args, default_batch: int = 64) -> int:
    """``archdsl train --nproc N ...`` (N > 1): refuse here what every process would refuse alike
    (the spec, the data folder, the batch, ``--sync-bn`` off CUDA), then :func:`launch`."""
    from .cli import _usage, check_args
    if getattr(args, "stdin", False):
        return _usage("--nproc starts new processes, which cannot read the spec from standard input: "
                      "save it in a file")
    if args.file is None and not args.resume:
        return _usage("train needs a spec FILE (or --resume RUN_DIR)")
    try:
        check_launch(args.nproc, args.batch or default_batch, bool(args.sync_bn), args.device)
    except ValueError as e:
        return _usage(str(e))
    if not args.resume:
        from .data import parse_data
        from .frontend import check
        check(args.file, **check_args(args))
        parse_data(args.data)
    return launch(command_argv(args), args.nproc)


def plugin_names() -> list[str]:
    from .extern import plugin_args
    return plugin_args()


def launch(argv: list[str], nproc: int, *, env: dict | None = None) -> int:
    """``archdsl train --nproc N``: run ``torchrun --standalone --nproc-per-node N -m archdsl
    ARGV`` with this interpreter (``python -m torch.distributed.run``'s own ``main``, in a child
    process), the loaded ``--plugin`` modules forwarded, and return its exit status.

    ``argv`` is the command without ``--nproc`` (``["train", "my.arch", "--steps", "20"]``).
    The standalone rendezvous listens on a free port of this machine. The child runs in its own
    process group, so one Ctrl-C reaches the workers once (through torchrun): they write a
    checkpoint and stop, and the status is 130. Each process gets ``OMP_NUM_THREADS`` = the
    CPU count divided by N unless it is set."""
    argv = [*argv, *plugin_names()]
    package = str(Path(__file__).resolve().parent.parent)
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join([package, *filter(None, [child_env.get("PYTHONPATH")])])
    child_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = [sys.executable, "-c", "import sys; from archdsl.distributed import _agent; sys.exit(_agent(sys.argv[1:]))",
           "--standalone", f"--nproc-per-node={nproc}", "-m", "archdsl", *argv]
    proc = subprocess.Popen(cmd, env=child_env, start_new_session=True)
    forwarded = {}

    def forward(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    import threading
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            forwarded[s] = signal.signal(s, forward)
    try:
        while True:
            try:
                return _status(proc.wait())
            except KeyboardInterrupt:   # a handler left to the default: pass it on, keep waiting
                forward(signal.SIGINT, None)
    finally:
        for s, h in forwarded.items():
            signal.signal(s, h)


def _status(code: int) -> int:
    """A child's exit status as a shell shows it (killed by signal N: 128 + N)."""
    return 128 - code if code < 0 else code


def _agent(args: list[str]) -> int:
    """torchrun's ``main`` (in the child :func:`launch` starts), its error report replaced by a
    line: a worker that exits 1 has printed its diagnostic, and torchrun's own traceback of
    the failure would add nothing but noise."""
    import logging
    logging.disable(logging.ERROR)   # torchrun's per-worker warnings ("Sending process ... SIGTERM")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main
    try:
        main(args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        code = _status(failure.exitcode)
        if code not in (1, 2, 130):
            print(f"archdsl: error: the training process of rank {rank} "
                  + (f"was killed by signal {code - 128}" if code > 128 else f"exited with status {code}"),
                  file=sys.stderr)
        return code
    except SignalException:   # SIGINT or SIGTERM: torchrun passed it on, the workers checkpointed
        return 130
    except KeyboardInterrupt:
        return 130
    return 0
