"""Diagram details: what the legend calls a `@name` skip, cluster titles of single-block stages,
parallel branches in spec order, the U layout of encoder-decoder networks and the folding rule.
Positions are read from Graphviz's own layout (``dot -Tjson``)."""
import json
import re
import shutil

import pytest

import archdsl
from archdsl import check
from archdsl.draw import OptionError, render

from conftest import ROOT

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")

DOCS = (ROOT / "docs" / "language.md").read_text()
UNET = next(e for e in re.findall(r"```arch\n(.*?)```", DOCS, re.S) if "network unet_ish" in e)
DENSE = """
block layer(g) { bn -> relu -> conv(g, 3, pad=1) }
network dense_toy() {
    input image: [3, 8, 8]
    block1: dense { for j in range(3) { layer{j+1}: layer(4) } }
    flatten -> fc: linear(2)
}
"""
STAGES = """
block unit(c) { conv(c, 3, pad=1) -> bn -> relu }
block stage(c, n) { blocks: { for i in range(n) { unit(c * (i + 1)) } } }
network staged() {
    input image: [3, 8, 8]
    stages: { stage(4, 1); stage(4, 2); stage(4, 3) }
    flatten -> fc: linear(2)
}
"""
SE_RESIDUAL = """
network gated() {
    input image: [3, 16, 16]
    conv(8, 3, pad=1)
    residual { conv(8, 3, pad=1) -> mul { {}; global_avgpool -> conv(8, 1) -> sigmoid } }
    flatten -> fc: linear(2)
}
"""
FOLDS = """
block mid_unit(mid, out) { conv(mid, 1) -> relu -> conv(out, 1) }
block gated_unit(c, s) { residual(survival=s) { conv(c, 3, pad=1) -> relu } }
network folds() {
    input image: [8, 8, 8]
    widths: { for m in [16, 12, 12] { mid_unit(m, 8) } }
    depths: { for s in [0.9, 0.8, 0.7] { gated_unit(8, s) } }
    flatten -> fc: linear(2)
}
"""


def drawing(source, **options):
    return render(check(source), **options)


def positions(rendering) -> dict:
    """Tooltip (the IR name of an op or box) -> (x, y) centre in points, y growing upwards."""
    out = {}
    for o in json.loads(rendering.pipe("json")).get("objects", []):
        if "pos" in o and "tooltip" in o:
            x, y = map(float, o["pos"].split(","))
            out[o["tooltip"]] = (x, y)
    return out


def labels(dot: str) -> list[str]:
    """The HTML labels of boxes and ops."""
    return re.findall(r"label=<(.*?)> fillcolor=", dot)


def titles(dot: str) -> list[str]:
    """The titles of clusters."""
    return re.findall(r"label=<(.*?)> labeljust=", dot)


def legend(dot: str) -> list[str]:
    return re.findall(r'<td><font color="#[0-9a-f]+">(.*?)</font></td>', dot)


# --- the legend

def test_a_name_skip_is_a_skip_and_a_dense_layer_a_dense_connection():
    unet = drawing(UNET).dot
    assert legend(unet) == ["┈┈ tap", "╌╌ identity / skip"]
    assert len(re.findall(r'-> n\d+ \[color="#7b3294" constraint=false style=dashed\]', unet)) == 2
    dense = drawing(DENSE, depth=9).dot
    assert legend(dense) == ["╌╌ dense connection"]
    # a written concat of an earlier tensor is a skip, even beside a dense block
    named = drawing(DENSE.replace("block1:", "x = block1:").replace("flatten", "conv(4, 1) -> concat { {}; @x } -> "
                                                                                "flatten"), depth=9).dot
    assert legend(named) == ["╌╌ identity / skip", "╌╌ dense connection"]


# --- cluster titles

def test_single_block_stages_are_framed_and_titled_like_their_siblings():
    dot = drawing(STAGES, depth=2).dot
    # each stage's cluster is titled with the stage (not its one `blocks` group), the one-block stage framed too
    assert titles(dot) == ["<b>stages</b> · 2.10K params", "<b>stages.0</b> stage · 120 params",
                           "<b>stages.1</b> stage · 468 params", "<b>stages.2</b> stage · 1.51K params"]
    assert [t.split("<br/>")[0] for t in labels(dot)[1:7]] == ["<b>blocks.0</b> unit"] * 2 + [
        "<b>blocks.1</b> unit", "<b>blocks.0</b> unit", "<b>blocks.1</b> unit", "<b>blocks.2</b> unit"]


def test_a_lone_box_stays_unframed_without_framed_siblings():
    dot = drawing(STAGES.replace("stage(4, 1); stage(4, 2); stage(4, 3)", "stage(4, 1)"), depth=2).dot
    assert "subgraph cluster_" not in dot and "<b>stages.0.blocks.0</b> unit" in dot


# --- branch order

@needs_dot
def test_parallel_branches_run_left_to_right_in_spec_order():
    at = positions(render(check(ROOT / "specs" / "googlenet.arch"), expand=["inception4a"]))
    xs = [at[f"inception4a.branch{i}"][0] for i in range(1, 5)]
    assert xs == sorted(xs) and len(set(xs)) == 4
    ys = {at[f"inception4a.branch{i}"][1] for i in range(1, 5)}
    assert len(ys) == 1


