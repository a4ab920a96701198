"""The idiomatic export (``archdsl compile -o``): one class per block, the same model as ``archdsl.load``.

Every exported network is checked against the compiled one: the same state-dict keys, a strict
load of the compiled model's weights, and outputs equal to the bit in eval mode. One spec per
family runs by default; every zoo spec runs under the slow marker.
"""
from __future__ import annotations

import ast
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import archdsl
from archdsl.compile import class_name, compile_graph
from archdsl.export import export_idiomatic, export_module_source

SPECS = Path(__file__).resolve().parent.parent / "specs"
ZOO = sorted(p.stem for p in SPECS.glob("*.arch"))
# input sizes small enough to be quick and large enough for every stage (inception's auxiliary heads)
SIZE = {"inception_v3": 299, "inception_v4": 160, "inception_resnet_v2": 160, "googlenet": 96, "vit_b_16": 32,
        "alexnet_2012": 128, "zfnet": 128}
FAMILIES = ["resnet18", "resnet50", "densenet121", "googlenet", "inception_v3", "squeezenet1_0", "vgg11",
            "ghostnet_100"]
SLOW_FAMILIES = ["vit_b_16", "deeplabv3_resnet50"]


def graph_of(name: str, fast: bool = False):
    params = archdsl.check(SPECS / f"{name}.arch").params
    kwargs = {"size": SIZE.get(name, min(params["size"], 64))} if "size" in params else {}
    if name == "vit_b_16":   # a small ViT: the same code, 1/100 of the weights
        kwargs.update(dim=64, mlp=128, heads=4, depth=2, patch=8)
    if fast and name == "inception_v3":   # without its auxiliary head, which needs 299 pixels
        kwargs.update(aux=False, size=96)
    return archdsl.check(SPECS / f"{name}.arch", **kwargs)


def weights_of(graph) -> dict:
    """The compiled model's state dict, filled quickly with small random weights (initialising a
    VGG's 120M classifier weights by its init rules would take seconds), batch-norm statistics
    near 0 and 1 so that deep networks stay finite."""
    ref = compile_graph(graph, device="meta").to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, t in ref.state_dict().items():
            if not t.is_floating_point():
                t.zero_()
            elif key.endswith("running_var"):
                t.copy_(1 + 0.1 * torch.rand(t.shape, generator=gen))
            else:
                fan_in = t[0].numel() if t.dim() > 1 else 10
                t.copy_(torch.randn(t.shape, generator=gen) / fan_in ** 0.5)
    return ref


def build(graph, source: str | None = None, device=None):
    """The exported network's namespace, run from its source with torch alone in scope, and an instance."""
    source = source or export_module_source(graph)
    namespace: dict = {"__name__": "exported"}
    exec(compile(source, f"<export:{graph.network}>", "exec"), namespace)
    cls = namespace[class_name(graph.network)]
    with torch.device(device or "cpu"):
        return namespace, cls()


def outputs(y) -> list:
    if isinstance(y, dict):
        return list(y.values())
    return list(y) if isinstance(y, tuple) else [y]


def assert_same_model(graph, source: str | None = None) -> tuple:
    """The export of ``graph`` is the compiled model: its keys, its weights (a strict load)
    and its outputs in eval mode, to the bit."""
    source = source or export_idiomatic(graph)
    _, mine = build(graph, source, device="meta")   # every tensor is in the state dict: all are assigned
    ref = weights_of(graph)
    assert sorted(mine.state_dict()) == sorted(ref.state_dict())   # an optional group may be registered later
    mine.load_state_dict(ref.state_dict(), strict=True, assign=True)
    mine.eval(), ref.eval()
    torch.manual_seed(0)
    x = {k: torch.randn(1, *graph.node(n)["shape"]) for k, n in graph.inputs.items()}
    with torch.no_grad():
        a, b = outputs(mine(**x)), outputs(ref(**x))
    assert len(a) == len(b)
    for p, q in zip(a, b):
        assert torch.equal(p, q)
    return source, mine, x


