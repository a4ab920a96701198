"""A Hypothesis strategy for random VALID .arch specs (used by test_generated.py).

The generator itself is archdsl's (``archdsl.generate``: the one ``archdsl generate`` uses);
this file lets Hypothesis make its choices, so a failing example shrinks. What a drawn
:class:`GenSpec` predicts (every output's shape, the parameter count) comes from the
generator's own model of the language (``archdsl.generate.shapes``), written independently
of archdsl's ops, so a test can check archdsl against it as well as against torch.
"""
from __future__ import annotations

from hypothesis import reject
from hypothesis import strategies as st

from archdsl.generate.fuzz import MAX_C, Gen, GenSpec, random_spec  # noqa: F401  (re-exported)
from archdsl.generate.shapes import RULES, Invalid, Sim, conv_out  # noqa: F401  (re-exported)


class HypothesisSource:
    """The generator's choices, asked of Hypothesis."""

    def __init__(self, draw):
        self.draw = draw

    def pick(self, options):
        return self.draw(st.sampled_from(list(options)))

    def coin(self, p: float = 0.5) -> bool:
        return self.draw(st.floats(0, 1)) < p

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def cuts(self, size: int, n: int) -> list:
        return sorted(self.draw(st.lists(st.integers(1, size - 1), min_size=n - 1, max_size=n - 1, unique=True)))


@st.composite
def specs(draw, max_ops: int = 40) -> GenSpec:
    """A random valid spec: input, stem, body statements (with binds, skips and taps), head."""
    try:
        return random_spec(HypothesisSource(draw), max_ops)
    except Invalid:   # a variable from a fragment that was tried and dropped: rare
        reject()