def test_branch_heads_share_a_rank_in_order():
    dot = render(check(ROOT / "specs" / "googlenet.arch"), expand=["inception4a"]).dot
    heads = re.findall(r"\{\n\t\trank=same\n((?:\t\t\w+ -> \w+ \[style=invis\]\n)+)\t\}", dot)
    chains = [re.findall(r"(\w+) -> (\w+)", h) for h in heads]
    assert len(chains) == 1  # the one inception block drawn open
    nodes = dict(re.findall(r'^\t+(s\d+) \[.*tooltip="([^"]+)"', dot, re.M))
    row = next(c for c in chains if nodes.get(c[0][0], "").startswith("inception4a."))
    assert [nodes[a] for a, _ in row] + [nodes[row[-1][1]]] == [f"inception4a.branch{i}" for i in range(1, 5)]


# --- the U layout

def test_auto_draws_the_unet_as_a_u():
    auto, u = drawing(UNET), drawing(UNET, layout="u")
    assert auto.dot == u.dot
    assert auto.dot.count("rank=same\n") == 2 and "dir=back" in auto.dot
    column = drawing(UNET, layout="column").dot
    assert "rank=same\n" not in column and "dir=back" not in column


@needs_dot
def test_u_layout_puts_each_encoder_stage_beside_its_decoder_stage():
    g = check(UNET)
    at = positions(render(g))
    for join in ("concat#1", "concat#2"):
        skip = g.args(g.by_name(join))[1]  # concat { {}; @enc } takes the encoder's tensor second
        enc, dec = at[g.node(skip)["name"]], at[join]
        assert enc[1] == dec[1] and enc[0] < dec[0]  # same height, the decoder to the right
    # the decoder climbs back up: its convs above its first join, the logits level with the input
    assert at["9"][1] > at["concat#1"][1] and at["11"][1] > at["concat#2"][1]
    column = positions(render(g, layout="column"))
    assert column["concat#2"][1] < column["1"][1]


def test_auto_leaves_residual_and_gated_networks_in_a_column():
    for source in (SE_RESIDUAL, ROOT / "specs" / "resnet18.arch", DENSE):
        dot = drawing(source).dot
        assert "dir=back" not in dot and not re.search(r"rank=same\n\t\t\w+\n", dot)
    with pytest.raises(OptionError, match="no long skip"):
        drawing(SE_RESIDUAL, layout="u")
    with pytest.raises(OptionError, match="layout must be one of auto, u, column"):
        drawing(SE_RESIDUAL, layout="U")


def test_u_layout_pairs_labelled_stages():
    spec = """
    block double_conv(c) { conv(c, 3, pad=1) -> bn -> relu -> conv(c, 3, pad=1) -> bn -> relu }
    network unet_small(classes = 2) {
        input image: [3, 32, 32]
        e1 = down1: double_conv(8)
        e2 = down2: { maxpool(2) -> double_conv(16) }
        bottom: { maxpool(2) -> double_conv(32) -> upsample(scale=2) -> conv(16, 1) }
        up2: { concat { {}; @e2 } -> double_conv(16) -> upsample(scale=2) -> conv(8, 1) }
        up1: { concat { {}; @e1 } -> double_conv(8) }
        logits = head: conv(classes, 1)
    }
    """
    dot = drawing(spec, depth=1).dot
    ids = dict((b, a) for a, b in re.findall(r'^\t+([ns]\d+) \[.*tooltip="?([^" \]]+)"?', dot, re.M))
    rows = re.findall(r"\{\n\t\trank=same\n\t\t(\w+)\n\t\t(\w+)\n\t\}", dot)
    assert rows == [(ids["down1"], ids["up1.concat#1"]), (ids["down2.1"], ids["up2.concat#1"])]


# --- folding

def test_copies_fold_only_when_they_compute_alike():
    dot = drawing(FOLDS, depth=1).dot
    # mid=16 beside mid=12: the same ops and output, other widths and parameter counts
    assert "<b>0</b> mid_unit<br/>" in dot and "<b>1–2</b> mid_unit ×2" in dot
    assert "2 × 212 = 424 params" in dot
    # survival changes neither shapes nor parameters: one fold, its range said
    fold = next(t for t in labels(dot) if "gated_unit ×3" in t)
    assert "<b>0–2</b>" in fold and "s 0.9…0.7" in fold and "3 × 584 = 1.75K params" in fold
    assert "peripheries" not in drawing(FOLDS, depth=1, unroll=True).dot


def test_dense_layers_fold_though_their_inputs_widen():
    dot = drawing(DENSE, depth=1).dot
    assert "layer ×3" in dot and "<b>layer1–3</b>" in dot



def test_a_decoder_error_is_drawn_on_the_u():
    bad = """
    network bad_unet() {
        input image: [3, 32, 32]
        enc1 = conv(8, 3, pad=1) -> relu
        enc2 = maxpool(2) -> conv(16, 3, pad=1) -> relu
        maxpool(2) -> conv(32, 3, pad=1) -> upsample(scale=2)
        concat { {}; @enc2 } -> conv(16, 3, pad=1)
        concat { {}; @enc1 } -> conv(8, 3, pad=1)
    }
    """
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.render(bad)
    dot = e.value.rendering.dot  # the inner skip pairs its stages; the failed concat sits on the right arm
    assert re.search(r"\tfail -> n\d+ \[.*dir=back", dot) and dot.count("rank=same\n") == 1
    graph, failed = e.value.partial
    assert render(graph, failed=failed, layout="u").dot == dot
