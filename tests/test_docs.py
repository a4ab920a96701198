"""The examples of docs/language.md are valid specs (every one with a network elaborates)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

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
def test_example_elaborates(text):
    graph = checked(text, base=str(ROOT / "specs"))
    assert graph.outputs
