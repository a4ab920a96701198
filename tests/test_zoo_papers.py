"""The timm and paper-only half of the zoo, driven by ``zoo_reference_papers.py``.

* static (no compiler needed): the IR's invariants, the exact parameter count, the paper's
  reported figure at the paper's precision, the input shape, ``classes`` as a parameter, the
  ``meta`` lines, the line budget (imports included), the second input size; for timm nets the
  state_dict keys the IR implies (weighted node names plus each op's parameter / buffer
  suffixes) equal the timm model's;
* parity for timm nets (needs ``archdsl.compile``): the timm model's state_dict (BN statistics
  randomised so normalisation is exercised) loads strictly into the compiled spec and both give
  the same outputs in eval, at the default size and at ``alt_size``;
* stochastic depth and FractalNet's drop-path: the survival schedule and the merged joins in the
  IR, then, in training, branches measurably dropped at the specified rates, and eval deterministic.
"""
from __future__ import annotations

import math
import re
from itertools import combinations
from pathlib import Path

import pytest

import archdsl
from archdsl.zoo import source_lines
from conftest import ROOT, checked, state_suffixes
from zoo_reference_papers import BY_SPEC, ROWS, PaperRow

torch = pytest.importorskip("torch")

SPEC_DIR = ROOT / "specs"
LINE_BUDGET = 80                 # non-blank, non-comment lines in `archdsl fmt`'s layout, imported libraries included
IDS = [r.spec for r in ROWS]
TIMM_ROWS = [r for r in ROWS if r.timm_name]
GENERATORS = {"dcgan_generator"}   # noise in, an image out: no `classes`, no `size` (tests/test_zoo_new.py)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these batch-1 and small-input runs are faster so, and the suite runs
    in parallel workers (`-n 2`), where more threads per worker only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spec_path(row: PaperRow | str) -> Path:
    return SPEC_DIR / f"{row if isinstance(row, str) else row.spec}.arch"


def state_keys(graph) -> list[str]:
    keys = []
    for n in graph.nodes():
        d = graph.node(n)
        if d["params"] or d["buffers"]:
            keys += [f"{d['name']}.{s}" for s in state_suffixes(d)]
    return keys


def paper_figure(text: str) -> float:
    return float(text[:-1]) * {"K": 1e3, "M": 1e6}[text[-1]]


def timm_model(row: PaperRow, meta: bool = False):
    timm = pytest.importorskip("timm")
    if meta:
        with torch.device("meta"):
            return timm.create_model(row.timm_name, pretrained=False, **row.ref_kwargs)
    return timm.create_model(row.timm_name, pretrained=False, **row.ref_kwargs)


# ----------------------------------------------------------------------------- static

@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_static(row):
    path = spec_path(row)
    graph = checked(path, **row.spec_params)
    assert graph.total_params == row.params, f"{row.spec}: {graph.total_params:,} parameters, table says {row.params:,}"
    (inp,) = graph.inputs.values()
    assert graph.node(inp)["shape"] == row.input
    out = next(o for o in graph.outputs if o.name == "out")
    if row.spec not in GENERATORS:   # a classifier: `classes` and `size` are network parameters
        assert graph.node(out.node)["shape"] == (graph.params["classes"],)
        seven = checked(path, **{**row.spec_params, "classes": 7})
        assert seven.node(seven.outputs[0].node)["shape"] == (7,)
        assert graph.params["size"] == row.input[1] == row.input[2]
    assert isinstance(graph.meta.get("paper"), str) and isinstance(graph.meta.get("year"), int)
    assert graph.meta.get("reference") == row.reference     # `archdsl zoo` reads it
    lines = source_lines(archdsl.check(path))
    assert lines <= LINE_BUDGET, f"{row.spec}: {lines} lines with its imports, budget {LINE_BUDGET}"
    first = path.read_text().lstrip().splitlines()[0]
    assert first.startswith("#"), "the file opens with a comment naming the paper"
    if row.paper_params is not None:
        figure, step = row.paper_params
        assert round(graph.total_params / step) * step == pytest.approx(paper_figure(figure)), \
            f"{row.spec}: {graph.total_params:,} does not round to the paper's {figure} ({row.source})"


