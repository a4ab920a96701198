"""The torchvision half of the zoo: every spec against the torchvision model it reproduces.

Driven by the table in ``zoo_reference.py`` (one row per spec and parameter setting):

* static (no compiler needed): parameter and buffer counts, the IR's invariants, and the
  state_dict keys the IR implies (weighted node names plus each op's parameter / buffer
  suffixes) equal to the reference's, node by node down to element counts; the ``classes`` and
  ``size`` parameters; ``meta`` lines; the line budget of each file with its imports;
* parity (needs ``archdsl.compile``): the reference's state_dict loads strictly into the
  compiled spec and both give the same outputs in eval, at the default size and at ``alt_size``;
  nets with training-only taps give the reference's output tuple in training.

References are built inside each test (on the meta device where only structure is needed).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import archdsl
from archdsl import reference as references
from archdsl.zoo import source_lines
from conftest import ROOT, checked, state_key, state_suffixes
from zoo_reference import ROWS, ZooRow

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

SPEC_DIR = ROOT / "specs"
IDS = [r.id for r in ROWS]
RTOL = 1e-5                     # max |spec - reference| <= RTOL * max(|reference|, 1)
LINE_BUDGET = {"resnet50": 35}
DEFAULT_BUDGET = 80             # non-blank, non-comment lines in `archdsl fmt`'s layout, imported libraries included
TOP1_REQUIRED = {"alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "resnet152", "resnext50_32x4d",
                 "wide_resnet50_2", "densenet121", "squeezenet1_0"}


def spec_path(row: ZooRow) -> Path:
    return SPEC_DIR / f"{row.spec}.arch"


def build_reference(row: ZooRow, meta: bool = False, **extra):
    """The reference model through archdsl's resolver (what `zoo --parity` builds): randomly
    initialised, weights=None; on the meta device if ``meta``."""
    ref = references.from_meta({"reference": row.reference, "reference_args": row.ref_kwargs or None})
    return references.build(ref, device="meta" if meta else None, **extra)


def weighted_nodes(graph) -> list[dict]:
    return [graph.node(n) for n in graph.nodes() if graph.node(n)["params"] or graph.node(n)["buffers"]]


def torchvision_specs() -> set[str]:
    """Spec files in specs/ whose `meta reference` names a torchvision constructor."""
    pattern = re.compile(r'^\s*meta\s+reference\s*=\s*"torchvision[.:]', re.M)
    return {p.stem for p in SPEC_DIR.glob("*.arch") if pattern.search(p.read_text())}


# ----------------------------------------------------------------------------- the registry

def test_every_torchvision_spec_is_in_the_table():
    assert torchvision_specs() <= {r.spec for r in ROWS}


def test_table_rows_are_well_formed():
    seen = set()
    for r in ROWS:
        assert spec_path(r).is_file(), r.spec
        assert r.reference and r.reference.startswith(("torchvision.models.", "torchvision:")), r
        assert r.id not in seen, f"duplicate row {r.id}"
        seen.add(r.id)
        assert len(r.input) == 3 and r.params > 0
        assert r.alt_size is None or r.alt_size != r.input[1]


@pytest.mark.parametrize("spec", sorted({r.spec for r in ROWS}))
def test_spec_file_header_and_budget(spec):
    path = SPEC_DIR / f"{spec}.arch"
    text = path.read_text()
    row = next(r for r in ROWS if r.spec == spec)
    header = text.split("\n\n", 1)[0]
    assert text.startswith("#"), "a spec opens with a comment naming the paper and the reference"
    assert row.reference in " ".join(line.lstrip("# ") for line in header.splitlines()), \
        f"the opening comment names {row.reference}"
    budget = LINE_BUDGET.get(spec, DEFAULT_BUDGET)
    lines = source_lines(archdsl.check(path))
    assert lines <= budget, f"{spec}: {lines} lines with its imports, budget {budget}"


@pytest.mark.parametrize("spec", sorted({r.spec for r in ROWS}))
def test_meta(spec):
    row = next(r for r in ROWS if r.spec == spec)
    meta = archdsl.check(spec_path(row), **row.spec_params).meta
    assert isinstance(meta.get("paper"), str) and meta["paper"]
    assert isinstance(meta.get("year"), int) and 1990 < meta["year"] < 2030
    assert meta.get("reference") == row.reference
    name = re.split(r"[.:]", row.reference)[-1]
    if name in TOP1_REQUIRED:
        assert "top1" in meta, f"{spec} needs `meta top1`"
    if "top1" in meta:
        weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
        assert meta["top1"] == round(weights.meta["_metrics"]["ImageNet-1K"]["acc@1"], 2)


# ----------------------------------------------------------------------------- static

@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_static(row):
    graph = checked(spec_path(row), **row.spec_params)
    assert graph.total_params == row.params
    assert [graph.node(n)["shape"] for n in graph.inputs.values()] == [row.input]
    ref = build_reference(row, meta=True)
    assert sum(p.numel() for p in ref.parameters()) == row.params
    assert graph.total_buffers == sum(b.numel() for b in ref.buffers())

    state = ref.state_dict()
    expected = {state_key(d, s) for d in weighted_nodes(graph) for s in state_suffixes(d)}
    missing, unexpected = sorted(set(state) - expected), sorted(expected - set(state))
    assert not missing and not unexpected, f"missing from the spec: {missing[:8]}; not in the reference: " \
                                           f"{unexpected[:8]}"
    params = dict(ref.named_parameters())
    for d in weighted_nodes(graph):   # node by node: element counts of its parameters and buffers
        keys = [state_key(d, s) for s in state_suffixes(d)]
        assert d["params"] == sum(state[k].numel() for k in keys if k in params), d["name"]
        assert d["buffers"] == sum(state[k].numel() for k in keys if k not in params), d["name"]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_classes_and_size_parameters(row):
    graph = archdsl.check(spec_path(row), classes=10, **row.spec_params)
    ref = build_reference(row, meta=True, num_classes=10)
    assert graph.total_params == sum(p.numel() for p in ref.parameters())
    want = (10,) if row.task == "classification" else (10, *row.input[1:])   # segmentation: per pixel
    assert all(graph.node(o.node)["shape"] == want for o in graph.outputs)
    if row.alt_size:
        graph = archdsl.check(spec_path(row), size=row.alt_size, **row.spec_params)
        assert [graph.node(n)["shape"] for n in graph.inputs.values()] == [(row.input[0], row.alt_size, row.alt_size)]
        assert graph.total_params == row.params


# ----------------------------------------------------------------------------- parity

def assert_matches(y, r, what: str) -> float:
    """``y`` (the spec's output) equals ``r`` (the reference's) within RTOL, with the same structure:
    a tensor, a dict compared key by key (same keys, same order: a segmentation model's ``out`` and
    ``aux``), or a tuple compared item by item. Returns the largest relative error."""
    if isinstance(r, dict):
        assert isinstance(y, dict), f"{what}: the reference returns a dict of {list(r)}, the spec a {type(y).__name__}"
        assert list(y) == list(r), f"{what}: output keys {list(y)}, the reference's {list(r)}"
        return max(assert_matches(y[k], r[k], f"{what}, output {k!r}") for k in r)
    if isinstance(r, tuple):
        assert isinstance(y, tuple) and len(y) == len(r), f"{what}: {type(y).__name__} vs a {len(r)}-tuple"
        return max(assert_matches(a, b, f"{what}, output {i}") for i, (a, b) in enumerate(zip(y, r)))
    assert torch.is_tensor(y), f"{what}: the spec gives a {type(y).__name__}, the reference a tensor"
    assert y.shape == r.shape and y.dtype == r.dtype, f"{what}: {tuple(y.shape)} vs {tuple(r.shape)}"
    err = (y - r).abs().max().item()
    scale = r.abs().max().item()
    assert err <= RTOL * max(scale, 1.0), f"{what}: max abs error {err:.3g} at output scale {scale:.3g}"
    return err / max(scale, 1.0)


def randomise_batchnorm(model, seed: int = 0) -> None:
    """Random running statistics and affine parameters in every batch norm (a fresh model has mean
    0, variance 1, scale 1, shift 0, under which confusing them, or skipping the layer, goes unseen)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5, generator=g)
                    m.bias.normal_(0.0, 0.2, generator=g)