# ----------------------------------------------------------------------------- ResNet-50, pinned

@pytest.fixture(scope="module")
def resnet50():
    graph = archdsl.check(SPECS / "resnet50.arch")
    source = export_idiomatic(graph)
    return graph, source, build(graph, source)[0]


def test_resnet50_classes_and_signatures(resnet50):
    graph, source, namespace = resnet50
    tree = ast.parse(source)
    assert [n.name for n in tree.body if isinstance(n, ast.ClassDef)] == ["Bottleneck", "Resnet50"]
    assert str(inspect.signature(namespace["Bottleneck"])) == \
        "(in_channels, planes, stride=1, groups=1, base_width=64, dilation=1)"
    assert str(inspect.signature(namespace["Resnet50"])) == "(classes=1000, size=224)"
    # the body's condition is the block's `if`, its `let` a local; layers are written with the parameters
    assert "if stride != 1 or in_channels != planes * 4:" in source
    assert "w = planes * base_width // 64 * groups" in source
    assert "self.conv1 = nn.Conv2d(in_channels, w, 1, bias=False)" in source
    assert "self.fc = nn.Linear(2048, classes)" in source
    assert ("        self.layer1 = nn.Sequential(\n"   # ruff's layout: the arguments on one line of their own
            "            Bottleneck(64, 64), Bottleneck(256, 64), Bottleneck(256, 64)\n        )\n") in source
    assert "ModuleDict" not in source and "F.relu(out)" in source


def test_resnet50_structure_is_torchvision_like(resnet50):
    graph, source, namespace = resnet50
    with torch.device("meta"):
        model = namespace["Resnet50"](classes=10)
    assert model.fc.out_features == 10                      # a parameter reaches the layers written with it
    assert isinstance(model.layer2, nn.Sequential) and type(model.layer2[0]).__name__ == "Bottleneck"
    assert model.layer2[0].downsample is not None and model.layer2[1].downsample is None
    assert {type(m).__name__ for m in model.modules()} == {
        "Resnet50", "Bottleneck", "Sequential", "Conv2d", "BatchNorm2d", "MaxPool2d", "AdaptiveAvgPool2d", "Linear"}
    with torch.device("meta"):   # a block class stands alone, its `if` taken from its own arguments
        b = namespace["Bottleneck"](256, 64, stride=2)
    assert b.downsample is not None and b.conv2.stride == (2, 2) and b.conv3.out_channels == 256
    assert sum(p.numel() for p in model.parameters()) + 2048 * 990 + 990 == graph.total_params


# ----------------------------------------------------------------------------- every spec = archdsl.load

def assert_traceable(model, x: dict, export: bool = True) -> None:
    """``torch.fx.symbolic_trace`` (and ``torch.export.export``) take the exported model and agree with it."""
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        y = outputs(model(**x))
        for p, q in zip(y, outputs(traced(**x))):
            assert torch.equal(p, q)
    if export:
        exported = torch.export.export(model, (), kwargs=x)
        with torch.no_grad():
            for p, q in zip(y, outputs(exported.module()(**x))):
                assert torch.allclose(p, q, atol=1e-5)


EXPORTED = ["resnet18", "squeezenet1_0"]   # torch.export takes seconds a network: the others run with -m slow


@pytest.mark.parametrize("name", FAMILIES)
def test_export_equals_load_and_traces(name):
    _, model, x = assert_same_model(graph_of(name, fast=True))
    assert_traceable(model, x, export=name in EXPORTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in FAMILIES if n not in EXPORTED] + SLOW_FAMILIES)
def test_export_equals_load_and_traces_slow(name):
    _, model, x = assert_same_model(graph_of(name))
    assert_traceable(model, x)


FLAT = {"fractalnet_cifar"}   # a block with several outputs: the flat export, said in its header


