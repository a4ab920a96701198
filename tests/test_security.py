"""No spec runs code, reads outside its folders, or exhausts the machine.

- Python in expressions is refused: the evaluator is closed (its own AST, a fixed set of
  builtins and tensor attributes), and the front end's source calls no eval/exec/import.
- Imports are confined to the main spec's folder tree (plus `--allow-import` roots):
  `..`, absolute paths, file and directory symlinks out, and non-.arch files are refused.
- Resource bombs are refused by a limit, quickly, before they allocate: each is run in a
  fresh process that records its CPU time and peak-memory growth (VmHWM), and the cheap
  ones again in-process under tracemalloc. The numbers are printed (pytest -s) and kept in
  docs/robustness.md.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

import archdsl
from archdsl.errors import ArchError, Limits
from archdsl.values import Expr
from conftest import ROOT, code_of


def net(body: str, blocks: str = "", params: str = "") -> str:
    return f"{blocks}\nnetwork t({params}) {{\n    input x: [3, 32, 32]\n{body}\n}}\n"


# ----------------------------------------------------------------------------- Python in expressions

CANARY = Path("/tmp/archdsl-security-canary")
ATTEMPTS = [
    f'__import__("os").system("touch {CANARY}")',
    "().__class__.__bases__[0].__subclasses__()",
    "().__class__",
    "[].__class__.__mro__",
    "''.join",
    "(1).real",
    "in.__class__",
    "in.shape.__len__",
    "conv.__globals__",
    "range.__self__",
    "len.__call__",
    '"a".upper()',
    'f"{1}"',
    "lambda: 1",
    "lambda x: x",
    'exec("print(1)")',
    'eval("1")',
    'compile("1", "f", "eval")',
    f'open("{CANARY}", "w")',
    "__builtins__",
    "__builtins__['open']",
    "globals()",
    "locals()",
    "vars()",
    "getattr(1, 'real')",
    "type(1)",
    "__name__",
    "__file__",
    "__loader__",
    "os",
    "sys.modules",
    "import os",
    "(x for x in range(3))",  # (a list comprehension `[x for x in range(3)]` is of the language)
    "{x: 1 for x in range(3)}",
    "a := 1",
    "*[1]",
    "**{}",
    "1 if 1",
    "yield 1",
    "await x",
    "@decorator",
    "print('x')",
    "breakpoint()",
    "input()",
    "help()",
    "exit()",
    "`ls`",
    "$(ls)",
    "1; import os",
    "b'bytes'",
    "0x10",
    "1j",
    "...",
    "None",
    "True",
]


@pytest.mark.parametrize("expr", ATTEMPTS)
def test_python_in_expressions_is_refused(expr):
    """In a let, in op arguments, in a label and in --set: a diagnostic, and nothing runs."""
    CANARY.unlink(missing_ok=True)
    where = [net(f"    let a = {expr}\n    relu"), net(f"    conv({expr}, 3)"), net(f"    x{{{expr}}}: relu"),
             net(f"    if {expr} {{ relu }}"), net(f"    relu * ({expr})")]
    for source in where:
        code = code_of(source, text=True)
        assert code in ("E001", "E002", "E010", "E016", "E020", "E032", "E051", "E053", "E054", "E055", "E059"), \
            (expr, code)
    from archdsl.cli import parse_value
    try:
        value = parse_value(expr, "--set")
        assert isinstance(value, str) and value == expr  # a bare word is a string, never evaluated
    except ArchError:
        pass
    try:  # a --set value, read in the spec's scope
        graph = archdsl.check(net("    relu", params="v = 1"), text=True, v=Expr(expr, "--set v"))
        assert graph.params["v"] == expr  # a bare word naming nothing: its string
    except ArchError as e:
        assert e.code in ("E001", "E002", "E010", "E016", "E051", "E053", "E054", "E055"), (expr, e.code)
    assert not CANARY.exists(), "code ran"


COMPREHENSION_ATTEMPTS = [
    ("[x.__class__ for x in [1]]", "E055"),
    ("[x.__dict__ for x in range(2)]", "E055"),
    ("[x.__globals__ for x in [len]]", "E055"),
    ("[c.upper for c in 'abc']", "E055"),
    ("[x for x in len.__self__]", "E055"),
    ("[x for x in (1).__class__.__mro__]", "E055"),
    ("[__import__ for x in [1]]", "E010"),
    ("[getattr(x, 'real') for x in [1]]", "E010"),
    ("[f('x') for f in [print, open]]", "E010"),
    ("[x for x in __builtins__]", "E010"),
    ("[x for x in globals()]", "E010"),
    ("[x() for x in [len]]", "E021"),
    ("[x for x in range(3) for y in x]", "E001"),
    ("[x := 1 for x in [1]]", "E001"),
    ("[x for x.a in [1]]", "E001"),
    ("[x for x[0] in [[1]]]", "E001"),
    ("[*x for x in [[1]]]", "E001"),
    ("[x for x in [1] if x else 0]", "E001"),
    ("[in for in in [1]]", "E001"),
    ("[x for x in in]", "E051"),
    ("[x for x in conv]", "E051"),
]


@pytest.mark.parametrize("expr, code", COMPREHENSION_ATTEMPTS)
def test_a_comprehension_reaches_nothing_python(expr, code):
    """A comprehension evaluates with the language's own closed evaluator: its loop names bind
    values of the language only, and nothing in it reaches a Python object's attributes."""
    CANARY.unlink(missing_ok=True)
    assert code_of(net(f"    let a = {expr}\n    relu"), text=True) == code, expr
    assert not CANARY.exists(), "code ran"


