"""The one output writer: every command that writes a file (compile, render, summary -o, chart)
goes through :func:`write_atomic`, so ``-o`` means the same everywhere.

What the path names decides how it is written:

- a regular file or a new path: atomically (a temporary file in the same folder, ``fsync``,
  rename), so an error never leaves a truncated output and an existing output is only
  replaced by a complete new one; an existing file keeps its permissions;
- a symlink: followed to its final target, which is replaced the same way with the temporary
  file in the *target's* folder (a rename there is atomic); the link itself is never replaced;
- a FIFO or a character device (a pipe, a terminal, ``/dev/null``): written straight through.
  Renaming over them would turn the node into a regular file (as root, ``-o /dev/full``
  used to replace the device);
- ``-``: standard output; :func:`data_on_stdout` keeps the command's own messages off it;
- a directory, a socket, a block device: refused, nothing written.

Every ``OSError`` raised names the path the user gave (never a temporary file), so the CLI
can say ``cannot write OUT: reason``. Opening a FIFO for writing waits for a reader, as a
shell redirection does.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
import tempfile
from pathlib import Path

_DATA_STREAMS: list = []  # the real standard output while data_on_stdout() routes messages to stderr


@contextlib.contextmanager
def data_on_stdout():
    """For ``-o -``: standard output carries the written data alone; whatever the command prints
    meanwhile (``wrote ...``) goes to standard error."""
    _DATA_STREAMS.append(sys.stdout)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = _DATA_STREAMS.pop()


def output_name(path) -> str:
    """How a message names an output: ``-`` is standard output."""
    return "standard output" if os.fspath(path) == "-" else os.fspath(path)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` as the module docstring describes; returns ``path``."""
    shown = os.fspath(path)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        if shown == "-":
            _write_stdout(raw)
            return Path(shown)
        target = Path(os.path.realpath(shown))  # every symlink followed, relative ones from their folder
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            st = None
        if st is None or stat.S_ISREG(st.st_mode):
            _replace(target, raw, st)
        elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            _write_through(target, raw)
        elif stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        elif stat.S_ISLNK(st.st_mode):  # realpath gives up on a loop
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        else:
            raise OSError(errno.EINVAL, "not a regular file, FIFO or character device")
    except OSError as e:
        e.filename, e.filename2 = "standard output" if shown == "-" else shown, None
        raise
    return Path(shown)


def _replace(target: Path, data: bytes, old: os.stat_result | None) -> None:
    """A temporary file beside ``target``, synced, then renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write_through(target: Path, data: bytes) -> None:
    """Open an existing FIFO or character device for writing (never creating anything) and write."""
    fd = os.open(target, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):  # swapped for something else meanwhile
            raise OSError(errno.EAGAIN, "changed while it was opened; nothing written")
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_stdout(data: bytes) -> None:
    """Standard output (the real one while data_on_stdout() is active), unbuffered where it has a
    descriptor, so a failed write (a full disk) leaves nothing behind for Python to retry at exit."""
    stream = _DATA_STREAMS[-1] if _DATA_STREAMS else sys.stdout
    stream.flush()
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):  # an in-memory stream (tests, notebooks)
        fd = None
    if fd is not None:
        _write_all(fd, data)
    elif hasattr(stream, "buffer"):
        stream.buffer.write(data)
        stream.buffer.flush()
    else:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask
