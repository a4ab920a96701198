"""The compiler: IR -> torch.nn.Module, checked against the IR, torchvision and PyTorch's tool chain
(torch.compile, torch.export, ONNX, pickling, DDP) and against its own standalone export."""
import copy
import io
import pickle
import re
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import archdsl
from archdsl.compile import compile_graph, export_source, run_compile
from archdsl.errors import ArchError, LimitError

RESNET = """
block basic(c, stride = 1) {
    add {
        { conv1: conv(c, 3, stride=stride, pad=1, bias=false) -> bn1: bn -> relu
          conv2: conv(c, 3, pad=1, bias=false) -> bn2: bn }
        if stride != 1 or in.c != c {
            downsample: { conv(c, 1, stride=stride, bias=false); bn }
        }
    }
    relu
}

network resnet(classes = 10) {
    input image: [3, 32, 32]
    conv1: conv(16, 3, pad=1, bias=false) -> bn1: bn -> relu
    for i in range(3) {
        layer{i+1}: { basic(16 * 2**i, stride = 1 if i == 0 else 2); basic(16 * 2**i) }
    }
    avgpool: global_avgpool -> flatten
    fc: linear(classes)
}
"""

# an inception module, a train-only aux head, a dense block, a residual with stochastic depth,
# a fractal mean join with drop-path, dropout
MIXED = """
block inception(c) {
    concat {
        b1: conv(c, 1) -> relu
        b2: { conv(c, 1) -> relu; conv(c, 3, pad=1) -> relu }
        b3: { maxpool(3, stride=1, pad=1); conv(c, 1) }
    }
}

network mixed(classes = 10) {
    input image: [3, 32, 32]
    stem: conv(16, 3, stride=2, pad=1, bias=false) -> bn -> relu
    aux1: tap(train_only=true) { adaptive_avgpool(2) -> conv(8, 1) -> flatten; fc: linear(classes) }
    inc: inception(8)
    dense1: dense {
        { bn -> relu -> conv(8, 3, pad=1) }
        { bn -> relu -> conv(8, 3, pad=1) }
    }
    res: residual(survival=0.5) { conv(in.c, 3, pad=1) -> bn -> silu }
    fractal: mean(drop_path=0.5) {
        conv(in.c, 3, pad=1) -> relu
        { conv(in.c, 1) -> relu; conv(in.c, 3, pad=1) -> relu }
    }
    head: global_avgpool -> flatten -> dropout(0.5)
    fc: linear(classes)
}
"""

# several outputs: an eval pair and a train-only tap; `feat` feeds on and must not be overwritten
TAPS = """
network tapnet(classes = 10) {
    input image: [3, 32, 32]
    stem: conv(8, 3, pad=1) -> relu
    aux: tap(train_only=true) { global_avgpool -> flatten -> linear(classes) }
    feat = body: { conv(16, 3, stride=2, pad=1) -> bn }
    logits = head: { relu -> global_avgpool -> flatten -> dropout(0.2) -> linear(classes) }
    output logits, feat, aux
}
"""

DENSE = """
network densenet(classes = 10, growth = 8) {
    input image: [3, 32, 32]
    features: {
        conv0: conv(16, 3, pad=1, bias=false) -> norm0: bn -> relu
        denseblock1: dense {
            for j in range(3) {
                denselayer{j+1}: { norm1: bn -> relu -> conv1: conv(4 * growth, 1, bias=false)
                                   norm2: bn -> relu -> conv2: conv(growth, 3, pad=1, bias=false) }
            }
        }
        transition1: { norm: bn -> relu -> conv: conv(in.c // 2, 1, bias=false) -> pool: avgpool(2) }
    }
    relu -> global_avgpool -> flatten
    classifier: linear(classes)
}
"""

SPECS = {"resnet": RESNET, "mixed": MIXED, "taps": TAPS, "dense": DENSE}


def outputs(y) -> list:
    return list(y) if isinstance(y, tuple) else [y]


@pytest.fixture(scope="module")
def graphs():
    return {k: archdsl.check(v) for k, v in SPECS.items()}


def x_for(graph, batch=2):
    torch.manual_seed(1)
    return torch.randn(batch, *graph.node(graph.inputs["image"])["shape"])