def randomise_constants(model, seed: int = 1) -> None:
    """Noise on every parameter a fresh model holds at one constant: torchvision's ViT starts with a
    zero head and class token, unit layer norms and zero biases (its outputs are all zero, and any
    spec would match them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1 and p.std() == 0:
                p.add_(0.2 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_parity(row, record_property):
    """Strict state_dict load of the reference (random weights and batch-norm statistics), then the
    same outputs in eval at the default size and at ``alt_size``. The spec is compiled at each size
    (``size=``): a shape-specialised model (DeepLab's upsampling to the input) is only valid at the
    size it was checked for. The second one is built on the meta device and takes the reference's
    tensors (``assign``), so it costs no initialisation."""
    pytest.importorskip("archdsl.compile")
    ref = build_reference(row).eval()
    randomise_batchnorm(ref)
    randomise_constants(ref)
    state = ref.state_dict()
    for i, size in enumerate([row.input[1]] + ([row.alt_size] if row.alt_size else [])):
        params = row.spec_params if i == 0 else {**row.spec_params, "size": size}
        model = archdsl.load(spec_path(row), device=None if i == 0 else "meta", **params).eval()
        model.load_state_dict(state, strict=True, assign=i > 0)
        torch.manual_seed(0)
        x = torch.randn(1, row.input[0], size, size)
        with torch.inference_mode():
            y, r = model(x), ref(x)
        rel = assert_matches(y, r, f"{row.id} at {size}")
        record_property(f"rel_err_{size}", rel)
        print(f"parity {row.id} {size}x{size}: max relative error {rel:.3g}")


TRAINING_ROWS = [r for r in ROWS if r.spec in ("googlenet", "inception_v3") and r.spec_params.get("aux", True)]


@pytest.mark.parametrize("row", TRAINING_ROWS, ids=[r.id for r in TRAINING_ROWS])
def test_training_outputs(row):
    """In training, the outputs are the reference's named tuple: same arity, order and shapes (the
    field names are the spec's output names), and the same values under the same random seed."""
    pytest.importorskip("archdsl.compile")
    graph = archdsl.check(spec_path(row), **row.spec_params)
    ref = build_reference(row).train()
    model = archdsl.load(spec_path(row), **row.spec_params).train()
    model.load_state_dict(ref.state_dict(), strict=True)
    torch.manual_seed(0)
    x = torch.randn(2, *row.input)   # batch 2: batch norm in training needs two values per channel
    with torch.no_grad():
        torch.manual_seed(1)
        r = ref(x)
        torch.manual_seed(1)
        y = model(x)
    assert isinstance(r, tuple) and hasattr(r, "_fields")
    assert isinstance(y, tuple) and hasattr(y, "_fields"), f"training output is {type(y).__name__}"
    assert list(y._fields) == [o.name for o in graph.outputs]
    assert len(y) == len(r._fields)
    for field, ours, theirs in zip(r._fields, y, r):
        assert_matches(ours, theirs, f"{row.id} training output {field}")
