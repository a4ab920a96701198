"""archdsl: write CNN architectures as text; check, compile, draw and analyze them.

    import archdsl
    ir = archdsl.check("specs/resnet50.arch")            # the elaborated, shape-checked IR
    model = archdsl.load("specs/resnet50.arch", classes=10)  # a torch.nn.Module

What names a spec: a string containing a newline (or any string with ``text=True``)
is spec text; anything else is a path (see ``archdsl.frontend``).
"""
from __future__ import annotations

from .errors import (ArchError, AssertionFailed, ElaborationError, LimitError, Limits, ParseError, ShapeError,
                     SpecImportError)
from .ir import ArchGraph
from .frontend import check

__all__ = ["check", "load", "loads", "render", "summary", "ArchGraph", "ArchError", "ParseError",
           "ElaborationError", "ShapeError", "LimitError", "SpecImportError", "AssertionFailed", "Limits"]
__version__ = "0.1.0"


def load(path, **kwargs):
    """Compile a spec file into a ``torch.nn.Module`` (see ``archdsl.compile.load``)."""
    from .compile import load as _load
    return _load(path, **kwargs)


def loads(text, **kwargs):
    """Compile spec text into a ``torch.nn.Module`` (``text`` is spec text even without a newline)."""
    from .compile import load as _load
    return _load(text, **{"text": True, **kwargs})  # (`text` reaches archdsl.check with the network parameters)


def render(source, **kwargs):
    """Draw a spec or IR with Graphviz (see ``archdsl.draw.render``)."""
    from .draw import render as _render
    return _render(source, **kwargs)


def summary(source, **kwargs):
    """Per-layer parameters, MACs and memory (see ``archdsl.analyze.summary``)."""
    from .analyze import summary as _summary
    return _summary(source, **kwargs)