def test_a_comprehension_loop_name_shadows_and_vanishes():
    ok = net("    let x = 5\n    let a = [len for len in [1, 2]]\n    let b = [x for x in [7]]\n"
             "    assert a == [1, 2] and b == [7] and x == 5 and len(a) == 2\n    relu")
    assert code_of(ok, text=True) == "ok"
    assert code_of(net("    let a = [y for y in [1]]\n    let b = y\n    relu"), text=True) == "E010"


def test_attributes_are_the_closed_tensor_set():
    for attr in ("c", "h", "w", "shape", "dims", "numel"):
        assert code_of(net(f"    let a = in.{attr}\n    relu"), text=True) == "ok"
    for attr in ("__class__", "__dict__", "data", "weight", "grad", "device", "size", "view", "real"):
        assert code_of(net(f"    let a = in.{attr}\n    relu"), text=True) == "E055"
    for target in ("1", "1.5", '"s"', "[1]", "(1,)", "{'a': 1}", "true", "none", "conv", "relu", "len", "range(3)"):
        assert code_of(net(f"    let a = ({target}).__class__\n    relu"), text=True) == "E055"


FRONT_END = ["syntax.py", "loader.py", "elaborate.py", "evaluate.py", "naming.py", "values.py", "frontend.py", "errors.py",
             "cli.py"]
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars", "setattr", "delattr",
                   "breakpoint", "input"}
ALLOWED = {("errors.py", "setattr"),  # Limits.of: the name is checked against Limits.FIELDS first
           ("cli.py", "getattr")}    # the subcommand's function, from the constant COMMANDS table
FORBIDDEN_MODULES = {"pickle", "marshal", "shelve", "subprocess", "ctypes", "code", "codeop", "runpy"}


@pytest.mark.parametrize("module", FRONT_END)
def test_front_end_source_never_evaluates_code(module):
    """A static proof: the front end calls no eval/exec/compile/__import__, imports nothing that
    runs code, and every getattr reads a constant attribute name (never one from a spec)."""
    tree = ast.parse((ROOT / "archdsl" / module).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if (module, node.func.id) in ALLOWED:
                continue
            assert node.func.id not in FORBIDDEN_CALLS, f"{module}:{node.lineno} calls {node.func.id}"
            if node.func.id in ("getattr", "hasattr"):
                assert isinstance(node.args[1], ast.Constant), f"{module}:{node.lineno} getattr with a variable name"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                                                   else [])
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{module}:{node.lineno} imports {name}"


def test_builtins_are_a_fixed_table():
    from archdsl.elaborate import BUILTINS
    assert sorted(BUILTINS) == ["abs", "choice", "enumerate", "float", "float_range", "int", "int_range", "len", "list",
                                "max", "min", "range", "round", "sum", "zip"]


# ----------------------------------------------------------------------------- confined imports

