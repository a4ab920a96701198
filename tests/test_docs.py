"""The examples of docs/language.md are valid specs: every one with a network elaborates, compiles
and runs at batch 1, and together they use every op of the registry."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from archdsl.compile import compile_graph
from archdsl.ops import OPS
from conftest import checked

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = re.findall(r"```arch\n(.*?)```", (ROOT / "docs" / "language.md").read_text(), re.S)
NETWORKS = [e for e in EXAMPLES if re.search(r"^network ", e, re.M)]


def test_every_construct_has_examples():
    assert len(NETWORKS) >= 12
    text = "\n".join(EXAMPLES)
    for construct in ("import", "block ", "let ", "for ", "if ", "else", "assert", "concat {", "add(", "mean(",
                      "mul {", "dense {", "residual(", "tap(", "output ", "meta ", "init ", "@", "* (", "->"):
        assert construct in text, construct


@pytest.mark.parametrize("text", NETWORKS, ids=[re.search(r"^network (\w+)", e, re.M).group(1) for e in NETWORKS])
def test_example_elaborates_and_runs(text):
    graph = checked(text, base=str(ROOT / "specs"))
    assert graph.outputs
    model = compile_graph(graph, seed=0).eval()
    with torch.inference_mode():
        model(*(torch.randn(1, *graph.node(n)["shape"]) for n in graph.inputs.values()))


def test_examples_use_every_op():
    used = set()
    for text in NETWORKS:
        graph = checked(text, base=str(ROOT / "specs"))
        used |= {graph.node(n)["op"] for n in graph.nodes()}
    assert set(OPS) - used == set()


OTHER_PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in ("language.md", "errors.md"))
OTHER_NETWORKS = [(p.name, e) for p in OTHER_PAGES for e in re.findall(r"```arch\n(.*?)```", p.read_text(), re.S)
                  if re.search(r"^network ", e, re.M) and "--plugin" not in e]


NETWORK_NAME = re.compile(r"^network (\w+)", re.M)


@pytest.mark.parametrize("page,text", OTHER_NETWORKS,
                         ids=[p + ":" + NETWORK_NAME.search(e).group(1) for p, e in OTHER_NETWORKS])
def test_examples_of_the_other_pages_elaborate(page, text):
    if "swiglu" in text:   # docs/plugins.md: its ops come from the example plugin
        pytest.skip("needs the example plugin (tests/test_plugins.py checks it)")
    assert checked(text, base=str(ROOT / "specs")).outputs
