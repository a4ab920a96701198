"""Issue 10, items 7 and 14: what ``-o`` writes to, and how large a drawing may get.

Item 7: one writer (archdsl.files.write_atomic) for every command. Over a regular file or a
new path it writes atomically; a FIFO or a character device is written straight through and
stays what it was; a symlink's target is replaced and the link stays a link; a directory is
refused by name; ``-o -`` is standard output. Tests never name a node under /dev: the FIFO
and the character device (/dev/full's numbers, as root only) are made in tmp_path.

Item 14: a drawing is bounded before Graphviz runs (dense connections bundled, else E091),
and dot runs under a time and a memory limit in a process group of its own (E092, E093);
fake ``dot`` programs on PATH stand for a dot that hangs or runs out of memory.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import archdsl
from archdsl import files
from archdsl.cli import main
from archdsl import render

from measure import measure

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a character device needs root")

PLAIN = {k: v for k, v in os.environ.items() if k != "ARCHDSL_LINT"}  # the command as users run it, unlinted
SPEC = "network t() {\n    input image: [3, 8, 8]\n    conv(4, 3) -> relu -> global_avgpool -> flatten -> linear(2)\n}\n"


def dense(layers: int) -> str:
    return f"network d() {{\n    input x: [1, 4, 4]\n    dense {{ for j in range({layers}) {{ conv(1, 1) }} }}\n}}\n"


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "t.arch"
    path.write_text(SPEC)
    return path


def leftovers(*folders) -> list[str]:
    """Temporary files the writer left behind."""
    return [p.name for folder in folders for p in Path(folder).iterdir() if p.name.endswith(".tmp")]


class Drain(threading.Thread):
    """Reads a FIFO to its end in the background, as another program would."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.data = path, None
        self.start()

    def run(self):
        with open(self.path, "rb") as f:
            self.data = f.read()


# ----------------------------------------------------------------------------- item 7: special files

def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path, spec, capsys):
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    reader = Drain(fifo)
    assert main(["summary", str(spec), "--format", "csv", "-o", str(fifo)]) == 0
    reader.join(10)
    assert reader.data.decode().startswith("name,") and "linear" in reader.data.decode()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmp_path) == []


def test_compile_into_a_fifo(tmp_path, spec):
    fifo = tmp_path / "model.py"
    os.mkfifo(fifo)
    reader = Drain(fifo)
    assert main(["compile", str(spec), "-o", str(fifo)]) == 0
    reader.join(10)
    compile(reader.data.decode(), "model.py", "exec")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and leftovers(tmp_path) == []


def chardev(path: Path, minor: int) -> Path:
    """A character device with the numbers of /dev/full (1, 7) or /dev/null (1, 3), made in tmp_path."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("this container may not make device nodes")
    return path


@as_root
def test_a_full_character_device_is_a_clean_error_and_stays_a_device(tmp_path, spec, capsys):
    full = chardev(tmp_path / "full", 7)
    assert main(["compile", str(spec), "-o", str(full)]) == 2
    err = capsys.readouterr().err
    assert err == f"archdsl: error: cannot write {full}: No space left on device\n"
    assert stat.S_ISCHR(os.lstat(full).st_mode) and os.lstat(full).st_rdev == os.makedev(1, 7)
    assert leftovers(tmp_path) == []


@as_root
def test_a_null_character_device_takes_the_output(tmp_path, spec, capsys):
    null = chardev(tmp_path / "null", 3)
    for argv in (["compile", str(spec), "-o", str(null)], ["summary", str(spec), "-o", str(null)]):
        assert main(argv) == 0
        assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert leftovers(tmp_path) == []


@as_root
def test_standard_output_on_a_full_device(tmp_path, spec):
    """`-o -` with stdout on a full device: a message, exit 2, and nothing printed at exit."""
    full = chardev(tmp_path / "full", 7)
    with open(full, "wb") as out:
        proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "summary", str(spec), "-o", "-"],
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "archdsl: error: cannot write standard output: No space left on device\n"


def test_a_symlink_keeps_being_a_link_and_its_target_is_replaced(tmp_path, spec):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    target = there / "model.py"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    link = here / "model.py"
    link.symlink_to(os.path.relpath(target, here))
    hop = here / "hop.py"  # a chain of links: the last target is what gets replaced
    hop.symlink_to("model.py")
    for path in (link, hop):
        assert main(["compile", str(spec), "-o", str(path)]) == 0
        assert path.is_symlink() and os.readlink(link) == os.path.relpath(target, here)
        assert target.read_text().startswith('"""t:') and not target.is_symlink()
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o600  # the existing file's permissions are kept
    assert leftovers(here, there) == []


