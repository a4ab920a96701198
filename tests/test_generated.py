"""Random valid architectures (archdsl.generate, drawn by Hypothesis through tests/archgen.py):
archdsl's static shapes and parameter counts
equal the generator's own model of PyTorch's rules, and equal what the compiled torch module
does on a real batch: every output's shape, the parameter and buffer counts, and the output
shape of every op that is a torch submodule (forward hooks), in eval and in training mode.

The compile stage too (issue 10): small generated specs go through ``archdsl.load`` (which may
refuse with an ArchError, never anything else) and through ``archdsl compile -o``, whose file
is imported and run: it must give the loaded module's outputs exactly, with the same state
dict, whose keys are the IR's names.

CI runs a few hundred examples (derandomized, so every run draws the same ones); set
``ARCHDSL_FUZZ_EXAMPLES=100000`` for a long local run (docs/robustness.md).
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings

import archdsl
import archgen

SCALE = int(os.environ.get("ARCHDSL_FUZZ_EXAMPLES", "0"))
STATS: dict[str, list] = {}


def fuzz(n: int):
    return settings(max_examples=SCALE or n, deadline=None, derandomize=not SCALE, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much], print_blob=True)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    for name, rows in STATS.items():
        n = len(rows)
        print(f"\n[generated] {name}: {n} specs, {sum(r[0] for r in rows)} ops in all (max {max(r[0] for r in rows)}), "
              f"{sum(r[1] for r in rows)} submodule shapes compared, "
              f"{sum(r[2] for r in rows) / n * 1000:.0f} ms a spec")


def predicted(spec) -> list:
    return [(name, tuple(shape), train) for name, shape, train in spec.outputs]


def static(graph) -> list:
    return [(o.name, tuple(graph.node(o.node)["shape"]), o.train_only) for o in graph.outputs]


@fuzz(300)
@given(spec=archgen.specs())
def test_generated_specs_check(spec):
    """Valid by construction, so archdsl.check must accept it and agree with the generator."""
    start = time.perf_counter()
    graph = archdsl.check(spec.text, text=True)
    assert static(graph) == predicted(spec)
    assert graph.total_params == spec.params
    STATS.setdefault("check", []).append((len(graph), 0, time.perf_counter() - start))


def torch_outputs(y, names: list) -> dict:
    if len(names) == 1:
        return {names[0]: y}
    assert tuple(y._fields) == tuple(names)
    return dict(zip(names, y))


@fuzz(250)
@given(spec=archgen.specs())
def test_generated_specs_match_torch(spec, one_thread):
    torch = pytest.importorskip("torch")
    pytest.importorskip("archdsl.compile")
    start = time.perf_counter()
    model = archdsl.loads(spec.text, seed=0)
    graph = model.ir
    assert static(graph) == predicted(spec)
    assert sum(p.numel() for p in model.parameters()) == graph.total_params == spec.params
    assert sum(b.numel() for b in model.buffers()) == graph.total_buffers

    seen: dict[str, list] = {}
    hooked = []
    for n in graph.nodes():
        name = graph.node(n)["name"]
        if "#" in name or graph.node(n)["op"] == "input":
            continue
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            continue  # a functional op (relu, cat, ...): checked through the outputs
        if not list(mod.children()):
            mod.register_forward_hook(lambda m, i, out, name=name: seen.setdefault(name, []).append(
                tuple(out.shape[1:])))
            hooked.append((name, tuple(graph.node(n)["shape"])))

    x = torch.randn(2, *spec.input, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for mode in ("eval", "train"):
            getattr(model, mode)()
            outs = [o for o in graph.outputs if mode == "train" or not o.train_only]
            y = torch_outputs(model(x), [o.name for o in outs])
            for o in outs:
                assert tuple(y[o.name].shape) == (2, *graph.node(o.node)["shape"]), (mode, o.name)
    for name, shape in hooked:
        for got in seen.get(name, []):
            assert got == shape, (name, got, shape)
    STATS.setdefault("torch", []).append((len(graph), sum(len(seen.get(n, [])) for n, _ in hooked),
                                          time.perf_counter() - start))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("compiled")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors of ever-new shapes: torch's thread pool costs more than it saves (5 ms a conv on
    the 2-core CI machine, against 0.7 ms on one thread)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


EXPORTS = itertools.count()


def import_file(path):
    """The module a written file defines, imported under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"archdsl_export_{next(EXPORTS)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_tuple(y) -> tuple:
    return tuple(y) if isinstance(y, tuple) else (y,)


@fuzz(200)
@given(spec=archgen.specs(max_ops=12))
def test_generated_specs_compile_export_and_run(spec, workdir, one_thread):
    """load, and `archdsl compile -o` + import of the file, agree exactly on every generated spec."""
    torch = pytest.importorskip("torch")
    from archdsl.cli import main
    from archdsl.compile import class_name
    start = time.perf_counter()
    path, out = workdir / "gen.arch", workdir / "gen.py"
    path.write_text(spec.text)
    try:
        model = archdsl.load(path, seed=0)
    except archdsl.ArchError:  # a refusal is allowed (anything else fails the test); the CLI agrees
        assert main(["compile", str(path), "-o", str(out)]) == 1
        STATS.setdefault("compile (refused)", []).append((0, 0, time.perf_counter() - start))
        return
    graph = model.ir
    assert main(["compile", str(path), "-o", str(out)]) == 0
    exported = getattr(import_file(out), class_name(graph.network))()
    state = model.state_dict()
    assert list(exported.state_dict()) == list(state)
    exported.load_state_dict(state)  # strict
    weighted = {graph.node(n)["name"] for n in graph.nodes() if graph.node(n)["params"] or graph.node(n)["buffers"]}
    assert {key.rsplit(".", 1)[0] for key in state} == weighted  # state-dict keys are the IR names

    x = torch.randn(2, *spec.input, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for mode in ("eval", "train"):  # train: dropout and batch statistics, the same random draws
            ys = []
            for m in (model, exported):
                getattr(m, mode)()
                torch.manual_seed(1)
                ys.append(as_tuple(m(x)))
            assert len(ys[0]) == len(ys[1]) and all(torch.equal(a, b) for a, b in zip(*ys)), mode
    STATS.setdefault("compile", []).append((len(graph), 0, time.perf_counter() - start))


def test_pad_on_a_volume_is_refused():
    """Found by the generator: torch has no ConstantPad4d, so `pad` takes inputs of up to 3 dims."""
    spec = "network t() {\n    input image: [1, 3, 3, 3]\n    pad(channels=1, spatial=1)\n}\n"
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.check(spec, text=True)
    assert info.value.code == "E041" and (info.value.span.line, info.value.span.col) == (3, 5)
