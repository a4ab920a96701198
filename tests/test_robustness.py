"""Total robustness of the front end: any input ends, quickly, in success or an ArchError.

Never a Python traceback, RecursionError, MemoryError or hang, from the API
(``archdsl.check`` raises only :class:`ArchError`) or the CLI (exit status 0 or 1,
stderr starting with ``error[``). Hypothesis fuzzes random bytes, random text,
mutations of every zoo spec, and values (op and block values built, shared, compared,
printed, called and read back through ``--set``); explicit cases cover the classic
hostile inputs.

Sizes: ``ARCHDSL_FUZZ_EXAMPLES`` scales every fuzz test (see docs/robustness.md);
the defaults run a few thousand cases in well under 90 s on two busy cores.
Each case is timed in CPU seconds of this process (other processes' load does not
count) and must stay under ``ARCHDSL_FUZZ_CASE_SECONDS`` (default 2).
"""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.errors import CODES, ArchError, Limits
from conftest import ROOT, SPECS

SCALE = int(os.environ.get("ARCHDSL_FUZZ_EXAMPLES", "0"))  # 0: the CI sizes below
CASE_SECONDS = float(os.environ.get("ARCHDSL_FUZZ_CASE_SECONDS", "2"))
LIBS = sorted((ROOT / "specs" / "lib").glob("*.arch"))
STATS: dict[str, list[float]] = {}  # fuzz test -> CPU seconds of each case, printed at the end


def fuzz(n: int):
    """Hypothesis settings for a fuzz test of ``n`` examples in CI (``ARCHDSL_FUZZ_EXAMPLES`` overrides)."""
    return settings(max_examples=SCALE or n, deadline=None, derandomize=not SCALE, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def outcome(source: str | Path, stat: str | None = None, seconds: float = CASE_SECONDS, **kwargs) -> str:
    """``archdsl.check`` the source; "ok" or the diagnostic's code. Anything but an ArchError fails
    the test, and so does a case over the time bound (CPU time, and a generous wall time)."""
    lint = os.environ.pop("ARCHDSL_LINT", None)   # the bound is on archdsl's work, not on the suite's IR check
    cpu, wall = time.thread_time(), time.perf_counter()
    graph = None
    try:
        graph = archdsl.check(source, **kwargs)
        result = "ok"
    except ArchError as e:
        assert e.code in CODES, e.code
        rendered = e.render()
        assert rendered.startswith(f"error[{e.code}]: ")
        assert len(rendered) < 20_000, "a diagnostic must stay readable"
        result = e.code
    finally:
        if lint is not None:
            os.environ["ARCHDSL_LINT"] = lint
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if graph is not None and lint and graph.table and sum(map(len, graph.preds.values())) < 50_000:
        graph.lint()   # the IR's invariants, untimed (a dense block of a thousand layers is skipped)
    if stat:
        STATS.setdefault(stat, []).append(cpu)
    assert cpu < seconds, f"{cpu:.2f} s of CPU for one case"
    assert wall < seconds * 15, f"{wall:.2f} s of wall time for one case"
    return result


def check_text(text: str, stat: str | None = None, **kwargs) -> str:
    return outcome(text, stat, text=True, **kwargs)


BIG_SECONDS = 15  # CPU bound for the explicit inputs of up to 100,000 tokens (parsing is ~20 us a token)


@pytest.fixture(scope="module", autouse=True)
def report_stats():
    yield
    for name, times in STATS.items():
        times = sorted(times)
        print(f"\n[robustness] {name}: {len(times)} cases, median {1000 * times[len(times) // 2]:.1f} ms, "
              f"max {1000 * times[-1]:.0f} ms CPU")


# ----------------------------------------------------------------------------- fuzz: bytes and text

@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@fuzz(600)
@given(data=st.binary(max_size=400))
@example(data=b"")
@example(data=b"\xff\xfe\x00")
@example(data=b"network t() {\n input x: [3, 8, 8]\n relu\n}\n\xc3")
@example(data="network t() {\n input x: [3, 8, 8]\n relu # \u202e\n}\n".encode())
def test_fuzz_bytes_through_a_file(data, scratch):
    """Arbitrary bytes in a file: decoding (E003), control characters (E002), parsing, ..."""
    path = scratch / "bytes.arch"
    path.write_bytes(data)
    outcome(path, "bytes")


# A little of the language's own vocabulary, so random text gets past the first token now and then.
WORDS = ["network", "block", "input", "output", "let", "for", "in", "if", "else", "import", "assert", "meta",
         "init", "tap", "concat", "add", "mean", "mul", "dense", "residual", "conv", "relu", "linear", "bn",
         "maxpool", "flatten", "range", "enumerate", "len", "true", "false", "none", "x", "t", "in.c", "@x",
         "{", "}", "(", ")", "[", "]", ",", ";", ":", "->", "*", "**", "/", "//", "%", "+", "-", "=", "==", "<",
         "\n", " ", "0", "1", "3", "64", "-1", "10**9", "1e400", '"s"', "'", '"', "#", "\\", "\t", "x:", "{i}",
         "__import__", "lambda", "\u202e", "\x00", "\ud800", "\u2028", "\ufeff", "é", "😀"]


@fuzz(600)
@given(text=st.text(max_size=300))
@example(text="")
@example(text="\ud800")
def test_fuzz_random_text(text):
    check_text(text, "text")


@fuzz(800)
@given(words=st.lists(st.sampled_from(WORDS), max_size=60))
def test_fuzz_token_soup(words):
    """Random sequences of the language's own tokens, inside and outside a network."""
    soup = " ".join(words)
    check_text(soup, "soup")
    check_text("network t() {\n  input x: [3, 16, 16]\n  " + soup + "\n}\n", "soup")


# ----------------------------------------------------------------------------- fuzz: mutations of the zoo

TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_]\w*|->|\*\*|//|[<>=!]=|\s+|.')
EXTRA = ["{", "}", "(", ")", "[", "]", ",", ";", "\n", "->", "*", "0", "-1", "10**9", "2**64", "1e400", "in.c",
         "@x", "x:", "add { {}; conv(in.c, 3, pad=1) }", "relu * 10**9", "conv(0, 3)", "conv(in.c / 3, 1)",
         "f(f)", "__class__", ".", "@", "import", "\u202e", "1/0", "[[[", "]]]", "{{{", "}}}", "not", "if"]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


