"""What the zoo tables do not reach for the DCGAN generator and the Vision Transformer.

* DCGAN (``specs/dcgan_generator.arch``): no library has it, so the reference is the PyTorch
  DCGAN example's ``Generator`` written out here as an ``nn.Sequential`` named ``main``; its
  state dict (random weights and batch-norm statistics) loads strictly and the outputs are
  identical, in eval and, at batch 2, in training; the spec's init is the example's
  ``weights_init``.
* ViT-B/16 (``specs/vit_b_16.arch``): torchvision's ``vit_b_16`` initialises its head, class token,
  layer norms and biases to constants (its outputs are all zero), under which a wrong token order
  or a skipped layer norm goes unseen; here every one of them is randomised before the strict
  load, and the outputs are compared at 224 and, through ``size=112``, against
  ``vit_b_16(image_size=112)``. The reference is built once per module (ViT-B is 86M parameters).
  Also: the state-dict keys and shapes the IR implies (the declared ``class_token`` and
  ``encoder.pos_embedding`` among them), torchvision's init, and its dropout in training.
"""
from __future__ import annotations

import pytest

import archdsl
from conftest import ROOT, checked

torch = pytest.importorskip("torch")
nn = torch.nn

SPECS = ROOT / "specs"
DCGAN = SPECS / "dcgan_generator.arch"


@pytest.fixture(autouse=True, scope="module")
def two_threads():
    """Two intra-op threads at most: batch-1 runs gain little from more, and CI runs workers side by side."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- DCGAN

class Generator(nn.Module):
    """The DCGAN example's Generator: `main`, a Sequential of transposed convs, BN, ReLU and a Tanh."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3):
        super().__init__()
        layers, c = [], nz
        for i, m in enumerate([8, 4, 2, 1]):
            layers += [nn.ConvTranspose2d(c, ngf * m, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False),
                       nn.BatchNorm2d(ngf * m), nn.ReLU(True)]
            c = ngf * m
        self.main = nn.Sequential(*layers, nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, x):
        return self.main(x)


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.2, generator=g)


def test_dcgan_generator_shapes_and_count():
    graph = checked(DCGAN)
    ref = Generator()
    assert graph.total_params == sum(p.numel() for p in ref.parameters()) == 3_576_704
    assert graph.total_buffers == sum(b.numel() for b in ref.buffers())
    (inp,) = graph.inputs.values()
    assert graph.node(inp)["shape"] == (100, 1, 1)
    assert graph.node(graph.outputs[0].node)["shape"] == (3, 64, 64)
    small = checked(DCGAN, nz=16, ngf=8, nc=1)
    assert small.total_params == sum(p.numel() for p in Generator(16, 8, 1).parameters())
    assert small.node(small.outputs[0].node)["shape"] == (1, 64, 64)


@pytest.mark.parametrize("params", [{}, {"nz": 16, "ngf": 8, "nc": 1}], ids=["default", "small"])
def test_dcgan_generator_parity(params):
    """Strict load of the example's state dict (random BN statistics), identical outputs in eval
    at batch 1, and in training at batch 2 (batch statistics, running averages updated alike)."""
    pytest.importorskip("archdsl.compile")
    torch.manual_seed(0)
    ref = Generator(**params).eval()
    randomise_batchnorm(ref)
    model = archdsl.load(DCGAN, seed=0, **params).eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, params.get("nz", 100), 1, 1, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want, got = ref(x), model(x)
    assert got.shape == want.shape == (1, params.get("nc", 3), 64, 64)
    assert torch.equal(got, want)
    assert want.abs().max() > 0.1          # not a saturated or all-zero image
    x = torch.randn(2, params.get("nz", 100), 1, 1, generator=torch.Generator().manual_seed(2))
    ref.train(), model.train()
    with torch.no_grad():
        want, got = ref(x), model(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    for key, value in ref.state_dict().items():   # the running statistics moved the same way
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)


