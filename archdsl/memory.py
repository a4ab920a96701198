"""Will a network's weights fit? The compiler's memory check, before anything is allocated.

``check_memory`` compares the bytes a graph's parameters and buffers take at a dtype with what
the process can get on the device (``memory_available``: CUDA's free memory; on a CPU the least
of MemAvailable, the cgroup's headroom and what RLIMIT_AS leaves), and refuses (E088) what would
not fit, rather than let torch fail half-way through building the model."""
from __future__ import annotations

import resource

import torch

from .errors import LimitError, Limits
from .ir import ArchGraph

FRACTION = 0.8   # of the memory the process can get, the most the weights may take


def check_memory(graph: ArchGraph, device=None, dtype=None, limits: Limits | None = None) -> None:
    """Refuse (E088) weights that would not fit, before anything is allocated.

    The weights (parameters and buffers) are built on the CPU at torch's default dtype, then
    moved and cast: the CPU must hold the larger of the two sizes when they stay there, the
    device the cast size when they move. Each is compared with ``limits.memory`` bytes when
    that is set (``--limit memory=BYTES``: the user's word replaces the probe), otherwise with
    ``FRACTION`` of what :func:`memory_available` says the process can get there."""
    limits = limits or Limits()
    target = torch.device(device) if device is not None else torch.device("cpu")
    if target.type == "meta":
        return
    elements = graph.total_params + graph.total_buffers
    built = torch.get_default_dtype()
    cast = dtype if isinstance(dtype, torch.dtype) else built
    if target.type == "cpu":
        widest = max(built, cast, key=lambda t: t.itemsize)
        needs = [(target, elements * widest.itemsize, widest)]
    else:
        needs = [(torch.device("cpu"), elements * built.itemsize, built), (target, elements * cast.itemsize, cast)]
    for where, need, what in needs:
        if limits.memory:
            if need > limits.memory:
                _memory_error(graph, need, what, where, f"over the memory limit of {human_bytes(limits.memory)}")
            continue
        avail, source = memory_available(where)
        if avail is not None and need > FRACTION * avail:
            _memory_error(graph, need, what, where, f"more than {FRACTION:.0%} of the {human_bytes(avail)} the "
                          f"process can get on {'the CPU' if where.type == 'cpu' else where} ({source})")


def _largest(graph: ArchGraph) -> int:
    """The node with the most weights, where a diagnostic about their memory points."""
    return max(graph.nodes(), key=lambda n: graph.node(n)["params"] + graph.node(n)["buffers"])


def _memory_error(graph: ArchGraph, need: int, dtype, where, why: str):
    d = graph.node(_largest(graph))
    size = (d["params"] + d["buffers"]) * dtype.itemsize
    err = LimitError("E088", f"the weights need {human_bytes(need)} ({graph.total_params + graph.total_buffers:,} "
                     f"parameters and buffers as {str(dtype).removeprefix('torch.')}), {why}",
                     d["span"], stack=d["stack"], notes=[f"the largest layer, `{d['name']}` ({d['op']}), takes "
                                                         f"{human_bytes(size)}"],
                     hint="build a smaller network, or raise the limit with `--limit memory=BYTES` "
                          "(e.g. memory=64*2**30) if the memory is really there", label="the largest layer")
    err.sources = graph.sources
    raise err


def human_bytes(n: float) -> str:
    """``34359738368`` -> ``32.0 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def memory_available(device) -> tuple[int | None, str]:
    """The bytes this process can still allocate on ``device`` and what says so (None: unknown).
    On the CPU the smallest of ``MemAvailable``, the cgroup's headroom and ``RLIMIT_AS`` less the
    address space in use; on a CUDA device its free memory."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError):   # no such device: moving the model will say so
            return None, "unknown"
        return free, "its free memory"
    if device.type != "cpu":
        return None, "unknown"
    found = [x for x in (_mem_available(), _cgroup_headroom(), _address_space_left()) if x[0] is not None]
    return min(found) if found else (None, "unknown")


def _read(path) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(1 << 16)
    except OSError:
        return None


def _proc_field(text: str | None, key: str) -> int | None:
    """``key:  123 kB`` of a /proc file, in bytes."""
    for line in (text or "").splitlines():
        name, _, value = line.partition(":")
        if name == key and value.split() and value.split()[0].isdigit():
            return int(value.split()[0]) * (1024 if value.strip().endswith("kB") else 1)
    return None


def _mem_available(proc="/proc") -> tuple[int | None, str]:
    return _proc_field(_read(f"{proc}/meminfo"), "MemAvailable"), "MemAvailable in /proc/meminfo"


def _cgroup_headroom(proc="/proc", root="/sys/fs/cgroup") -> tuple[int | None, str]:
    """The smallest ``limit - usage`` of the process's memory cgroup and its ancestors: cgroup v2's
    ``memory.max - memory.current``, else v1's ``memory.limit_in_bytes - memory.usage_in_bytes``."""
    best = (None, "cgroup")
    for line in (_read(f"{proc}/self/cgroup") or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "" and path:        # v2: "0::/path"
            folder, files = root, ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            folder, files = f"{root}/memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        parts = [p for p in path.strip().split("/") if p and p != ".."]
        for depth in range(len(parts), -1, -1):   # the cgroup itself, then each ancestor
            here = "/".join([folder, *parts[:depth]])
            limit, usage = (_read(f"{here}/{name}") for name in files)
            if limit is None or usage is None or not limit.strip().isdigit() or not usage.strip().isdigit():
                continue
            if int(limit) >= 2**60:              # v1 writes "no limit" as a huge number
                continue
            left = max(0, int(limit) - int(usage))
            if best[0] is None or left < best[0]:
                best = (left, f"cgroup {here}/{files[0]}")
    return best


def _address_space_left(proc="/proc") -> tuple[int | None, str]:
    """``RLIMIT_AS`` less the virtual size in use, when the limit is set."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None, "RLIMIT_AS"
    used = _proc_field(_read(f"{proc}/self/status"), "VmSize") or 0
    return max(0, soft - used), "RLIMIT_AS less the address space in use"