SOURCES = {p: p.read_text(encoding="utf-8") for p in SPECS + LIBS}
TOKENS = {p: tokens(t) for p, t in SOURCES.items()}


@st.composite
def mutated(draw):
    """A zoo spec or library with 1 to 4 token mutations: delete, duplicate, swap, replace, insert."""
    path = draw(st.sampled_from(sorted(TOKENS)))
    toks = list(TOKENS[path])
    for _ in range(draw(st.integers(1, 4))):
        if not toks:
            break
        i = draw(st.integers(0, len(toks) - 1))
        j = draw(st.integers(0, len(toks) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "insert", "delete_run"]))
        if kind == "delete":
            del toks[i]
        elif kind == "delete_run":
            del toks[min(i, j):max(i, j) + 1][:40]
        elif kind == "duplicate":
            toks.insert(i, toks[i])
        elif kind == "swap":
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == "replace":
            toks[i] = draw(st.sampled_from(EXTRA + toks[:200]))
        else:
            toks.insert(i, draw(st.sampled_from(EXTRA)))
    return path, "".join(toks)


def test_tokenizer_round_trips():
    for path, text in SOURCES.items():
        assert "".join(tokens(text)) == text, path


@pytest.fixture(scope="module")
def zoo_copy(tmp_path_factory) -> Path:
    """A scratch copy of specs/ (mutated libraries are written into it, never into the real one)."""
    dest = tmp_path_factory.mktemp("zoo") / "specs"
    shutil.copytree(ROOT / "specs", dest)
    for spec in dest.glob("*.arch"):  # the copies import their libraries beside them, so mutations reach them
        spec.write_text(spec.read_text(encoding="utf-8").replace('import "std/', 'import "lib/'), encoding="utf-8")
    return dest


