"""Run one command in a fresh child process and measure it: exit status, CPU seconds, peak memory.

    from measure import measure
    got = measure([sys.executable, "-m", "archdsl", "check", "x.arch"], timeout=20)
    assert got.rc == 1 and got.cpu_s < 5 and got.peak_mb < 500

The peak is the child's own maximum resident size, read with ``os.wait4``. Linux keeps
``ru_maxrss`` across ``exec`` and starts a forked child from its parent's resident size,
so a child forked straight from the test process (hundreds of MB with torch imported)
would report at least that. The child is therefore forked from this file run as a small
stand-alone process (``python -S``, about 10 MB), which reports what ``wait4`` said as
JSON. A child that runs past ``timeout`` seconds is killed with its whole process group
and reported with ``timed_out``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve()


@dataclass
class Measured:
    rc: int
    stdout: str
    stderr: str
    cpu_s: float      # user + system CPU of the child and anything it waited for
    peak_mb: float    # the child's peak resident size
    wall_s: float
    timed_out: bool


def measure(argv: list[str], *, stdin: bytes | None = None, timeout: float = 60, cwd=None, env=None) -> Measured:
    """Run ``argv`` in a fresh process (see the module docstring) and measure it."""
    request = json.dumps({"argv": [str(a) for a in argv], "timeout": timeout, "cwd": str(cwd) if cwd else None})
    proc = subprocess.run([sys.executable, "-S", str(HERE), request], input=stdin or b"", capture_output=True,
                          timeout=timeout + 30, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"measure.py failed: {proc.stderr.decode(errors='replace')}")
    got = json.loads(proc.stdout)
    return Measured(**got)


def _child(request: dict) -> dict:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: its own process group, stdin inherited, stdout and stderr to the pipes
        try:
            os.setpgid(0, 0)
            if request["cwd"]:
                os.chdir(request["cwd"])
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.execvp(request["argv"][0], request["argv"])
        finally:
            os._exit(127)
    os.close(out_w)
    os.close(err_w)
    chunks = {out_r: [], err_r: []}
    timed_out = False
    deadline = start + request["timeout"]
    import selectors
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    while sel.get_map():
        left = deadline - time.perf_counter()
        if left <= 0:
            timed_out = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        for key, _ in sel.select(timeout=min(left, 1.0)):
            data = os.read(key.fd, 1 << 16)
            if data:
                chunks[key.fd].append(data)
            else:
                sel.unregister(key.fd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    try:
        os.killpg(pid, signal.SIGKILL)  # anything the child left behind in its group
    except (ProcessLookupError, PermissionError):
        pass
    rc = os.waitstatus_to_exitcode(status)
    return {"rc": rc, "stdout": b"".join(chunks[out_r]).decode("utf-8", "replace"),
            "stderr": b"".join(chunks[err_r]).decode("utf-8", "replace"),
            "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024, "wall_s": wall,
            "timed_out": timed_out}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