def test_a_dangling_symlink_gets_its_target_made(tmp_path, spec):
    link = tmp_path / "out.csv"
    link.symlink_to(tmp_path / "made" / "out.csv")
    assert main(["summary", str(spec), "--format", "csv", "-o", str(link)]) == 0
    assert link.is_symlink() and (tmp_path / "made" / "out.csv").read_text().startswith("name,")


def test_a_symlink_loop_is_refused(tmp_path, spec, capsys):
    loop = tmp_path / "a.py"
    loop.symlink_to("b.py")
    (tmp_path / "b.py").symlink_to("a.py")
    assert main(["compile", str(spec), "-o", str(loop)]) == 2
    assert capsys.readouterr().err.startswith(f"archdsl: error: cannot write {loop}: ")
    assert loop.is_symlink() and leftovers(tmp_path) == []


def test_a_directory_target_is_named_and_left_alone(tmp_path, spec, capsys):
    for command, name in (("compile", "out"), ("render", "out.dot")):
        folder = tmp_path / name
        folder.mkdir()
        assert main([command, str(spec), "-o", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err == f"archdsl: error: cannot write {folder}: Is a directory\n"
        assert folder.is_dir() and list(folder.iterdir()) == []
    assert leftovers(tmp_path) == []


def test_a_write_error_has_one_colon_and_names_the_output(tmp_path, spec, monkeypatch, capsys):
    out = tmp_path / "model.py"
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EFBIG, "File too large")))
    assert main(["compile", str(spec), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"archdsl: error: cannot write {out}: File too large\n"
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_new_file_follows_the_umask(tmp_path, spec):
    old = os.umask(0o027)
    try:
        assert main(["summary", str(spec), "-o", str(tmp_path / "s.txt")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "s.txt").st_mode) == 0o640


# ----------------------------------------------------------------------------- item 7: -o -

def test_compile_to_standard_output(spec, capsys):
    assert main(["compile", str(spec), "-o", "-"]) == 0
    out, err = capsys.readouterr()
    namespace = {}
    exec(compile(out, "model.py", "exec"), namespace)
    assert sorted(namespace["T"]().state_dict()) == sorted(archdsl.load(spec).state_dict())
    assert "wrote" in err  # the command's own message stays off the data


def test_summary_to_standard_output_in_a_process(spec):
    proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "summary", str(spec), "--format", "csv", "-o", "-"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("name,") and proc.stderr == ""


@needs_dot
def test_render_to_standard_output(spec, capsysbinary):
    assert main(["render", str(spec), "-o", "-", "--format", "dot"]) == 0
    assert capsysbinary.readouterr().out == render(spec).dot.encode()
    proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "render", str(spec), "-o", "-", "--format", "svg"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == b""
    assert ET.fromstring(proc.stdout).tag.endswith("svg")


def test_render_to_standard_output_needs_a_format(spec, tmp_path, capsys):
    assert main(["render", str(spec), "-o", "-"]) == 2
    assert "--format svg|png|pdf|dot" in capsys.readouterr().err
    assert main(["render", str(spec), "-o", str(tmp_path / "drawing"), "--format", "dot"]) == 0
    assert (tmp_path / "drawing").read_text().startswith("digraph")


# ----------------------------------------------------------------------------- item 14: bounding the drawing

DENSE_EDGE = 'color="#4393c3" constraint=false style=dashed'


def dense_joins(graph) -> int:
    """The dense connections the IR has: each concat's inputs but its latest."""
    return sum(len(graph.args(n)) - 1 for n in graph.nodes() if graph.node(n)["op"] == "concat")


def test_a_small_dense_block_is_drawn_edge_by_edge():
    """4 layers: far under the bounds, so every dense connection is its own dashed edge, as before."""
    graph = archdsl.check(dense(4), text=True)
    dot = render(graph).dot
    assert dot == render(graph, max_edges=10**9, max_nodes=10**9).dot
    assert "dense ×" not in dot and dot.count(DENSE_EDGE) == dense_joins(graph) == 10


def test_over_the_edge_bound_dense_links_are_bundled():
    graph = archdsl.check(dense(12), text=True)
    dot = render(graph, max_edges=40).dot
    assert dot.count(DENSE_EDGE) == 1  # only the first concat, with one dense input, keeps its own edge
    markers = re.findall(r'^\t(dn\d+) \[label="dense ×(\d+)"', dot, re.M)
    assert [int(k) for _, k in markers] == list(range(2, 13))
    for marker, _ in markers:  # one edge from each marker, into its concat
        assert len(re.findall(rf"^\t{marker} -> {marker[1:]} \[", dot, re.M)) == 1
    assert dot.count(" -> ") <= 40 and "dense connection" in dot  # the legend still explains them


def test_the_150_layer_dense_block_renders_bundled_in_bounds(tmp_path):
    """The attack of item 14: 11,626 edges took dot past 3.6 GB. Measured with dot's own CPU and memory."""
    spec = tmp_path / "dense.arch"
    spec.write_text(dense(150))
    out = tmp_path / ("d.svg" if shutil.which("dot") else "d.dot")
    got = measure([sys.executable, "-m", "archdsl.cli", "render", str(spec), "-o", str(out)], timeout=60, env=PLAIN)
    print(f"[measured] render dense 150: {got.cpu_s:.2f} s CPU, {got.peak_mb:.0f} MB peak, {got.wall_s:.2f} s wall")
    assert got.rc == 0 and got.stderr == "" and not got.timed_out
    assert got.cpu_s < 5 and got.peak_mb < 500
    dot = render(spec).dot
    assert dot.count("dense ×") == 149 and dot.count(" -> ") < 500
    if out.suffix == ".svg":
        assert ET.fromstring(out.read_text()).tag.endswith("svg")
    assert render(spec, max_edges=20_000).dot.count(DENSE_EDGE) == 11_325  # --max-edges raises the bound


def test_a_drawing_still_too_large_stops_with_E091(tmp_path, capsys):
    spec = tmp_path / "long.arch"
    spec.write_text("network long() {\n    input x: [1, 4, 4]\n    conv(1, 1) * 30\n}\n")
    with pytest.raises(archdsl.LimitError) as info:
        render(spec, max_nodes=20)
    e = info.value
    assert e.code == "E091" and (e.span.line, e.span.col) == (1, 1)
    assert "32 nodes" in e.message and "--depth" in e.hint and "fold" in e.hint
    out = tmp_path / "long.svg"
    assert main(["render", str(spec), "-o", str(out), "--max-nodes", "20"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error[E091]") and f"--> {spec}:1:1" in err and not out.exists()
    assert main(["render", str(spec), "-o", str(tmp_path / "long.dot"), "--max-nodes", "40"]) == 0
    assert main(["render", str(spec), "-o", str(out), "--max-nodes", "0"]) == 2


LARGE = {
    "dense 1000": dense(1000),  # 502,500 edges: 3,001 nodes even bundled
    # 9,000 skips to one tensor: finding which join inputs are skips searched the whole chain per join
    "skips 9000": "network s() {\n    input x: [1, 4, 4]\n    x0 = relu\n"
                  "    for i in range(9000) { add { relu; @x0 } }\n}\n",
}


@pytest.mark.parametrize("name", list(LARGE))
def test_a_drawing_far_too_large_is_refused_quickly(tmp_path, name):
    spec = tmp_path / "large.arch"
    spec.write_text(LARGE[name])
    got = measure([sys.executable, "-m", "archdsl.cli", "render", str(spec), "-o", str(tmp_path / "d.svg")],
                  timeout=60, env=PLAIN)
    print(f"[measured] render {name}: {got.cpu_s:.2f} s CPU, {got.peak_mb:.0f} MB peak")
    assert got.rc == 1 and got.stderr.startswith("error[E091]") and "Traceback" not in got.stderr
    assert got.cpu_s < 5 and got.peak_mb < 500 and not (tmp_path / "d.svg").exists()


# ----------------------------------------------------------------------------- item 14: dot under limits

def fake_dot(folder: Path, script: str, monkeypatch) -> Path:
    """A `dot` program first on PATH that runs ``script`` (sh) instead of Graphviz."""
    folder.mkdir(exist_ok=True)
    exe = folder / "dot"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return exe


def running_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` still running (zombies, already dead and waiting for
    whichever init adopted them to reap them, do not count)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat_file.read_text().rsplit(")", 1)[1].split()[:3]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(group) == pgid and state != "Z":
            found.append(int(stat_file.parent.name))
    return found


def test_dot_that_hangs_is_killed_with_its_process_group(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    fake_dot(tmp_path / "bin", f"sleep 300 &\necho $$ $! > {pids}\nwait", monkeypatch)
    start = time.monotonic()
    with pytest.raises(archdsl.LimitError) as info:
        render(SPEC, dot_timeout=1).pipe("svg")
    assert time.monotonic() - start < 10
    e = info.value
    assert e.code == "E092" and "still drawing after 1 s" in e.message and (e.span.line, e.span.col) == (1, 1)
    assert "--depth" in e.hint and "-o x.dot" in e.hint
    leader, child = map(int, pids.read_text().split())
    assert os.getpgid(child) == leader if running_in_group(leader) else True  # the sleep was in dot's group
    deadline = time.monotonic() + 5
    while running_in_group(leader) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_in_group(leader) == []


def test_the_cli_reports_a_dot_time_out(tmp_path, spec, monkeypatch):
    fake_dot(tmp_path / "bin", "exec sleep 300", monkeypatch)
    out = tmp_path / "t.svg"
    proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "render", str(spec), "-o", str(out)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "ARCHDSL_DOT_TIMEOUT": "1"})
    assert proc.returncode == 1 and proc.stderr.startswith("error[E092]") and "Traceback" not in proc.stderr
    assert f"--> {spec}:1:1" in proc.stderr and not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("script, said", [
    ("echo 'out of memory' >&2; exit 1", "it printed `out of memory`"),
    ("echo 'out of memory' >&2; exit 0", "it printed `out of memory`"),  # what Graphviz 2.43 really does
    ("kill -KILL $$", "killed by SIGKILL"),
    ("kill -SEGV $$", "killed by SIGSEGV"),
])
def test_dot_out_of_memory_is_E093(tmp_path, monkeypatch, script, said):
    fake_dot(tmp_path / "bin", script, monkeypatch)
    with pytest.raises(archdsl.LimitError) as info:
        render(SPEC).pipe("svg")
    assert info.value.code == "E093" and said in info.value.message and "2 GB" in info.value.message


def test_dot_over_its_cpu_time_is_E092(tmp_path, monkeypatch):
    fake_dot(tmp_path / "bin", "kill -XCPU $$", monkeypatch)
    with pytest.raises(archdsl.LimitError) as info:
        render(SPEC).pipe("svg")
    assert info.value.code == "E092" and "60 s of CPU time" in info.value.message


def test_dot_runs_with_its_limits_set(tmp_path, monkeypatch):
    """The child's own limits, as the fake dot reads them: address space (KiB) and CPU seconds."""
    fake_dot(tmp_path / "bin", "cat > /dev/null; ulimit -v; ulimit -t", monkeypatch)
    assert render(SPEC).pipe("svg").split() == [b"2097152", b"60"]
    monkeypatch.setenv("ARCHDSL_DOT_TIMEOUT", "7")
    monkeypatch.setenv("ARCHDSL_DOT_MEMORY", str(300 * 1024**2))
    assert render(SPEC).pipe("svg").split() == [b"307200", b"7"]
    assert render(SPEC, dot_timeout=3, dot_memory=1024**3).pipe("svg").split() == [b"1048576", b"3"]


@needs_dot
def test_real_dot_under_a_tiny_memory_limit_is_E093():
    with pytest.raises(archdsl.LimitError) as info:
        render(SPEC, dot_memory=1024**2).pipe("svg")
    assert info.value.code == "E093" and "1 MB" in info.value.message