@fuzz(1000)
@given(case=mutated())
def test_fuzz_mutated_zoo(case, zoo_copy):
    path, text = case
    if path.parent.name == "lib":  # a mutated library, imported by a spec that uses it
        lib = zoo_copy / "lib" / path.name
        lib.write_text(text, encoding="utf-8")
        try:
            users = [p for p in SPECS if f'"std/{path.name}"' in SOURCES[p]]
            outcome(zoo_copy / (users[0].name if users else "resnet50.arch"), "mutation")
        finally:
            lib.write_text(SOURCES[path], encoding="utf-8")
    else:
        check_text(text, "mutation", base=str(zoo_copy))


def test_every_zoo_spec_is_fuzzed():
    """derandomize=True makes the run reproducible; this makes sure it reaches every spec and library."""
    rng = random.Random(0)
    for path in sorted(TOKENS):
        toks = list(TOKENS[path])
        del toks[rng.randrange(len(toks))]
        if path.parent.name != "lib":
            check_text("".join(toks), base=str(ROOT / "specs"))


# ----------------------------------------------------------------------------- fuzz: values

# Expressions that build op and block values (partial application, nesting, sharing through
# doubling loops, lists and dicts of them), compare them, print them and call them.
VALUE_BLOCKS = "block pair(x = relu, y = relu) { relu }\nblock blk(n = 8, act = relu) { conv(n, 1) -> act }\n"
CALLABLES = ["relu", "conv", "bn", "linear", "maxpool", "dropout", "sigmoid", "pair", "blk", "a", "b", "c"]
STRINGS = ['""', '"s"', '"a b"', '"\\n error[E001]: x"', '"\\r\\t"', "'q\"'", '"\\\\"']
LEAVES = st.sampled_from(["0", "1", "-2", "3", "64", "0.5", "-1.5", "1e-05", "true", "false", "none", "in.c",
                          "a", "b", "c", *STRINGS, *CALLABLES[:9]])
KEYWORDS = ["n", "x", "y", "act", "stride", "p", "out"]


@st.composite
def _partial(draw, args):
    """An op, block or variable applied to a few arguments, some of them keywords."""
    head = draw(st.sampled_from(CALLABLES))
    keywords = draw(st.lists(st.sampled_from(KEYWORDS), max_size=2, unique=True))
    items = [draw(args) for _ in range(draw(st.integers(0, 2)))] + [f"{k}={draw(args)}" for k in keywords]
    return f"{head}({', '.join(items)})"


def value_exprs():
    return st.recursive(LEAVES, lambda inner: st.one_of(
        _partial(inner),
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(inner, min_size=1, max_size=2).map(lambda xs: "(" + ", ".join(xs) + ",)"),
        st.lists(st.tuples(st.sampled_from(['"k"', "1", "(1, 2)"]), inner), max_size=2).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
        st.tuples(inner, st.sampled_from(["[0]", "[1]", '["k"]'])).map("".join),
        st.tuples(inner, st.sampled_from(["==", "!=", "<"]), inner).map(lambda t: f"({' '.join(t)})"),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: f"min([{', '.join(xs)}])"),
    ), max_leaves=8)


@st.composite
def value_statements(draw):
    expr = value_exprs()
    out = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["let", "let", "double", "assert", "assert_eq", "print", "meta", "call"]))
        if kind == "let":
            out.append(f"let {draw(st.sampled_from('abc'))} = {draw(expr)}")
        elif kind == "double":  # a value shared 2**n ways: equality and printing must not walk the paths
            name, f = draw(st.sampled_from("abc")), draw(st.sampled_from(["relu", "pair", "conv", "blk", "a"]))
            out.append(f"for i in range({draw(st.integers(0, 60))}) {{ let {name} = {f}({name}, {name}) }}")
        elif kind == "assert":
            out.append(f"assert {draw(expr)}")
        elif kind == "assert_eq":
            out.append(f"assert {draw(expr)} {draw(st.sampled_from(['==', '!=']))} {draw(expr)}, {draw(expr)}")
        elif kind == "print":
            out.append(f"assert false, {draw(expr)}")
        elif kind == "meta":
            out.append(f"meta m = {draw(expr)}")
        else:  # an op or block value used where an op goes
            out.append(draw(st.sampled_from(["relu -> a", "b", "c(1)", "blk(act=a)", "pair(a, b)", "conv(a, 1)",
                                             "blk(8, a)", "a -> b -> c"])))
    return "\n".join("    " + s for s in out)