@pytest.mark.parametrize("spec", SPECS)
def test_shapes_params_grads(graphs, spec):
    g = graphs[spec]
    m = compile_graph(g, seed=0)
    assert sum(p.numel() for p in m.parameters()) == g.total_params
    assert sum(b.numel() for b in m.buffers()) == g.total_buffers
    names = {g.node(n)["name"] for n in g.nodes()}
    assert {k.rsplit(".", 1)[0] for k in m.state_dict()} <= names
    y = m.train()(x_for(g))
    want = [o for o in g.outputs]
    assert [tuple(t.shape[1:]) for t in outputs(y)] == [g.node(o.node)["shape"] for o in want]
    if len(want) > 1:
        assert y._fields == tuple(o.name for o in want)
    sum(t.float().mean() for t in outputs(y)).backward()
    assert all(p.grad is not None for p in m.parameters())
    forward = m.code[m.code.index("def forward"):]
    assert " for " not in forward and "cuda" not in m.code and m.code == export_source(g)


def test_train_eval_behaviour(graphs):
    m = compile_graph(graphs["mixed"], seed=0)
    x = x_for(graphs["mixed"])
    y = m.train()(x)
    assert type(y).__name__ == "MixedOutputs" and y._fields == ("out", "aux1")
    assert not torch.equal(m(x).out, m(x).out)                      # dropout, drop-path, fractal drop
    m.eval()
    a, b = m(x), m(x)
    assert isinstance(a, torch.Tensor) and torch.equal(a, b)        # bare tensor, deterministic, no tap
    assert "if self.training:" in m.code

    t = compile_graph(graphs["taps"], seed=0)
    train, ev = t.train()(x), t.eval()(x)
    assert train._fields == ("logits", "feat", "aux") and ev._fields == ("logits", "feat")
    assert (ev.feat < 0).any()               # `feat` was not overwritten by the relu that follows it


def test_seed(graphs):
    g = graphs["mixed"]
    state = torch.random.get_rng_state()
    a, b, c = (compile_graph(g, seed=s).state_dict() for s in (3, 3, 4))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_load_api_device_dtype_limits(graphs, tmp_path):
    path = tmp_path / "resnet.arch"
    path.write_text(RESNET)
    m = archdsl.load(path, classes=7, dtype=torch.float64, device="cpu")
    assert m.fc.out_features == 7 and m.fc.weight.dtype == torch.float64
    assert type(m).__name__ == "Resnet" and m.ir.total_params == sum(p.numel() for p in m.parameters())
    assert archdsl.loads(RESNET, inputs={"image": [3, 16, 16]})(torch.randn(1, 3, 16, 16)).shape == (1, 10)
    with pytest.raises(LimitError):
        compile_graph(graphs["resnet"], limits={"params": 1000})


def test_bad_names_and_init():
    with pytest.raises(ArchError) as e:
        archdsl.loads("network n() {\n input image: [3, 8, 8]\n train: conv(4, 3)\n}")
    assert e.value.code == "E032"
    with pytest.raises(ArchError) as e:
        archdsl.loads('network n() {\n input image: [3, 8, 8]\n init "*" = kaiming_normal\n conv(4, 3) -> bn\n}')
    assert e.value.code == "E020" and "bn" in e.value.message


def test_init_rules():
    spec = RESNET.replace("input image", 'init conv = kaiming_normal(mode="fan_out", nonlinearity="relu")\n'
                          '    init "*.bn2" = zeros\n    init linear = normal(std=0.01)\n    input image')
    m = archdsl.loads(spec, seed=0)
    bn2 = [mod for name, mod in m.named_modules() if name.endswith(".bn2")]
    assert len(bn2) == 6 and all(not b.weight.any() and not b.bias.any() for b in bn2)
    assert all(b.weight.eq(1).all() for name, b in m.named_modules() if name.endswith("bn1"))
    w = m.layer3["0"]["conv1"].weight
    assert abs(w.std().item() / (2 / (w.shape[0] * 9)) ** 0.5 - 1) < 0.1
    assert abs(m.fc.weight.std().item() / 0.01 - 1) < 0.1 and not m.fc.bias.any()
    assert "init_weights(m, 'kaiming_normal'" in m.code


def test_resnet50_parity_with_torchvision():
    torchvision = pytest.importorskip("torchvision")
    ours, theirs = archdsl.loads(RESNET50).eval(), torchvision.models.resnet50().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_standalone_export(graphs, tmp_path):
    for spec in ("mixed", "taps"):
        g = graphs[spec]
        m = compile_graph(g, seed=0).eval()
        out = tmp_path / f"{spec}.py"
        run_compile(g, out)
        text = out.read_text()
        assert "archdsl" not in re.sub(r'""".*?"""', "", text, flags=re.S)  # no import of archdsl
        namespace = {"__name__": spec}
        exec(compile(text, str(out), "exec"), namespace)
        cls = namespace[type(m).__name__]
        standalone = cls().eval()
        standalone.load_state_dict(m.state_dict(), strict=True)
        x = x_for(g)
        for a, b in zip(outputs(m(x)), outputs(standalone(x))):
            assert torch.equal(a, b)
        torch.manual_seed(5)
        ref = cls().state_dict()          # the same initialisation from the same seed
        assert all(torch.equal(ref[k], v) for k, v in compile_graph(g, seed=5).state_dict().items())