@pytest.mark.parametrize("row", [r for r in ROWS if r.alt_size], ids=[r.spec for r in ROWS if r.alt_size])
def test_alt_size(row):
    graph = checked(spec_path(row), **{**row.spec_params, "size": row.alt_size})
    (inp,) = graph.inputs.values()
    assert graph.node(inp)["shape"] == (row.input[0], row.alt_size, row.alt_size)
    pooled = any(graph.node(n)["op"] == "global_avgpool" for n in graph.nodes())
    if pooled:  # a globally pooled network has the same weights at any size
        assert graph.total_params == row.params


@pytest.mark.parametrize("row", TIMM_ROWS, ids=[r.spec for r in TIMM_ROWS])
def test_timm_state_dict_keys(row):
    graph = archdsl.check(spec_path(row), **row.spec_params)
    ref = timm_model(row, meta=True)
    keys, ref_keys = state_keys(graph), list(ref.state_dict())
    assert len(keys) == len(set(keys))
    assert set(keys) == set(ref_keys), (sorted(set(keys) - set(ref_keys))[:5], sorted(set(ref_keys) - set(keys))[:5])
    assert sum(p.numel() for p in ref.parameters()) == row.params == graph.total_params
    sd = ref.state_dict()
    for n in graph.nodes():  # element counts agree node by node (shapes are checked by the strict load)
        d = graph.node(n)
        if d["params"]:
            ours = sum(sd[f"{d['name']}.{s}"].numel() for s in state_suffixes(d) if s in ("weight", "bias"))
            assert ours == d["params"], d["name"]


# ----------------------------------------------------------------------------- parity with timm

@pytest.mark.parametrize("row", TIMM_ROWS, ids=[r.spec for r in TIMM_ROWS])
def test_timm_parity(row):
    pytest.importorskip("archdsl.compile")
    ref = timm_model(row).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics and affine terms
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=gen) * 0.1)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    state = ref.state_dict()
    for size in (row.input[1], row.alt_size):
        model = archdsl.load(spec_path(row), seed=0, **{**row.spec_params, "size": size}).eval()
        model.load_state_dict(state, strict=True)
        x = torch.randn(1, *row.input[:1], size, size, generator=gen)
        with torch.inference_mode():
            want, got = ref(x), model(x)
        assert got.shape == want.shape == (1, 1000)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=lambda m: f"{row.spec} at {size}: {m}")
        del model


# ----------------------------------------------------------------------------- stochastic depth

SD = "stochastic_depth_resnet110_cifar"


def sd_schedule(blocks: int = 54, p_last: float = 0.5) -> list[float]:
    return [1 - l / blocks * (1 - p_last) for l in range(1, blocks + 1)]


def residual_joins(graph) -> list[int]:
    """The add joins that carry a survival list: one per residual block, in order."""
    return [n for n in graph.nodes() if graph.node(n)["op"] == "add" and graph.node(n)["attrs"]["survival"]]


def test_stochastic_depth_schedule():
    graph = checked(spec_path(SD))
    joins = residual_joins(graph)
    assert len(joins) == 54
    survival = [graph.node(n)["attrs"]["survival"] for n in joins]
    assert [s[1] for s in survival] == [1.0] * 54          # the shortcut is never dropped
    assert [s[0] for s in survival] == pytest.approx(sd_schedule())
    assert survival[-1][0] == 0.5
    # the residual branch (input 0) is the block's conv path, ending in its second BN
    assert all(graph.node(graph.args(n)[0])["name"].endswith(".bn2") for n in joins)
    plain = checked(spec_path("resnet110_cifar"))
    assert all(plain.node(n)["attrs"]["survival"] == (1.0, 1.0) for n in residual_joins(plain))
    assert plain.total_params == graph.total_params