@fuzz(400)
@given(body=value_statements())
@example(body="    let a = relu\n    let b = relu\n    for i in range(60) { let a = relu(a, a) }\n"
              "    for i in range(60) { let b = relu(b, b) }\n    assert a == b\n    assert false, a")
def test_fuzz_values(body):
    """Op and block values built, compared, printed and called: success or a diagnostic, in time."""
    check_text(VALUE_BLOCKS + "network t() {\n    input x: [3, 16, 16]\n    let a = relu\n    let b = conv(8)\n"
               "    let c = blk\n" + body + "\n    relu\n}\n", "values")


@fuzz(300)
@given(expr=value_exprs())
def test_fuzz_set_values_round_trip(expr):
    """What `show` prints is what `--set` reads back: a value evaluated from an expression, shown,
    and parsed again as a `--set` value is the same value (op values with their arguments too)."""
    from archdsl.cli import parse_value
    from archdsl.values import BlockRef, Tensor, show
    cpu = time.thread_time()
    try:
        value = parse_value(f"({expr})", "--set v")
    except ArchError:
        return
    text = show(value, 10**6)
    if "..." in text or any(isinstance(v, (BlockRef, Tensor)) for v in _leaves(value)):
        return  # shown cut, or not writable as a --set value
    again = parse_value(f"({text.removeprefix('op ')})", "--set v")
    assert again == value and show(again, 10**6) == text, (expr, text)
    STATS.setdefault("set round trips", []).append(time.thread_time() - cpu)
    assert time.thread_time() - cpu < CASE_SECONDS


def _leaves(v):
    """Every value inside ``v`` (containers and op arguments walked), iteratively."""
    from archdsl.values import OpRef
    todo = [v]
    while todo:
        x = todo.pop()
        yield x
        if isinstance(x, (list, tuple)):
            todo += x
        elif isinstance(x, dict):
            todo += list(x.keys()) + list(x.values())
        elif isinstance(x, OpRef):
            todo += list(x.args) + [w for _, w in x.kwargs]


# ----------------------------------------------------------------------------- explicit hostile inputs

def net(body: str, blocks: str = "") -> str:
    return f"{blocks}network t() {{\n    input x: [3, 32, 32]\n{body}\n}}\n"


MB = 2**20

EXPLICIT = {  # name -> (source text or bytes, expected code or "ok")
    "empty file": (b"", "E014"),
    "only newlines": (b"\n" * 1000, "E014"),
    "a megabyte of newlines": (b"\n" * (2**20 - 100) + b"network", "E001"),
    "10,000 nested brackets": (net("    let a = " + "[" * 10_000 + "]" * 10_000), "E005"),
    "10,000 nested parentheses": (net("    let a = " + "(" * 10_000 + "1" + ")" * 10_000), "E005"),
    "10,000 nested blocks": (net("    " + "{" * 10_000 + "}" * 10_000), "E005"),
    "10,000 nested joins": (net("    " + "add { " * 10_000 + "relu" + " }" * 10_000), "E005"),
    "10,000 nested ifs": (net("    " + "if true { " * 10_000 + "relu" + " }" * 10_000), "E005"),
    "2,000 block definitions in a row": ("block b() { relu }\n" * 2_000, "E031"),
    "100,000-character line of operators": (net("    let a = " + "1 + " * 25_000 + "1"), "E005"),
    "20,000 unary minuses": (net("    let a = " + "-" * 20_000 + "1"), "E005"),
    "10,000 indexings": (net("    let a = [0]" + "[0]" * 10_000), "E005"),
    "a chain of 10,000 `not`": (net("    let a = " + "not " * 10_000 + "true"), "E005"),
    "2,000 else-ifs": (net("    if false { relu }" + " else if false { relu }" * 2_000 + " else { relu }"), "ok"),
    "100,000-character name": (net("    " + "a" * 100_000), "E010"),
    "100,000-character comment": (net("    relu # " + "x" * 100_000), "ok"),
    "100,000-character string": (net('    let s = "' + "x" * 100_000 + '"\n    relu'), "ok"),
    "5,000-digit number": (net("    let n = " + "9" * 5_000), "E004"),
    "4,000-digit number": (net("    let n = " + "9" * 4_000), "E056"),
    "unterminated string": (net('    let s = "abc'), "E001"),
    "NUL byte": (net("    relu\x00"), "E002"),
    "NUL bytes only": (b"\x00" * 1000, "E002"),
    "invalid UTF-8": (b"network t() {\n    input x: [3, 8, 8]\n    relu \xc0\xaf\n}\n", "E003"),
    "truncated UTF-8": (net("    relu # é").encode()[:-4], "E003"),
    "UTF-16": (net("    relu").encode("utf-16"), "E003"),
    "binary garbage": (random.Random(1).randbytes(100_000), "E003"),
    "CRLF line ends": (net("    relu").replace("\n", "\r\n"), "ok"),
    "lone CR line ends": (net("    relu").replace("\n", "\r"), "E001"),
    "byte order mark": ("\ufeff" + net("    relu"), "E001"),
    "zero-width space in a comment": (net("    relu # a\u200bb"), "ok"),
    "emoji in a string": (net('    meta note = "😀"\n    relu'), "ok"),
    "combining characters": (net("    relu # e\u0301\u0301\u0301"), "ok"),
    "line separator U+2028": (net("    relu # \u2028 conv(3, 3)"), "E002"),
    "next line U+0085": (net("    relu # \x85 conv(3, 3)"), "E002"),
    "2,000-op chain": (net("    " + " -> ".join(["relu"] * 2_000)), "ok"),
    "30,000 ops": (net("    relu * 30000"), "E083"),
    "a join of 20,000 branches": (net("    add { for i in range(20000) { {} } }"), "ok"),
}
for _ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c":
    EXPLICIT[f"bidi control U+{ord(_ch):04X}"] = (net(f'    meta a = "x{_ch}y"\n    relu'), "E002")