def test_dcgan_generator_initialises_as_the_example():
    """weights_init: conv weights N(0, 0.02), BN scales N(1, 0.02) and shifts 0."""
    pytest.importorskip("archdsl.compile")
    state = archdsl.load(DCGAN, seed=0).state_dict()
    convs = [f"main.{i}.weight" for i in (0, 3, 6, 9, 12)]
    bns = [f"main.{i}" for i in (1, 4, 7, 10)]
    for key in convs:
        w = state[key]
        assert abs(w.mean().item()) < 0.002 and w.std().item() == pytest.approx(0.02, rel=0.1), key
    for key in bns:
        w = state[f"{key}.weight"]
        assert abs(w.mean().item() - 1) < 0.01 and w.std().item() == pytest.approx(0.02, rel=0.3), key
        assert torch.equal(state[f"{key}.bias"], torch.zeros_like(w)), key


# ----------------------------------------------------------------------------- ViT-B/16

VIT = SPECS / "vit_b_16.arch"


def randomise_constants(model: nn.Module, seed: int = 0) -> None:
    """Random values in what torchvision's ViT initialises to a constant: the head (zeros), the
    class token (zeros), the layer norms (ones and zeros), every bias (zeros, or N(0, 1e-6))."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 or name.startswith("heads.") or name == "class_token":
                base = 1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln.weight")) else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def vit_reference():
    """torchvision's vit_b_16 as the spec's `meta reference` builds it (random weights, constants
    randomised), and its state dict; built once for the module."""
    from archdsl import reference as references
    ref = references.build(references.from_graph(archdsl.check(VIT))).eval()
    randomise_constants(ref)
    return ref, ref.state_dict()


def vit_at(size: int, ref, state):
    """(reference, spec) at ``size``: vit_b_16(image_size=size) and the spec with ``size=size``,
    both on the meta device taking the 224 model's tensors (``assign``) but a position embedding
    of their own length, so nothing is initialised twice."""
    from archdsl import reference as references
    if size == 224:
        return ref, state
    graph = archdsl.check(VIT, size=size)
    other = references.build(references.from_graph(graph), device="meta").eval()
    tokens = (size // 16) ** 2 + 1
    embedding = torch.randn(1, tokens, 768, generator=torch.Generator().manual_seed(size))
    state = {**state, "encoder.pos_embedding": embedding}
    other.load_state_dict(state, strict=True, assign=True)
    return other, state


def vit_state_keys(graph) -> dict[str, tuple]:
    """The state_dict keys (and shapes, where the IR gives them) the IR implies."""
    keys = {}
    for n in graph.nodes():
        d = graph.node(n)
        name, op, a = d["name"], d["op"], d["attrs"]
        if op == "param":
            keys[name] = tuple(a["shape"])
        elif op in ("conv", "linear"):
            keys.update({f"{name}.weight": None, **({f"{name}.bias": None} if a["bias"] else {})})
        elif op == "layernorm":
            keys.update({f"{name}.weight": None, f"{name}.bias": None})
        elif op == "attention":
            keys.update({f"{name}.{s}": None for s in ("in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                       "out_proj.bias")})
        else:
            assert not (d["params"] or d["buffers"]), f"{name}: {op} has weights"
    return keys


@pytest.mark.parametrize("size, count", [(224, 86_567_656), (112, 86_454_760)])
def test_vit_b_16_structure(size, count):
    """Parameter count, state-dict keys and shapes of vit_b_16(image_size=size), on the meta device."""
    from archdsl import reference as references
    graph = checked(VIT, size=size)
    assert graph.total_params == count and graph.total_buffers == 0
    assert graph.meta["reference"] == "torchvision:vit_b_16" and graph.meta["top1"] == 81.07
    assert graph.meta["reference_args"] == {"image_size": size, "num_classes": 1000, "dropout": 0.0,
                                            "attention_dropout": 0.0}
    ref = references.build(references.from_graph(graph), device="meta")
    assert sum(p.numel() for p in ref.parameters()) == count
    state = ref.state_dict()
    keys = vit_state_keys(graph)
    assert set(keys) == set(state), (sorted(set(keys) - set(state))[:4], sorted(set(state) - set(keys))[:4])
    assert keys["class_token"] == (1, 1, 768) and keys["encoder.pos_embedding"] == (1, (size // 16) ** 2 + 1, 768)
    assert graph.node(graph.outputs[0].node)["shape"] == (1000,)
    ten = archdsl.check(VIT, size=size, classes=10)
    assert ten.total_params == count - 990 * 769 and ten.node(ten.outputs[0].node)["shape"] == (10,)


def test_vit_size_must_divide_into_patches():
    """torchvision refuses an image size its patches do not tile; so does the spec, as a diagnostic."""
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.check(VIT, size=100)
    assert info.value.code == "E060" and "multiple of the patch size" in info.value.message
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        b32 = torchvision.models.vit_b_32(image_size=96)    # the other patch size: 3x3 patches of 32
    assert archdsl.check(VIT, size=96, patch=32).total_params == sum(p.numel() for p in b32.parameters())


@pytest.mark.parametrize("size", [224, 112])
def test_vit_b_16_parity(size, vit_reference):
    """Strict load, then identical outputs in eval at batch 1 (the attention runs the same kernel)."""
    pytest.importorskip("archdsl.compile")
    ref, state = vit_at(size, *vit_reference)
    model = archdsl.load(VIT, size=size, device="meta").eval()
    model.load_state_dict(state, strict=True, assign=True)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want, got = ref(x), model(x)
    assert got.shape == want.shape == (1, 1000)
    assert want.abs().max() > 1.0         # the randomised head gives scores, not zeros
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_vit_initialises_as_torchvision():
    """At a small width (every tensor still large enough for its statistics): the conv_proj's
    truncated normal (std sqrt(1 / fan_in)), the position embedding's N(0, 0.02), Xavier-uniform
    MLP weights, nn.MultiheadAttention's own init, zero head and class token, unit layer norms."""
    pytest.importorskip("archdsl.compile")
    from torchvision.models.vision_transformer import VisionTransformer
    cfg = dict(size=64, dim=192, depth=1, heads=3, mlp=384, classes=10)
    ours = archdsl.load(VIT, seed=0, **cfg).state_dict()
    torch.manual_seed(0)
    theirs = VisionTransformer(64, 16, 1, 3, 192, 384, num_classes=10).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    for key, want in theirs.items():
        got = ours[key]
        if key.endswith(".mlp.0.bias") or key.endswith(".mlp.3.bias"):   # N(0, 1e-6) there, zeros here
            assert torch.equal(got, torch.zeros_like(got)) and want.abs().max() < 1e-5, key
        elif want.std() == 0:                                              # a constant: exactly it
            assert torch.equal(got, want), key
        else:
            assert got.abs().max() <= want.abs().max() * 1.25 + 1e-3, key   # truncation, uniform bounds
            assert got.std().item() == pytest.approx(want.std().item(), rel=0.06), key


def test_vit_dropout_matches_torchvision_in_training():
    """`drop` and `attention_drop` are torchvision's dropout and attention_dropout, at its places: a
    small ViT in training (batch 3) draws the same masks in the same order under one seed."""
    pytest.importorskip("archdsl.compile")
    from torchvision.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    ref = VisionTransformer(32, 16, 2, 2, 32, 64, dropout=0.1, attention_dropout=0.1, num_classes=10)
    randomise_constants(ref)
    model = archdsl.load(VIT, size=32, dim=32, depth=2, heads=2, mlp=64, classes=10, drop=0.1,
                         attention_drop=0.1, seed=0)
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref.train(), model.train()
    with torch.no_grad():
        torch.manual_seed(5)
        want = ref(x)
        torch.manual_seed(5)
        got = model(x)
        torch.manual_seed(6)
        other = model(x)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(other, want)    # dropout is on: another seed, other masks