@pytest.fixture
def tree(tmp_path):
    """root/ (the main spec's folder) with lib/, and outside/ beside it; links from root to outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "lib").mkdir(parents=True)
    outside.mkdir()
    (root / "lib" / "ok.arch").write_text("block ok() { relu }\n")
    (outside / "evil.arch").write_text("block ok() { relu }\nblock evil() { relu }\n")
    (root / "notes.txt").write_text("block ok() { relu }\n")
    (root / "link.arch").symlink_to(outside / "evil.arch")           # a file symlink out
    (root / "dirlink").symlink_to(outside, target_is_directory=True)  # a directory symlink out
    (root / "inner_link.arch").symlink_to(root / "lib" / "ok.arch")   # a symlink that stays inside
    (root / "loop.arch").symlink_to(root / "loop.arch")
    (root / "dir.arch").mkdir()
    os.mkfifo(root / "fifo.arch")
    return root, outside


def main_with(root: Path, target: str, call: str = "ok()") -> Path:
    path = root / "main.arch"
    path.write_text(f'import "{target}"\n' + net(f"    {call}"))
    return path


@pytest.mark.parametrize("target, code", [
    ("lib/ok.arch", "ok"),
    ("inner_link.arch", "ok"),
    ("../outside/evil.arch", "E071"),
    ("lib/../../outside/evil.arch", "E071"),
    ("ABS/outside/evil.arch", "E071"),
    ("link.arch", "E071"),
    ("dirlink/evil.arch", "E071"),
    ("std/../../../../../../../etc/x.arch", "E071"),
    ("notes.txt", "E073"),
    ("/etc/passwd", "E073"),
    ("/dev/zero", "E073"),
    ("lib/ok.arch.py", "E073"),
    ("missing.arch", "E070"),
    ("dir.arch", "E074"),
    ("fifo.arch", "E074"),
    ("loop.arch", "E070"),
    ("main.arch", "E072"),
    ("lib/\\0.arch", "E070"),
    ("a" * 5000 + ".arch", "E070"),
    ("lib/" * 2000 + "ok.arch", "E070"),
])
def test_import_confinement(tree, target, code):
    root, outside = tree
    target = target.replace("ABS", str(root.parent))
    start = time.perf_counter()
    assert code_of(main_with(root, target)) == code, target
    assert time.perf_counter() - start < 10  # a FIFO is never opened, a device never read


def test_allow_import_admits_another_root(tree):
    root, outside = tree
    path = main_with(root, "../outside/evil.arch", "evil()")
    assert code_of(path) == "E071"
    assert code_of(path, roots=[outside]) == "ok"
    assert code_of(main_with(root, "dirlink/evil.arch", "evil()"), roots=[outside]) == "ok"
    assert code_of(main_with(root, "link.arch", "evil()"), roots=[str(outside)]) == "ok"
    cli = [sys.executable, "-m", "archdsl.cli", "check", "-q", str(path)]
    refused = subprocess.run(cli, capture_output=True, text=True)
    assert refused.returncode == 1 and "error[E071]" in refused.stderr and "--allow-import" in refused.stderr
    allowed = subprocess.run(cli + ["--allow-import", str(outside)], capture_output=True, text=True)
    assert allowed.returncode == 0, allowed.stderr


def test_text_imports_are_confined_to_their_base(tree):
    root, outside = tree
    text = 'import "lib/ok.arch"\n' + net("    ok()")
    assert code_of(text, text=True, base=str(root)) == "ok"
    assert code_of(text, text=True, base=str(outside)) == "E070"
    assert code_of('import "../outside/evil.arch"\n' + net("    evil()"), text=True, base=str(root)) == "E071"


def test_an_imported_file_over_the_source_limit(tree):
    root, _ = tree
    (root / "lib" / "big.arch").write_text("# " + "x" * (Limits().source + 10))
    assert code_of(main_with(root, "lib/big.arch", "relu")) == "E006"


def test_imports_nested_too_deeply(tree):
    root, _ = tree
    for i in range(100):
        (root / f"n{i}.arch").write_text(f'import "n{i + 1}.arch"\n')
    (root / "n100.arch").write_text("block ok() { relu }\n")
    assert code_of(main_with(root, "n0.arch")) == "E086"
    assert code_of(main_with(root, "n0.arch"), limits={"depth": 200}) == "ok"


def test_a_diamond_of_imports_is_not_exponential(tree):
    """30 levels of files that each import the next level twice (via two files)."""
    root, _ = tree
    for i in range(30):
        (root / f"d{i}.arch").write_text(f'import "l{i}.arch"\nimport "r{i}.arch"\n')
        for side in "lr":
            (root / f"{side}{i}.arch").write_text(f'import "d{i + 1}.arch"\nlet {side}{i} = {i}\n')
    (root / "d30.arch").write_text("let deep = 1\nblock ok() { relu }\n")
    path = main_with(root, "d0.arch", "conv(deep * 3, 1) -> ok() -> relu -> relu")
    start = time.thread_time()
    assert code_of(path) == "ok"
    assert time.thread_time() - start < 5


# ----------------------------------------------------------------------------- resource bombs

FRACTAL = "block f(n) { if n > 0 { add { f(n - 1); f(n - 1) } } else { relu } }\n"
BOMBS = {  # name -> (spec, code, CPU seconds at most, MB of memory growth at most)
    "fractal of depth 40 (2**40 ops)": (net("    f(40)", FRACTAL), "E083", 10, 100),
    "fractal of mean joins, depth 40": (net("    f(40)", FRACTAL.replace("add", "mean")), "E087", 10, 100),
    "recursion that makes nothing, 2**40 calls": (
        net("    f(40)\n    relu", "block f(n) { if n > 0 { f(n - 1); f(n - 1) } }\n"), "E087", 10, 100),
    "relu * 10**9": (net("    relu * 10**9"), "E084", 1, 20),
    "conv with 10**12 channels": (net("    conv(10**12, 1)"), "E081", 1, 20),
    "conv with 2**64 channels": (net("    conv(2**64, 1)"), "E056", 1, 20),
    "conv with 10**100 channels": (net("    conv(10**100, 3)"), "E056", 1, 20),
    "for over range(10**9)": (net("    for i in range(10**9) { relu }"), "E057", 1, 20),
    "nested loops, 10**10 iterations": (net("    for i in range(100000) { for j in range(100000) { let k = i } }"),
                                        "E087", 10, 50),
    "string doubling, let s = s + s 100 times": (net("    let s = 'ab'\n    for i in range(100) { let s = s + s }\n"
                                                      "    relu"), "E057", 1, 50),
    "list doubling, 100 times": (net("    let s = [1]\n    for i in range(100) { let s = s + s }\n    relu"),
                                 "E057", 2, 100),
    "nested list [[0] * 10**6] * 10**6": (net("    let a = [[0] * 10**6] * 10**6\n    relu"), "E057", 2, 100),
    "tuple nested 10**6 deep, then hashed": (
        net("    let t = ()\n    for i in range(1000) { for j in range(1000) { let t = (t,) } }\n"
            "    let d = {(t): 1}\n    relu"), "E057", 5, 50),
    "20 billion parameters": (net("    flatten -> linear(10**6) -> linear(20000)"), "E082", 1, 20),
    "string of 10**9": (net("    let s = 'a' * 10**9"), "E057", 1, 20),
    "range of 10**12 through list()": (net("    let s = list(range(10**12))"), "E057", 1, 20),
    "int(1e300) channels": (net("    conv(int(1e300), 1)"), "E056", 1, 20),
    "round(5, -10**12)": (net("    let a = round(5, -10**12)\n    relu"), "ok", 1, 20),
    "1e308 * 10 (inf)": (net("    let a = 1e308 * 10"), "E050", 1, 20),
    "0.0 * 1e400 (inf literal)": (net("    let a = 0.0 * 1e400"), "E050", 1, 20),
    "division by zero": (net("    let a = 1 / 0"), "E052", 1, 20),
    "upsample to 2**40 elements": (net("    upsample(scale=2**18)"), "E081", 1, 20),
    "dense block of 5,000 layers": (net("    dense { for j in range(5000) { conv(1, 1) } }"), "E087", 10, 300),
    "partial application 10**5 deep": (net("    let f = conv\n    for i in range(100000) { let f = f(1) }"),
                                       "E087", 5, 100),
}

PEAK = r"""
def peak_kb():
    # the peak resident size of this process: VmHWM (ru_maxrss would report the forking parent's
    # peak when that is larger: Linux keeps it across exec)
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