def test_stochastic_depth_drops_branches():
    """In training, block l's residual branch is dropped for a fraction 1 - p_l of the samples.

    Every residual branch is made exactly zero (its last BN has weight and bias 0) except block l's,
    which outputs the constant 1; a sample's output then equals the all-zero network's output
    exactly when block l's branch was dropped for it, whatever the batch statistics."""
    pytest.importorskip("archdsl.compile")
    graph = archdsl.check(spec_path(SD), size=4)
    model = archdsl.load(spec_path(SD), size=4, seed=0)
    bns = [graph.node(graph.args(n)[0])["name"] for n in residual_joins(graph)]
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in bns:
            params[f"{name}.weight"].zero_()
            params[f"{name}.bias"].zero_()
    model.train()
    n = 500
    x = torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    schedule = sd_schedule()
    with torch.no_grad():
        torch.manual_seed(2)
        base = model(x)
        for l in (0, 26, 53):
            params[f"{bns[l]}.bias"].fill_(1.0)
            out = model(x)
            params[f"{bns[l]}.bias"].zero_()
            dropped = torch.isclose(out, base, rtol=0, atol=1e-6).all(dim=1).float().mean().item()
            p = schedule[l]
            sigma = math.sqrt(p * (1 - p) / n)
            assert abs(dropped - (1 - p)) <= 5 * sigma + 0.005, f"block {l + 1}: dropped {dropped:.3f}, want {1 - p:.3f}"
        # eval: never dropped, deterministic
        model.eval()
        params[f"{bns[53]}.bias"].fill_(1.0)
        a, b = model(x[:4]), model(x[:4])
        assert torch.equal(a, b)


def test_stochastic_depth_eval_deterministic():
    pytest.importorskip("archdsl.compile")
    model = archdsl.load(spec_path(SD), seed=0, size=8)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.train()
        torch.manual_seed(0)
        t1 = model(x)
        t2 = model(x)
        model.eval()
        e1, e2 = model(x), model(x)
    assert not torch.equal(t1, t2)        # training draws branches afresh (and BN uses batch statistics)
    assert torch.equal(e1, e2)


# ----------------------------------------------------------------------------- FractalNet

FRACTAL = "fractalnet_cifar"


def mean_joins(graph) -> list[int]:
    return [n for n in graph.nodes() if graph.node(n)["op"] == "mean"]


def block_final_joins(graph) -> list[int]:
    """The join feeding each block's pooling."""
    return [graph.args(n)[0] for n in graph.nodes() if re.fullmatch(r"pool\d+", graph.node(n)["name"])]


def test_fractal_joins_merge():
    graph = checked(spec_path(FRACTAL))
    joins = mean_joins(graph)
    assert all(graph.node(n)["attrs"]["drop_path"] == 0.15 for n in joins)
    # C = 4: joins at depths 2, 4, 6, 8 of each block, over 2, 3, 2, 4 columns (the paper's Fig. 1)
    assert [len(graph.args(n)) for n in joins] == [2, 3, 2, 4] * 5
    finals = block_final_joins(graph)
    assert len(finals) == 5 and all(graph.node(n)["op"] == "mean" and len(graph.args(n)) == 4 for n in finals)
    # 15 convs per block; the deepest path has 5 x 8 = 40 conv layers
    convs = [n for n in graph.nodes() if graph.node(n)["op"] == "conv"]
    assert len(convs) == 5 * 15
    depth = {}
    for n in graph.nodes():
        here = 1 if graph.node(n)["op"] == "conv" else 0
        depth[n] = here + max((depth[u] for u in graph.args(n)), default=0)
    assert max(depth.values()) == 40
    # other column counts: the final join of a block has C inputs
    for c in (1, 2, 3):
        g = archdsl.check(spec_path(FRACTAL), columns=c, widths=[8, 8])
        finals = block_final_joins(g)
        assert all(len(g.args(n)) == c for n in finals) if c > 1 else all(g.node(n)["op"] == "relu" for n in finals)