@pytest.mark.parametrize("name", list(EXPLICIT))
def test_explicit_input(name, tmp_path):
    source, expected = EXPLICIT[name]
    path = tmp_path / "spec.arch"
    path.write_bytes(source if isinstance(source, bytes) else source.encode("utf-8", "surrogatepass"))
    assert outcome(path, seconds=BIG_SECONDS) == expected
    if isinstance(source, str):  # the same text through the API
        assert check_text(source, seconds=BIG_SECONDS) == expected


def test_lone_surrogate_through_the_api():
    """Only reachable from Python (files are decoded strictly): refused, and rendering never fails."""
    with pytest.raises(ArchError) as info:
        archdsl.check(net('    meta a = "\ud800"\n    relu'), text=True)
    assert info.value.code == "E002"
    info.value.render().encode("utf-8")  # printable


def test_ten_megabyte_file_is_over_the_default_limit(tmp_path):
    path = tmp_path / "big.arch"
    path.write_bytes(net("    relu").encode() + b"# " + b"x" * (10 * MB) + b"\n")
    t = time.perf_counter()
    assert outcome(path) == "E006"
    assert time.perf_counter() - t < 1.0  # refused from the file's size, before reading it
    assert Limits().source == MB


@pytest.mark.parametrize("kind", ["comment lines", "one long comment", "one long string", "whitespace",
                                  "binary tail"])