DRIVER = r"""
import json, resource, sys, time
import archdsl
""" + PEAK + r"""
spec, kwargs = json.loads(sys.stdin.read())
archdsl.check("network w() {\n    input x: [3, 8, 8]\n    conv(4, 3) -> relu\n}\n", text=True)  # warm up
base = peak_kb()
cpu, wall = time.process_time(), time.perf_counter()
try:
    archdsl.check(spec, text=True, **kwargs)
    code = "ok"
except archdsl.ArchError as e:
    e.render()
    code = e.code
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
grown = (peak_kb() - base) / 1024
print(json.dumps({"code": code, "cpu": cpu, "wall": wall, "mb": grown}))
"""


def in_fresh_process(spec: str, **kwargs) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ARCHDSL_LINT"}
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps([spec, kwargs]), capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", list(BOMBS))
def test_resource_bomb(name):
    spec, code, seconds, megabytes = BOMBS[name]
    got = in_fresh_process(spec)
    print(f"\n[bomb] {name}: {got['code']} in {got['cpu']:.2f} s CPU ({got['wall']:.2f} s wall), "
          f"peak memory +{got['mb']:.0f} MB")
    assert got["code"] == code
    assert got["cpu"] < seconds
    assert got["mb"] < megabytes
    if got["cpu"] < 0.5:  # cheap enough to trace every allocation
        tracemalloc.start()
        try:
            assert code_of(spec, text=True) == code
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
        print(f"[bomb] {name}: tracemalloc peak {peak:.1f} MB")
        assert peak < min(megabytes, 64)