def test_cli_compile(tmp_path, capsys):
    from archdsl.cli import main
    spec = tmp_path / "resnet.arch"
    spec.write_text(RESNET)
    assert main(["compile", str(spec), "-o", str(tmp_path / "out" / "resnet.py"), "--set", "classes=3"]) == 0
    assert "class Resnet" in capsys.readouterr().out
    source = (tmp_path / "out" / "resnet.py").read_text()   # the idiomatic export (archdsl/export.py)
    assert "nn.Linear(64, classes)" in source and "def __init__(self, classes=3" in source


def test_pickle_save_deepcopy(graphs):
    m = compile_graph(graphs["mixed"], seed=0).eval()
    x = x_for(graphs["mixed"])
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    copies = [torch.load(buf, weights_only=False), pickle.loads(pickle.dumps(m)), copy.deepcopy(m)]
    for c in copies:
        assert type(c).__name__ == "Mixed" and c.code == m.code and not c.training
        assert torch.equal(c(x), m(x))
    copies[2].fc.weight.data.zero_()
    assert m.fc.weight.any()


def test_channels_last_and_bf16_autocast(graphs):
    m = compile_graph(graphs["resnet"], seed=0).eval()
    x = x_for(graphs["resnet"])
    ref = m(x)
    cl = copy.deepcopy(m).to(memory_format=torch.channels_last)
    torch.testing.assert_close(cl(x.to(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=0.1, atol=0.1)


@pytest.mark.parametrize("train", [False, True])
def test_torch_compile_fullgraph(graphs, train):
    m = compile_graph(graphs["mixed"], seed=0).train(train)
    x = x_for(graphs["mixed"])
    torch._dynamo.reset()
    c = torch.compile(m, fullgraph=True, backend="aot_eager")
    y = c(x)
    if train:
        assert y._fields == ("out", "aux1")
        sum(t.sum() for t in y).backward()
    else:
        assert torch.equal(y, m(x))


def test_torch_export(graphs):
    g = graphs["taps"]
    m = compile_graph(g, seed=0).eval()
    x = x_for(g)
    ep = torch.export.export(m, (x,))
    for a, b in zip(outputs(ep.module()(x)), outputs(m(x))):
        torch.testing.assert_close(a, b)
    assert len(torch.export.export(m.train(), (x,)).module()(x)) == 3


def test_onnx_onnxruntime(graphs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    g = graphs["mixed"]
    m = compile_graph(g, seed=0).eval()
    x = x_for(g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), dynamo=True).save(str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), m(x).detach(), rtol=1e-4, atol=1e-5)


def test_ddp_world_size_1(graphs, tmp_path):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        m = nn.parallel.DistributedDataParallel(compile_graph(graphs["resnet"], seed=0))
        x = x_for(graphs["resnet"])
        F.cross_entropy(m(x), torch.tensor([1, 2])).backward()
        assert all(p.grad is not None for p in m.parameters())
    finally:
        dist.destroy_process_group()


RESNET50 = """
block bottleneck(width, stride = 1, groups = 1, base_width = 64) {
    let w   = width * base_width / 64 * groups
    let out = width * 4
    add {
        {
            conv1: conv(w, 1, bias=false) -> bn1: bn -> relu
            conv2: conv(w, 3, stride=stride, pad=1, groups=groups, bias=false) -> bn2: bn -> relu
            conv3: conv(out, 1, bias=false) -> bn3: bn
        }
        if stride != 1 or in.c != out {
            downsample: { conv(out, 1, stride=stride, bias=false); bn }
        }
    }
    relu
}

network resnet50(classes = 1000) {
    input image: [3, 224, 224]
    conv1: conv(64, 7, stride=2, pad=3, bias=false) -> bn1: bn -> relu
    maxpool: maxpool(3, stride=2, pad=1)
    for i, n in enumerate([3, 4, 6, 3]) {
        layer{i+1}: {
            bottleneck(64 * 2**i, stride = 1 if i == 0 else 2)
            bottleneck(64 * 2**i) * (n - 1)
        }
    }
    avgpool: global_avgpool -> flatten
    fc: linear(classes)
}
"""