@pytest.fixture(scope="module")
def zoo_exports(tmp_path_factory):
    """Every zoo spec's graph and the file ``archdsl compile -o`` writes for it (the idiomatic
    export, but the flat one for FLAT), in one folder: exported once for the tests below."""
    from archdsl.export import Unsupported
    folder = tmp_path_factory.mktemp("zoo_exports")
    exports = {}
    for name in ZOO:
        graph = graph_of(name)
        if name in FLAT:
            with pytest.raises(Unsupported):
                export_idiomatic(graph)
            source = export_module_source(graph)
        else:
            source = export_idiomatic(graph)
        (folder / f"{name}.py").write_text(source)
        exports[name] = graph, source
    return folder, exports


def test_every_zoo_spec_exports(zoo_exports):
    """Every zoo spec exports idiomatically (but FLAT), builds the compiled model's tensors and runs
    forward on the meta device (shapes only, nothing allocated)."""
    from archdsl.compile import _build, _load_class, export_source
    for name, (graph, source) in zoo_exports[1].items():
        if name in FLAT:
            continue
        _, mine = build(graph, source, device="meta")
        ref = _build(_load_class(export_source(graph), class_name(graph.network)), None, "meta")
        assert {k: v.shape for k, v in mine.state_dict().items()} == \
            {k: v.shape for k, v in ref.state_dict().items()}, name
        x = {k: torch.empty(1, *graph.node(n)["shape"], device="meta") for k, n in graph.inputs.items()}
        with torch.no_grad():
            y = outputs(mine.eval()(**x))
        assert [tuple(t.shape[1:]) for t in y] == [tuple(graph.node(o.node)["shape"]) for o in graph.outputs
                                                   if not o.train_only], name


def _ruff() -> str:
    """The ruff executable: the one installed next to this Python first, else one on PATH."""
    here = Path(sys.executable).parent / "ruff"
    found = str(here) if here.is_file() else shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (it is in the test extras: pip install ruff)")
    return found


# statements the zoo's exports do not have, each a layout rule of ruff's: one operator and a call at
# the end (no parentheses), operators one a line, a chain of calls, slices, quotes, powers, a one-tuple
LAYOUT_CASES = """\
# ruff: noqa
def cases():
    pick = torch.arange(n, device=x.device).unsqueeze(1) == torch.randint(n, (1, b), device=x.device)
    keep = (keep | (pick & ~keep.any(0))).to(x.dtype).view((n, b) + (1,) * (x.dim() - 2))
    out = out1 + out2 + out3 + out4 + out5 + out6 + out7 + out8 + out9 + out10 + out11 + out12
    out = self.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa(x) + self.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb(x)
    out = self.encoder["layersaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"](xaaaaaaaaaaa)
    out = self.self_attention(out, out, out, need_weights=Falseeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee)[0]
    out = F.interpolate(out, size=(3, 3), mode='bilinear', align_corners=False).flatten(1).foo(2)
    if stride != 1 or in_channels != planes * 4 or aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:
        self.x = nn.Conv2d(in_channels, r + 4 if r < 0.9 * (c * ratioooooooooooooooooooooooooooooooooo) else r, 1)
    x = {"a": (1,), "b": 2222222222222222222222222222222222222222222222, "c": 33333333333333333333333333333}
    w = out[:, 0:self.out] + out[:, 1:] + planes * 2 ** i + x ** (k + 1) + self.a ** -1 + f(x) ** 2 + x.y ** b.c
"""


