"""What the zoo table's timm tests (tests/test_zoo_papers.py) do not reach in the GhostNet and
CSPNet libraries: the ghost module's channel slice (a no-op in ghostnet_100, whose widths are all
even), the squeeze-excite width rounding at ratios and widths the zoo does not use, and CSPDarknet-53's
initialisation (kaiming fan-out convs, a zero-initialised last BN in each DarkBlock, std-0.01 fc).
"""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import archdsl
from conftest import ROOT, checked

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")


def lib_net(body: str, shape: list[int], lib: str = "ghostnet") -> str:
    return f'import "std/{lib}.arch"\nnetwork t() {{\n    input x: {shape}\n    {body}\n}}\n'


@pytest.mark.parametrize("cin, out, act", [(6, 5, True), (4, 7, False), (8, 8, True)])
def test_ghost_module_matches_timm(cin, out, act):
    """An odd `out` makes ceil(out / 2) * 2 channels and keeps the first `out`, as timm slices."""
    pytest.importorskip("archdsl.compile")
    from timm.models.ghostnet import GhostModule
    torch.manual_seed(0)
    ref = GhostModule(cin, out, act_layer=torch.nn.ReLU if act else torch.nn.Identity).eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model = archdsl.load(lib_net(f"m: ghost({out}, act={'true' if act else 'false'})", [cin, 9, 9]), seed=0).eval()
    model.load_state_dict({f"m.{k}": v for k, v in ref.state_dict().items()}, strict=True)
    x = torch.randn(1, cin, 9, 9)
    with torch.inference_mode():
        want, got = ref(x), model(x)
    assert got.shape == want.shape == (1, out, 9, 9)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(c=st.integers(1, 400), ratio=st.sampled_from([0.25, 0.1, 0.125, 0.2, 0.5, 1.0]))
@example(c=18, ratio=0.25)   # 4.5 rounds to 4, more than 10% below: 8
@example(c=45, ratio=0.1)
@example(c=72, ratio=0.25)   # ghostnet_100's blocks.3: 20
def test_squeeze_excite_width_is_timms(c, ratio):
    """timm's make_divisible(c * ratio, 4): nearest multiple of 4, at least 4, never 10% below."""
    from timm.models.ghostnet import _SE_LAYER
    with torch.device("meta"):
        want = _SE_LAYER(c, rd_ratio=ratio).conv_reduce.out_channels
    graph = archdsl.check(lib_net(f"se: squeeze_excite({ratio})", [c, 4, 4]))
    (reduce,) = [n for n in graph.nodes() if graph.node(n)["name"] == "se.conv_reduce"]
    assert graph.node(reduce)["shape"][0] == want


def test_squeeze_excite_matches_timm():
    pytest.importorskip("archdsl.compile")
    from timm.models.ghostnet import _SE_LAYER
    torch.manual_seed(0)
    ref = _SE_LAYER(24, rd_ratio=0.25).eval()
    model = archdsl.load(lib_net("se: squeeze_excite(0.25)", [24, 5, 5]), seed=0).eval()
    model.load_state_dict({f"se.{k}": v for k, v in ref.state_dict().items()}, strict=True)
    x = torch.randn(1, 24, 5, 5) * 3  # wide enough to reach both flat ends of the hard sigmoid
    with torch.inference_mode():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-6, atol=1e-6)


def test_cspdarknet53_initialises_as_timm():
    pytest.importorskip("archdsl.compile")
    spec = ROOT / "specs" / "cspdarknet53.arch"
    graph = checked(spec)
    torch.manual_seed(0)
    ref = timm.create_model("cspdarknet53", pretrained=False).state_dict()
    ours = archdsl.load(spec, seed=0).state_dict()
    assert ours.keys() == ref.keys()
    zero_ref = {k for k, v in ref.items() if k.endswith("bn.weight") and not v.any()}
    zero_ours = {k for k, v in ours.items() if k.endswith("bn.weight") and not v.any()}
    assert zero_ours == zero_ref and len(zero_ref) == 23   # the last BN of each of the 23 DarkBlocks
    assert all(k.endswith(".conv2.bn.weight") for k in zero_ref)
    for n in graph.nodes():
        d = graph.node(n)
        if d["op"] == "conv":  # kaiming normal, fan_out, relu gain: std sqrt(2 / (out * k * k))
            w, want = ours[f"{d['name']}.weight"], ref[f"{d['name']}.weight"]
            expected = (2 / (w.shape[0] * w[0, 0].numel())) ** 0.5
            assert abs(w.std().item() / expected - 1) < 0.2 and abs(want.std().item() / expected - 1) < 0.2, d["name"]
    assert abs(ours["head.fc.weight"].std().item() - 0.01) < 5e-4 and not ours["head.fc.bias"].any()
    assert all(ours[k].eq(1).all() for k in ours if k.endswith("bn.weight") and k not in zero_ours)
    assert all(not ours[k].any() for k in ours if k.endswith("bn.bias"))