def test_ten_megabyte_file_with_the_limit_raised(kind, tmp_path):
    """With `--limit source` raised, 10 MB still ends in bounded time where the text is cheap to lex;
    dense token streams are what the default limit caps (docs/robustness.md has the numbers)."""
    head = net("    relu").encode()
    body = {"comment lines": b"# a comment line that is not very long at all\n" * (10 * MB // 48),
            "one long comment": b"#" + b"y" * (10 * MB),
            "one long string": b'let s = "' + b"z" * (10 * MB) + b'"\n',
            "whitespace": b" " * (10 * MB) + b"\n",
            "binary tail": random.Random(2).randbytes(10 * MB // 64) * 64}[kind]
    path = tmp_path / "big.arch"
    path.write_bytes(head + body)
    cpu = time.thread_time()
    try:
        archdsl.check(path, limits={"source": 20 * MB, "sequence": 20 * MB})
    except ArchError as e:
        assert kind == "binary tail" and e.code == "E003"
    assert time.thread_time() - cpu < 30


def test_dense_source_parses_in_linear_time():
    """The cost the source limit bounds: tokens. 4x the text takes about 4x the time (not 16x)."""
    def cpu_for(n):
        text = net("\n".join(f"    let v{i} = {i} + {i}" for i in range(n)) + "\n    relu")
        cpu = time.thread_time()
        check_text(text)
        return time.thread_time() - cpu
    small, large = cpu_for(500), cpu_for(2000)
    print(f"\n[robustness] dense source: {small:.2f} s CPU for 500 lets, {large:.2f} s for 2,000")
    assert large < 8 * small + 0.5


def test_source_limit_applies_to_text(tmp_path):
    with pytest.raises(ArchError) as info:
        archdsl.check(net("    relu") + "#" * (MB + 1), text=True)
    assert info.value.code == "E006"
    with pytest.raises(ArchError) as info:
        archdsl.check(net("    relu"), text=True, limits={"source": 10})
    assert info.value.code == "E006"


def test_device_files_are_read_within_the_limit():
    """A device is not a regular file: refused on its descriptor before anything is read."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    assert outcome(Path("/dev/zero")) == "E074"


# ----------------------------------------------------------------------------- the CLI

CLI_INPUTS = {name: EXPLICIT[name] for name in (
    "empty file", "10,000 nested brackets", "10,000 nested blocks", "100,000-character line of operators",
    "NUL byte", "invalid UTF-8", "binary garbage", "bidi control U+202E", "byte order mark",
    "30,000 ops", "100,000-character comment")}


def run_cli(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "archdsl.cli", *args], input=stdin, capture_output=True,
                          timeout=120)


def assert_clean(proc, expected: str | None = None):
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode in (0, 1), (proc.returncode, err[-3000:])
    if proc.returncode == 1:
        assert err.startswith("error["), err[:500]
    if expected is not None:
        assert (f"error[{expected}]" in err) if expected != "ok" else proc.returncode == 0, err[:500]


def test_cli_on_hostile_inputs(tmp_path):
    """One subprocess per input: exit 0 or 1, a diagnostic on stderr, never a traceback."""
    for i, (name, (source, expected)) in enumerate(CLI_INPUTS.items()):
        path = tmp_path / f"{i}.arch"
        path.write_bytes(source if isinstance(source, bytes) else source.encode("utf-8"))
        assert_clean(run_cli("check", "-q", str(path)), expected)


def test_cli_fuzz_sample(tmp_path, zoo_copy):
    """A deterministic sample of random inputs and mutated specs through the real command."""
    rng = random.Random(7)
    cases = [bytes(rng.randrange(256) for _ in range(rng.randrange(200))) for _ in range(4)]
    for path, toks in sorted(TOKENS.items())[:6]:
        toks = list(toks)
        for _ in range(3):
            toks.insert(rng.randrange(len(toks)), rng.choice(EXTRA))
        cases.append("".join(toks).encode())
    for i, data in enumerate(cases):
        path = (zoo_copy / f"fuzz{i}.arch") if i >= 4 else (tmp_path / f"{i}.arch")  # imports resolve
        path.write_bytes(data)
        assert_clean(run_cli("check", "-q", str(path)))


def test_cli_stdin_and_limits():
    ok = net("    relu").encode()
    assert_clean(run_cli("check", "-q", "-", stdin=ok), "ok")
    assert_clean(run_cli("check", "-q", "-", stdin=b"\xff" + ok), "E003")
    assert_clean(run_cli("check", "-q", "-", stdin=b"#" * (MB + 10)), "E006")
    assert_clean(run_cli("check", "-q", "-", "--limit", "source=10", stdin=ok), "E006")
    assert_clean(run_cli("check", "-q", "-", "--limit", "source=100000000", stdin=ok), "ok")
    bad = run_cli("check", "-q", "-", "--limit", "nodez=3", stdin=ok)
    assert_clean(bad, "E090")


@pytest.mark.parametrize("value", ["(params)", "__import__('os')", "[" * 500 + "]" * 500, "1" + " + 1" * 300,
                                   "10**100", "in", "@x", "().__class__", "lambda: 1", "'\u202e'", "len()",
                                   "[[1] * 1000] * 1000", "'a' * 10**9", "", "=", "\x00"])
def test_cli_set_values_are_expressions_of_the_language(value, tmp_path, capsys):
    """`--set` values go through the same closed evaluator (in-process: the same `main`)."""
    from archdsl.cli import main
    path = tmp_path / "p.arch"
    path.write_text("network t(n = 1) {\n    input x: [3, 8, 8]\n    relu\n}\n")
    status = main(["check", "-q", str(path), "--set", f"n={value}"])
    err = capsys.readouterr().err
    assert status in (0, 1) and "Traceback" not in err
    assert status == 0 or err.startswith("error[")


# ----------------------------------------------------------------------------- outputs are written atomically

GOOD = net("    conv(4, 3) -> relu -> global_avgpool -> flatten -> linear(2)")
BAD = net("    conv(4, 3) -> rleu")
OUTPUTS = {"compile": ("out.py", []), "render": ("out.dot", []), "summary": ("out.csv", ["--format", "csv"])}


@pytest.mark.parametrize("command", list(OUTPUTS))
def test_an_error_never_touches_an_existing_output(command, tmp_path):
    name, extra = OUTPUTS[command]
    out = tmp_path / name
    out.write_text("precious\n")
    bad = tmp_path / "bad.arch"
    bad.write_text(BAD)
    proc = run_cli(command, str(bad), "-o", str(out), *extra)
    assert_clean(proc, "E010")
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bad.arch", name])  # no temporary left


@pytest.mark.parametrize("command", list(OUTPUTS))
def test_outputs_go_through_write_atomic(command, tmp_path, monkeypatch):
    """compile, render and summary write with archdsl.files.write_atomic (a spy stands in for it)."""
    import importlib
    from archdsl.cli import main
    from archdsl.files import write_atomic
    module = importlib.import_module({"compile": "archdsl.export", "render": "archdsl.draw",
                                      "summary": "archdsl.analyze"}[command])
    calls = []
    monkeypatch.setattr(module, "write_atomic", lambda path, data: calls.append(path) or write_atomic(path, data))
    name, extra = OUTPUTS[command]
    good = tmp_path / "good.arch"
    good.write_text(GOOD)
    assert main([command, str(good), "-o", str(tmp_path / name), *extra]) == 0
    assert [Path(p).name for p in calls] == [name]
    text = (tmp_path / name).read_text()
    if command == "compile":
        compile(text, name, "exec")  # complete, valid Python


class _Boom(OSError):
    pass


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_a_failure_mid_write_leaves_the_old_file(where, tmp_path, monkeypatch):
    """Simulated failures inside write_atomic: half the data written then an error, a failed
    fsync (a full disk), a failed rename. The old file stays whole and no temporary is left."""
    import archdsl.files as files
    target = tmp_path / "model.py"
    target.write_text("old contents\n")
    new = "new contents\n" * 10_000
    if where == "write":
        real = os.fdopen

        class Half:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[:len(data) // 2])
                raise _Boom(28, "No space left on device")

            def __getattr__(self, name):
                return getattr(self.f, name)

        monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: Half(real(fd, mode)))
    elif where == "fsync":
        monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(_Boom(28, "No space left")))
    else:
        monkeypatch.setattr(files.os, "replace", lambda a, b: (_ for _ in ()).throw(_Boom(16, "Busy")))
    with pytest.raises(_Boom):
        files.write_atomic(target, new)
    assert target.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]


def test_the_cli_reports_an_unwritable_output(tmp_path, monkeypatch, capsys):
    """A failure while writing (here a full disk at fsync) is a message and status 2, not a traceback,
    and the existing output is untouched."""
    import archdsl.files as files
    from archdsl.cli import main
    good = tmp_path / "good.arch"
    good.write_text(GOOD)
    out = tmp_path / "out.py"
    out.write_text("precious\n")
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert main(["compile", str(good), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.arch", "out.py"]
    monkeypatch.undo()
    assert main(["compile", str(good), "-o", str(tmp_path / "no" / "such" / "dir" / "out.py")]) == 0
    assert main(["compile", str(good), "-o", str(tmp_path)]) == 2  # a directory: refused, nothing replaced
    assert tmp_path.is_dir()