def test_exports_are_ruff_formatted_and_clean(zoo_exports):
    """The files ``archdsl compile -o`` writes are what ``ruff format`` writes (its default style:
    88 columns) and pass ``ruff check``'s default rules and isort's order, with no configuration
    (``--isolated``): one ruff run over every zoo spec's export, and over statements laid out as
    the export lays out its own."""
    from archdsl.export_text import layout
    ruff, folder = _ruff(), zoo_exports[0]
    (folder / "layout_cases.py").write_text(layout(LAYOUT_CASES))
    form = subprocess.run([ruff, "format", "--isolated", "--check", "--diff", "."], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert form.returncode == 0, form.stdout[-4000:] + form.stderr[-2000:]
    check = subprocess.run([ruff, "check", "--isolated", "--extend-select", "W,I", "--output-format", "concise",
                            "."], cwd=folder, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ZOO if n not in FAMILIES + SLOW_FAMILIES])
def test_export_equals_load_all(name):
    graph = graph_of(name)
    assert_same_model(graph, export_module_source(graph) if name in FLAT else None)


def test_training_only_outputs():
    """A tap's branch runs in training only, and the outputs are the compiled model's namedtuple."""
    text = ("block head(classes) { global_avgpool -> flatten -> fc: linear(classes) }\n"
            "network t(classes = 3) {\n    input image: [3, 16, 16]\n"
            "    stem: conv(8, 3, pad=1) -> relu -> maxpool(2, stride=2)\n"
            "    aux: tap(train_only=true) head(classes)\n"
            "    logits = body: conv(8, 3, pad=1) -> global_avgpool -> flatten -> fc: linear(classes)\n"
            "    output logits, aux\n}\n")
    graph = archdsl.check(text, text=True)
    source, mine, x = assert_same_model(graph)
    assert "if self.training:" in source and "F.max_pool2d(x, 2, stride=2)" in source
    assert "self.aux = Head(8, classes)" in source and "self.fc = nn.Linear(in_channels, classes)" in source
    ref = weights_of(graph)
    mine.train(), ref.train()
    a, b = mine(**x), ref(**x)
    assert type(a).__name__ == "TOutputs" and a._fields == b._fields == ("logits", "aux")
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_runs_with_torch_alone(tmp_path):
    """The exported file imports torch only: run it in a fresh interpreter, archdsl never imported."""
    graph = graph_of("resnet18")
    path = tmp_path / "model.py"
    path.write_text(export_module_source(graph))
    ref = compile_graph(graph, seed=0).eval()
    torch.save(ref.state_dict(), tmp_path / "weights.pt")
    x = torch.randn(1, 3, 64, 64)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = ref(x)
    script = ("import json, runpy, sys, torch\n"
              "ns = runpy.run_path('model.py')\n"
              "m = ns['Resnet18']()\n"
              "m.load_state_dict(torch.load('weights.pt'))\n"
              "m.eval()\n"
              "torch.save(m(torch.load('x.pt')).detach(), 'y.pt')\n"
              "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] == 'archdsl')))\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
    assert torch.equal(torch.load(tmp_path / "y.pt"), expected)


# ----------------------------------------------------------------------------- what the export writes

def test_specialisations_are_said():
    """A block whose instances need different bodies gets numbered classes with a comment saying so;
    every class still builds the compiled model."""
    source, _, _ = assert_same_model(graph_of("ghostnet_100"))
    assert "class Ghost(nn.Module):" in source and "class Ghost_2(nn.Module):" in source
    assert "# A specialisation of block `ghost`" in source


def test_flat_fallback_says_so():
    """A spec the idiomatic export does not cover (here a join of 65 branches) gets the flat export,
    with a header comment saying why; it is still the compiled model."""
    graph = archdsl.check("network n() {\n    input x: [3, 8, 8]\n    add { for i in range(65) { conv(4, 1) } }\n}\n",
                          text=True)
    source, _, _ = assert_same_model(graph, export_module_source(graph))
    assert source.startswith("# This is archdsl's flat export")
    assert "a join has more than 64 inputs" in source


def test_lets_conditions_and_parameters_from_text():
    text = ("block unit(c, stride = 1) {\n    let mid = c // 2\n"
            "    add { { a: conv(mid, 1) -> bn -> relu -> b: conv(c, 3, stride=stride, pad=1) }\n"
            "          if stride != 1 or in.c != c { proj: { conv(c, 1, stride=stride); bn } } }\n}\n"
            "network tiny(width = 8, classes = 3) {\n    input image: [3, 16, 16]\n"
            "    stem: conv(width, 3, pad=1) -> unit(width) -> unit(width * 2, stride=2) -> unit(width * 2)\n"
            "    global_avgpool -> flatten -> fc: linear(classes)\n}\n")
    graph = archdsl.check(text, text=True)
    source, model, _ = assert_same_model(graph)
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert classes == ["Unit", "Tiny"]
    assert "def __init__(self, in_channels, c, stride=1):" in source
    assert "mid = c // 2" in source and "if stride != 1 or in_channels != c:" in source
    assert "def __init__(self, width=8, classes=3):" in source
    assert "self.stem = nn.Conv2d(3, width, 3, padding=1)" in source
    assert "Unit(width, width)" in source and "Unit(width, width * 2, stride=2)" in source
    assert "Unit(width * 2, width * 2)" in source
    assert "self.fc = nn.Linear(width * 2, classes)" in source


def test_block_takes_the_input_dimensions_it_reads():
    """A block whose body reads its input's height and width (``in.shape[1]``, ``in.shape[2]``)
    takes them after ``in_channels``, named as the spec's ``in.h`` and ``in.w``; the network
    passes them, and the class builds for another input size."""
    text = ("block squash(c) {\n    conv(c, 1) -> bn -> pool: avgpool([in.shape[1], in.shape[2]]) -> flatten"
            " -> fc: linear(c * in.shape[1] // in.shape[2])\n}\n"
            "network t(width = 8) {\n    input image: [3, 12, 6]\n"
            "    stem: conv(width, 3, pad=1) -> squash(width)\n}\n")
    graph = archdsl.check(text, text=True)
    source, _, _ = assert_same_model(graph)
    namespace, _ = build(graph, source, device="meta")
    assert str(inspect.signature(namespace["Squash"])) == "(in_channels, in_height, in_width, c)"
    assert "self.pool = nn.AvgPool2d((in_height, in_width))" in source
    assert "self.fc = nn.Linear(c, c * in_height // in_width)" in source
    assert 'self.add_module("1", Squash(width, 12, 6, width))' in source
    with torch.device("meta"):
        block = namespace["Squash"](4, 10, 5, 4)
    assert block.pool.kernel_size == (10, 5) and block.fc.out_features == 8


def test_sequence_block_takes_its_length(zoo_exports):
    """ViT's encoder layer reads its [tokens, dim] input's width (``in.shape[1]``, and the layers
    that keep it): the class takes ``in_length``, the spec's ``in.l``."""
    source = zoo_exports[1]["vit_b_16"][1]
    assert "def __init__(self, in_channels, in_length, heads, mlp, p=0.0, attention_p=0.0):" in source
    assert "self.ln_1 = nn.LayerNorm((in_length,), eps=1e-06)" in source
    assert "nn.Linear(in_length, mlp)," in source and "nn.Linear(mlp, in_length)," in source


def test_torchinfo_and_torchview_show_the_blocks(resnet50):
    """What users see of the exported network in the tools they use: the block classes, never a ModuleDict."""
    torchinfo = pytest.importorskip("torchinfo")
    torchview = pytest.importorskip("torchview")
    _, _, namespace = resnet50
    model = namespace["Resnet50"](classes=10, size=64).eval()
    table = str(torchinfo.summary(model, input_size=(1, 3, 64, 64), depth=2, verbose=0))
    assert "Bottleneck: 2-1" in table and "Sequential: 1-5" in table and "ModuleDict" not in table
    drawing = torchview.draw_graph(model, input_size=(1, 3, 64, 64), depth=2, expand_nested=True).visual_graph.source
    assert "Bottleneck" in drawing and "ModuleDict" not in drawing