def test_fractal_bomb_time_with_default_limits():
    """The brief's number: the depth-40 fractal is refused by the node limit (20,000 ops)."""
    got = in_fresh_process(BOMBS["fractal of depth 40 (2**40 ops)"][0])
    print(f"\n[bomb] fractal depth 40: {got['cpu']:.2f} s CPU, +{got['mb']:.0f} MB (nodes limit "
          f"{Limits().nodes:,})")
    assert got["code"] == "E083" and got["cpu"] < 10


# ----------------------------------------------------------------------------- every limit: a diagnostic, a way to raise it

LIMITS = {  # limit -> (spec just over the default, its code, the raised limits under which it passes)
    "depth": (net("    r(70)", "block r(n) { if n > 0 { r(n - 1) } else { relu } }\n"), "E085", {"depth": 100}),
    "nodes": (net("    relu * 25000"), "E083", {"nodes": 30_000}),
    "repeat": (net("    for i in range(100001) { }\n    relu"), "E084", {"repeat": 200_000}),
    "params": (net("    flatten -> linear(10**6) -> linear(20000)"), "E082", {"params": 3 * 10**10}),
    "tensor": (net("    upsample(scale=2**14)"), "E081", {"tensor": 2**40}),
    "size": (net("    let a = 2**41\n    relu"), "E056", {"size": 2**50}),
    "sequence": (net("    let a = [0] * 1000001\n    relu"), "E057", {"sequence": 2 * 10**6}),
    "source": (net("    relu") + "#" * 2**20, "E006", {"source": 2**21}),
    "nesting": (net("    let a = " + "[" * 201 + "]" * 201 + "\n    relu"), "E005", {"nesting": 300}),
    "steps": (net("    for i in range(1000) { for j in range(1000) { } }\n    relu"), "E087", {"steps": 3 * 10**6}),
}


def test_every_limit_is_tested():
    # `memory` bounds load, not check: tests/test_hardening_compile.py::test_memory_limit_replaces_the_probe
    assert set(LIMITS) | {"memory"} == set(Limits.FIELDS)


@pytest.mark.parametrize("limit", list(LIMITS))
def test_limit_has_a_diagnostic_and_can_be_raised(limit):
    spec, code, raised = LIMITS[limit]
    with pytest.raises(ArchError) as info:
        archdsl.check(spec, text=True)
    assert info.value.code == code
    assert f"--limit {limit}=N" in (info.value.hint or ""), info.value.render()
    assert code_of(spec, text=True, limits=raised) == "ok"


def test_limits_can_be_raised_from_the_cli(tmp_path):
    path = tmp_path / "s.arch"
    path.write_text(LIMITS["nodes"][0])
    run = lambda *a: subprocess.run([sys.executable, "-m", "archdsl.cli", "check", "-q", str(path), *a],
                                    capture_output=True, text=True)
    assert "error[E083]" in run().stderr
    assert run("--limit", "nodes=30000").returncode == 0
    bad = run("--limit", "nodes=-1")
    assert bad.returncode == 1 and "error[E090]" in bad.stderr


# ----------------------------------------------------------------------------- the parameter limit in archdsl.load