def test_fractal_drop_path_in_training():
    """Local drop-path: in training each input of a join is dropped with probability 0.15 (at least
    one kept). The four columns of a one-block net are made to output the constants 1, 10, 100,
    1000 (their last BN has weight 0); the classifier averages the pooled features, so each sample's
    output is the mean over the columns its join kept, which identifies them."""
    pytest.importorskip("archdsl.compile")
    spec = dict(columns=4, widths=[4], size=2, classes=1)
    graph = archdsl.check(spec_path(FRACTAL), **spec)
    model = archdsl.load(spec_path(FRACTAL), seed=0, **spec)
    (final,) = block_final_joins(graph)
    consts = [1.0, 10.0, 100.0, 1000.0]
    params = dict(model.named_parameters())
    with torch.no_grad():
        for value, relu in zip(consts, graph.args(final)):
            bn = graph.node(graph.args(relu)[0])
            assert bn["op"] == "bn"
            params[f"{bn['name']}.weight"].zero_()
            params[f"{bn['name']}.bias"].fill_(value)
        params["fc.weight"].fill_(1 / 4)
        params["fc.bias"].zero_()
    subsets = [s for k in range(1, 5) for s in combinations(range(4), k)]
    means = torch.tensor([sum(consts[i] for i in s) / len(s) for s in subsets])
    assert len(set(means.tolist())) == len(subsets)
    n = 2000
    x = torch.randn(n, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    model.train()
    with torch.no_grad():
        torch.manual_seed(4)
        out = model(x)[:, 0]
    diff = (out[:, None] - means[None]).abs()
    assert diff.min(dim=1).values.max() < 1e-2, "every output is the mean of a subset of the columns"
    picked = diff.argmin(dim=1)
    kept = torch.zeros(n, 4)
    for j, s in enumerate(subsets):
        rows = (picked == j).nonzero().flatten()
        kept[rows[:, None], torch.tensor(s)[None]] = 1
    dropped = 1 - kept.mean(dim=0)
    want = 0.15 * (1 - 0.15 ** 3 / 4)  # dropped, unless all four were and this one is picked
    sigma = math.sqrt(want * (1 - want) / n)
    assert (dropped - want).abs().max().item() <= 5 * sigma, f"dropped fractions {dropped.tolist()}, want {want:.4f}"
    all_kept = (kept.sum(dim=1) == 4).float().mean().item()
    assert abs(all_kept - 0.85 ** 4) <= 5 * math.sqrt(0.85 ** 4 * (1 - 0.85 ** 4) / n)
    model.eval()
    with torch.no_grad():
        e1, e2 = model(x[:8]), model(x[:8])
    assert torch.equal(e1, e2)
    torch.testing.assert_close(e1[:, 0], torch.full((8,), sum(consts) / 4))


def test_fractal_eval_deterministic():
    pytest.importorskip("archdsl.compile")
    model = archdsl.load(spec_path(FRACTAL), seed=0, widths=[16, 16, 32, 32, 32])
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.train()
        torch.manual_seed(0)
        t1, t2 = model(x), model(x)
        model.eval()
        e1, e2 = model(x), model(x)
    assert not torch.equal(t1, t2)
    assert torch.equal(e1, e2)


# ----------------------------------------------------------------------------- other parameters

def test_wrn_dropout_parameter():
    base = checked(spec_path("wrn28_10_cifar"))
    with_dropout = checked(spec_path("wrn28_10_cifar"), dropout=0.3)
    drops = [n for n in with_dropout.nodes() if with_dropout.node(n)["op"] == "dropout"]
    assert len(drops) == 12 and all(with_dropout.node(n)["attrs"]["p"] == 0.3 for n in drops)
    assert not any(base.node(n)["op"] == "dropout" for n in base.nodes())
    assert with_dropout.total_params == base.total_params


def test_variants():
    """Network parameters reach the paper's other configurations."""
    zf_b = archdsl.check(spec_path("zfnet"), widths=[512, 1024, 512])
    assert zf_b.total_params > BY_SPEC["zfnet"].params
    assert archdsl.check(spec_path("resnet110_cifar"), depth=20).total_params == 269_722  # paper: ResNet-20, 0.27M
    assert archdsl.check(spec_path("resnet110_cifar"), depth=56).total_params == 853_018  # paper: ResNet-56, 0.85M
