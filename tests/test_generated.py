"""Random valid architectures (tests/archgen.py): archdsl's static shapes and parameter counts
equal the generator's own model of PyTorch's rules, and equal what the compiled torch module
does on a real batch: every output's shape, the parameter and buffer counts, and the output
shape of every op that is a torch submodule (forward hooks), in eval and in training mode.

CI runs a few hundred examples (derandomized, so every run draws the same ones); set
``ARCHDSL_FUZZ_EXAMPLES=100000`` for a long local run (docs/robustness.md).
"""
from __future__ import annotations

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
def test_generated_specs_match_torch(spec):
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


def test_pad_on_a_volume_is_refused():
    """Found by the generator: torch has no ConstantPad4d, so `pad` takes inputs of up to 3 dims."""
    spec = "network t() {\n    input image: [1, 3, 3, 3]\n    pad(channels=1, spatial=1)\n}\n"
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.check(spec, text=True)
    assert info.value.code == "E041" and (info.value.span.line, info.value.span.col) == (3, 5)