LOAD_DRIVER = r"""
import json, resource, sys, time
import torch
import archdsl, archdsl.compile
""" + PEAK + r"""
spec = sys.stdin.read()
archdsl.loads("network w() {\n    input x: [3, 8, 8]\n    conv(4, 3) -> relu\n}\n", seed=0)  # warm up
base = peak_kb()
out = {}
for how in ("load", "compile_graph"):
    cpu = time.process_time()
    try:
        if how == "load":
            archdsl.loads(spec, seed=0)
        else:  # the IR passes with the limit raised; building the module still refuses at the default
            graph = archdsl.check(spec, text=True, limits={"params": 3 * 10**10})
            archdsl.compile.compile_graph(graph)
        out[how] = "built"
    except archdsl.LimitError as e:
        out[how] = e.code
    out[how + "_cpu"] = time.process_time() - cpu
out["mb"] = (peak_kb() - base) / 1024
print(json.dumps(out))
"""


def test_load_refuses_20_billion_parameters_before_allocating():
    pytest.importorskip("torch")
    pytest.importorskip("archdsl.compile")
    spec = net("    flatten -> linear(10**6) -> linear(20000)")  # 3,072,000,000 + 20,000,000,000 weights
    assert archdsl.check(spec, text=True, limits={"params": 3 * 10**10}).total_params > 2 * 10**10
    env = {k: v for k, v in os.environ.items() if k != "ARCHDSL_LINT"}
    proc = subprocess.run([sys.executable, "-c", LOAD_DRIVER], input=spec, capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    print(f"\n[load] 20 billion parameters: load -> {got['load']} in {got['load_cpu']:.2f} s, compile_graph -> "
          f"{got['compile_graph']} in {got['compile_graph_cpu']:.2f} s, peak memory +{got['mb']:.0f} MB "
          f"(the weights would be 80 GB)")
    assert got["load"] == "E082" and got["compile_graph"] == "E082"
    assert got["load_cpu"] < 2 and got["compile_graph_cpu"] < 2
    assert got["mb"] < 100


# ----------------------------------------------------------------------------- numeric edge cases, at the right span

NUMERIC = [  # statement, code, the text the diagnostic points at
    ("let a = 1 / 0", "E052", "1 / 0"),
    ("let a = 7 // (2 - 2)", "E052", "7 // (2 - 2)"),
    ("let a = 5 % 0", "E052", "5 % 0"),
    ("let a = 0 ** -1", "E052", "0 ** -1"),
    ("conv(0, 3)", "E024", "0"),
    ("conv(-4, 3)", "E024", "-4"),
    ("conv(8, 0)", "E024", "0"),
    ("maxpool(0)", "E024", "0"),
    ("conv(8, 3, stride=0)", "E024", "stride=0"),
    ("conv(8, 3, groups=0)", "E024", "groups=0"),
    ("conv(8, 3, pad=-1)", "E024", "pad=-1"),
    ("upsample(scale=0)", "E024", "scale=0"),
    ("dropout(1.5)", "E024", "1.5"),
    ("conv(in.c / 2, 1)", "E020", "in.c / 2"),       # 3 / 2: not a whole number of channels
    ("conv(8.5, 3)", "E020", "8.5"),
    ("conv(10**100, 1)", "E056", "10**100"),
    ("conv(2**64, 1)", "E056", "2**64"),
    ("let a = 1e308 * 10", "E050", "1e308 * 10"),
    ("let a = 0.0 * 1e400", "E050", "1e400"),
    ("let a = (-8) ** 0.5", "E051", "(-8) ** 0.5"),
    ("relu * 10**9", "E084", "10**9"),
    ("relu * -1", "E059", "-1"),
    ("relu * 2.5", "E059", "2.5"),
    ("conv(10**12, 1)", "E081", "conv(10**12, 1)"),
    ("conv(8, 64)", "E045", "64"),
]


@pytest.mark.parametrize("stmt, code, at", NUMERIC, ids=[n[0] for n in NUMERIC])
def test_numeric_edge_cases_point_at_the_culprit(stmt, code, at):
    start = time.thread_time()
    with pytest.raises(ArchError) as info:
        archdsl.check(net("    " + stmt), text=True)
    e = info.value
    assert e.code == code, e.render()
    assert (e.span.line, e.span.end_line) == (4, 4)
    assert stmt[e.span.col - 5:e.span.end_col - 5] == at, e.render()
    assert time.thread_time() - start < 1
