"""Tensors a scope owns (`param NAME: [shape] = scheme`, `buffer ...`) and outputs by name
(`output {out, aux}`): named at their scope's path, lined up with the activations they join,
registered and initialised by the compiler, counted by the summary, drawn, and diagnosed."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import archdsl
from archdsl.compile import compile_graph, export_source
from archdsl.errors import ArchError

# ----------------------------------------------------------------------------- ConvNeXt's block

CONVNEXT = """
# ConvNeXt's block (Liu et al. 2022): depthwise 7x7, channels-first LayerNorm, an inverted MLP
# applied channels-last, and a learnable per-channel scale on the residual branch
block cnblock(c, scale = 0.5) {
    param layer_scale: [c, 1, 1] = constant(scale)
    residual {
        mul {
            branch: {
                dwconv: conv(c, 7, pad=3, groups=c)
                norm: layernorm_channels(eps=1e-6)
                permute([1, 2, 0])
                fc1: linear(4 * c, dim=-1) -> gelu
                fc2: linear(c, dim=-1)
                permute([2, 0, 1])
            }
            @layer_scale
        }
    }
}

block stage(c, n) {
    cnblock(c) * n
}

network tiny_convnext(c = 8) {
    input image: [3, 8, 8]
    features: {
        conv(c, 2, stride=2)
        stage(c, 2)
    }
}
"""


class CNBlock(nn.Module):
    """The same block written in torch, with the spec's state-dict names."""

    def __init__(self, c):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full((c, 1, 1), 0.5))
        self.branch = nn.ModuleDict({"dwconv": nn.Conv2d(c, c, 7, padding=3, groups=c),
                                     "norm": nn.LayerNorm(c, eps=1e-6),
                                     "fc1": nn.Linear(c, 4 * c), "fc2": nn.Linear(4 * c, c)})

    def forward(self, x):
        b = self.branch
        y = b["dwconv"](x).permute(0, 2, 3, 1)
        y = b["norm"](y).permute(0, 3, 1, 2)          # LayerNorm over the channels, channels first
        y = b["fc2"](F.gelu(b["fc1"](y.permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class TinyConvNeXt(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        stage = nn.ModuleDict({"0": CNBlock(c), "1": CNBlock(c)})
        self.features = nn.ModuleDict({"0": nn.Conv2d(3, c, 2, stride=2), "1": stage})

    def forward(self, x):
        x = self.features["0"](x)
        for block in self.features["1"].values():
            x = block(x)
        return x


def test_convnext_block_matches_torch():
    graph = archdsl.check(CONVNEXT)
    model = compile_graph(graph, seed=0).eval()
    names = dict(model.named_parameters())
    assert "features.1.0.layer_scale" in names and names["features.1.0.layer_scale"].shape == (8, 1, 1)
    assert torch.equal(names["features.1.1.layer_scale"], torch.full((8, 1, 1), 0.5))   # constant(scale)
    ref = TinyConvNeXt().eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    assert sorted(ref.state_dict()) == sorted(model.state_dict())
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(model(x), ref(x))   # (kernels may differ in the last bit: views laid out apart)
    assert graph.total_params == sum(p.numel() for p in ref.parameters())
    y = model(x)   # the scale learns: it gets a gradient
    y.sum().backward()
    assert names["features.1.0.layer_scale"].grad is not None
    assert graph.node(graph.by_name("features.1.0.layer_scale"))["batched"] is False


# ----------------------------------------------------------------------------- ViT's tokens

VIT = """
network tiny_vit(dim = 16) {
    input image: [3, 8, 8]
    param class_token: [1, 1, dim]
    conv_proj: conv(dim, 4, stride=4) -> flatten(1) -> transpose(0, 1)
    concat(dim=0) { @class_token; {} }
    encoder: {
        param pos_embedding: [1, 5, dim] = normal(std=0.02)
        add { {}; @pos_embedding }
        ln: layernorm
    }
    select(0, 0)
    head: linear(10)
}
"""


class TinyViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(1, 1, 16))
        self.conv_proj = nn.Conv2d(3, 16, 4, stride=4)
        self.encoder = nn.Module()
        self.encoder.pos_embedding = nn.Parameter(torch.empty(1, 5, 16).normal_(std=0.02))
        self.encoder.ln = nn.LayerNorm(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.encoder.ln(x + self.encoder.pos_embedding)
        return self.head(x[:, 0])


def test_class_token_and_position_embedding_match_torch():
    graph = archdsl.check(VIT)
    assert graph.node(graph.by_name("concat#1"))["shape"] == (5, 16)   # the token joins the 4 patches
    model = compile_graph(graph, seed=0).eval()
    assert torch.equal(model.class_token, torch.zeros(1, 1, 16))        # no scheme: zeros
    assert 0.005 < model.encoder.pos_embedding.std().item() < 0.05      # normal(std=0.02)
    ref = TinyViT().eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        model.class_token.normal_()    # a token that is not zero, to see it travel
        ref.class_token.copy_(model.class_token)
    x = torch.randn(2, 3, 8, 8)       # the token expands over a batch of 2
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
    assert "self.class_token.expand(x.shape[0], -1, -1)" in model.code
    assert graph.total_params == sum(p.numel() for p in ref.parameters())


def test_seed_gives_the_same_params():
    a, b = (compile_graph(archdsl.check(VIT), seed=3) for _ in range(2))
    assert torch.equal(a.encoder.pos_embedding, b.encoder.pos_embedding)


# ----------------------------------------------------------------------------- buffers, broadcasting

BUFFER = """
network masked() {
    input image: [4, 3, 3]
    buffer mask: [4, 1, 1] = ones
    param bias: [3] = uniform(1, 2)
    param w: [3, 2] = trunc_normal(std=0.5)
    mul { {}; @mask }
    add { {}; @bias }
    matmul { {}; @w }
}
"""


def test_buffer_is_state_not_a_parameter():
    graph = archdsl.check(BUFFER)
    assert (graph.total_params, graph.total_buffers) == (3 + 6, 4)
    model = compile_graph(graph, seed=0)
    assert "mask" in model.state_dict() and "mask" not in dict(model.named_parameters())
    assert torch.equal(model.mask, torch.ones(4, 1, 1))
    assert ((model.bias >= 1) & (model.bias <= 2)).all()
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(model(x), torch.matmul(x * model.mask + model.bias, model.w))
    assert graph.node(graph.nodes()[-1])["shape"] == (4, 3, 2)
    model.double()
    assert model.mask.dtype == torch.float64
    assert model(x.double()).dtype == torch.float64


def test_export_source_round_trip():
    for spec in (VIT, BUFFER, CONVNEXT):
        graph = archdsl.check(spec)
        model = compile_graph(graph, seed=1).eval()
        source = export_source(graph)
        namespace = {}
        exec(compile(source, "<export>", "exec"), namespace)   # the file alone: torch imports only
        cls = next(v for k, v in namespace.items() if isinstance(v, type) and issubclass(v, nn.Module))
        twin = cls().eval()
        twin.load_state_dict(model.state_dict(), strict=True)
        x = torch.randn(1, *graph.node(0)["shape"])
        torch.testing.assert_close(twin(x), model(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------- summary and drawing

def test_summary_counts_params_and_buffers():
    s = archdsl.summary(CONVNEXT)
    row = next(r for r in s.rows if r.name == "features.1.0.layer_scale")
    assert (row.op, row.output, row.params, row.macs, row.activation_bytes) == ("param constant", (8, 1, 1), 8, 0, 0)
    assert s.totals["params"] == sum(p.numel() for p in TinyConvNeXt().parameters())
    blocks = archdsl.summary(CONVNEXT, depth=3)   # features.1.0: the block, its layer scale included
    block = next(r for r in blocks.rows if r.name == "features.1.0")
    assert block.params == sum(p.numel() for p in CNBlock(8).parameters())
    b = archdsl.summary(BUFFER)
    assert (b.totals["params"], b.totals["buffers"]) == (9, 4)
    assert next(r for r in b.rows if r.name == "mask").activation_bytes == 0
    assert b.totals["activation_bytes"] == 4 * (36 + 36 + 24)   # input, mul, matmul (add adds into mul's output); none for tensors


def test_drawing_shows_the_param_and_its_edge():
    r = archdsl.render(VIT, depth=3)
    node = next(line for line in r.dot.splitlines() if "pos_embedding</b> param" in line)
    assert "shape=note" in node and "1×5×16 · 80 params" in node
    n = node.split()[0]
    assert any(line.strip().startswith(f"{n} -> ") for line in r.dot.splitlines())
    dot = archdsl.render(BUFFER).dot
    assert "dashed" in next(line for line in dot.splitlines() if "mask</b> buffer" in line)
    assert 'label="@"' in next(line for line in dot.splitlines() if 'tooltip="matmul#1"' in line)


def test_new_joins_have_symbols():
    from archdsl.draw import JOIN_SYMBOLS
    from archdsl.ops import OPS
    assert {n for n, op in OPS.items() if op.category == "join"} <= set(JOIN_SYMBOLS)
    assert (JOIN_SYMBOLS["sub"], JOIN_SYMBOLS["matmul"], JOIN_SYMBOLS["stack"], JOIN_SYMBOLS["sdpa"]) == \
        ("−", "@", "⊞", "attn")


# ----------------------------------------------------------------------------- outputs by name

SEGMENT = """
network seg(classes = 3) {
    input image: [3, 8, 8]
    backbone: conv(4, 3, pad=1) -> relu
    aux: tap(train_only=true) conv(classes, 1)
    out = classifier: conv(classes, 1)
    output {out, aux}
}
"""


def test_dict_outputs():
    graph = archdsl.check(SEGMENT)
    assert graph.output_dict and [o.name for o in graph.outputs] == ["out", "aux"]
    model = compile_graph(graph, seed=0)
    x = torch.randn(1, 3, 8, 8)
    train = model.train()(x)
    assert isinstance(train, dict) and list(train) == ["out", "aux"]
    assert train["out"].shape == (1, 3, 8, 8)
    evals = model.eval()(x)
    assert list(evals) == ["out"]                                  # the training-only tap is left out
    torch.testing.assert_close(evals["out"], train["out"])
    traced = torch.fx.symbolic_trace(model)                         # torch.fx traces a dict return
    torch.testing.assert_close(traced(x)["out"], evals["out"])


def test_one_output_by_name_is_a_dict():
    model = archdsl.load(net("a = relu", "output {a}"), seed=0)
    assert list(model(torch.randn(1, 4, 3, 3))) == ["a"]


def test_tuple_outputs_unchanged():
    graph = archdsl.check(SEGMENT.replace("output {out, aux}", "output out, aux"))
    assert not graph.output_dict
    out = compile_graph(graph, seed=0).train()(torch.randn(1, 3, 8, 8))
    assert type(out).__name__ == "SegOutputs" and out._fields == ("out", "aux")


def test_compile_command_writes_dict_outputs(tmp_path):
    from archdsl.cli import main
    spec, out = tmp_path / "seg.arch", tmp_path / "seg.py"
    spec.write_text(SEGMENT)
    assert main(["compile", str(spec), "-o", str(out)]) == 0
    namespace = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    y = namespace["Seg"]().eval()(torch.randn(1, 3, 8, 8))
    assert list(y) == ["out"] and y["out"].shape == (1, 3, 8, 8)


# ----------------------------------------------------------------------------- attention init

def test_init_rule_on_attention():
    graph = archdsl.check("""
network attn() {
    input tokens: [4, 8]
    attention(2)
    init attention = normal(std=0.5)
}""")
    model = compile_graph(graph, seed=0)
    m = model.get_submodule("0")
    assert isinstance(m, nn.MultiheadAttention)
    assert 0.3 < m.in_proj_weight.std().item() < 0.7 and 0.3 < m.out_proj.weight.std().item() < 0.7
    assert not m.in_proj_bias.any() and not m.out_proj.bias.any()


def test_init_weights_zeroes_attention_biases():
    from archdsl.initializers import init_weights
    m = nn.MultiheadAttention(4, 2)
    nn.init.ones_(m.in_proj_bias)
    init_weights(m, "ones")
    assert torch.equal(m.in_proj_weight, torch.ones(12, 4)) and torch.equal(m.out_proj.weight, torch.ones(4, 4))
    assert not m.in_proj_bias.any() and not m.out_proj.bias.any()


# ----------------------------------------------------------------------------- diagnostics

def diagnose(source: str) -> ArchError:
    with pytest.raises(ArchError) as info:
        archdsl.check(source)
    return info.value


def net(*lines: str, shape: str = "[4, 3, 3]") -> str:
    return "network n() {\n    input image: " + shape + "\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


@pytest.mark.parametrize("lines,code,line,col,wording", [
    (["param s: [4, 1, 1]", "@s -> relu"], "E095", 4, 11,
     "the param `s` [4, 1, 1] is not an activation: `relu` cannot take it"),
    (["param s: [4, 1, 1]", "mean { {}; @s }"], "E095", 4, 5, "`mean` cannot take the param `s` [4, 1, 1]"),
    (["param s: [4, 1, 1]", "mul { @s; @s }"], "E095", 4, 5, "`mul` joins only declared tensors (`s`, `s`)"),
    (["param s: [5, 1, 1]", "mul { {}; @s }"], "E044", 4, 5, "`mul` inputs do not broadcast: [4, 3, 3], [5, 1, 1]"),
    (["param s: [2, 4, 3, 3]", "add { {}; @s }"], "E044", 4, 5,
     "the param `s` [2, 4, 3, 3] does not line up with the activation [4, 3, 3] (batch excluded) in `add`"),
    (["param t: [4, 3, 3]", "concat { @t; {} }"], "E044", 4, 5,
     "the param `t` [4, 3, 3] does not line up with the activation [4, 3, 3] (batch excluded) in `concat`"),
    (["param s: [0, 3]"], "E094", 3, 14, "shape of param `s` must be a list of 1 to 8 positive integers, got [0, 3]"),
    (["buffer s: 3"], "E094", 3, 15, "the shape of buffer `s` must be a list of 1 to 8 positive integers, got 3"),
    (["param s: [3] = gaussian"], "E026", 3, 5, "unknown init scheme `gaussian`"),
    (["param s: [3] = default"], "E026", 3, 5, "a param has no `default` initialisation of its own"),
    (["param s: [3] = kaiming_normal"], "E020", 3, 5, "init `kaiming_normal` needs a tensor of 2 or more dims"),
    (["param s: [3] = normal(sd=1)"], "E022", 3, 27, "init scheme `normal` has no parameter `sd`"),
    (["param s: [3]", "buffer s: [3]"], "E030", 4, 5, "the name `s` is used twice"),
    (["s: relu", "param s: [3]"], "E030", 4, 5, "the name `s` is used twice"),
    (["param s: [4, 1, 1]", "t = @s", "output {t}"], "E015", 5, 13, "output `t` is the param `s`, not an activation"),
    (["a = relu", "output {a, a}"], "E015", 4, 16, "output `a` is given twice"),
    (["param s: [4, 1, 1]", "add(survival=[1, 0.5]) { {}; @s }"], "E095", 4, 9,
     "drop-path (`survival`) applies to activations, not to the param `s`"),
])
def test_diagnostics(lines, code, line, col, wording):
    e = diagnose(net(*lines))
    assert (e.code, e.span.line, e.span.col) == (code, line, col), str(e)
    assert wording in e.message, e.message
    assert e.hint


def test_bad_init_argument_is_caught_when_compiling():
    graph = archdsl.check(net("param w: [4, 3] = kaiming_normal(mode=\"sideways\")", "matmul { {}; @w }",
                              shape="[2, 4]"))
    with pytest.raises(ArchError) as info:
        export_source(graph)
    assert info.value.code == "E020" and info.value.span.line == 3
    assert "cannot initialise param `w`" in info.value.message


def test_names_and_counts_in_the_ir():
    graph = archdsl.check(CONVNEXT)
    graph.lint()
    d = graph.node(graph.by_name("features.1.1.layer_scale"))
    assert (d["op"], d["shape"], d["params"], d["buffers"]) == ("param", (8, 1, 1), 8, 0)
    assert d["attrs"] == {"kind": "param", "shape": (8, 1, 1), "scheme": "constant", "kwargs": {"value": 0.5}}
    assert math.prod(d["shape"]) == 8
