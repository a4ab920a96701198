"""archdsl: write CNN architectures as text; check, compile, draw and analyze them.

    import archdsl
    ir = archdsl.check("specs/resnet50.arch")            # the elaborated, shape-checked IR
    model = archdsl.load("specs/resnet50.arch", classes=10)  # a torch.nn.Module

What names a spec: a string containing a newline (or any string with ``text=True``)
is spec text; anything else is a path (see ``archdsl.frontend``).

The stages run one way: the front end (``archdsl.frontend``) turns a spec into the IR
(``archdsl.ir.ArchGraph``), and the back-end stages (``compile``, ``draw``, ``analyze``)
take that IR and never read a spec themselves. This module composes the two; each
function here that takes a spec checks it, then hands the IR to its stage.

Every function here takes ``plugins=[...]``: plugins to load first (``archdsl.extern``, ops
declared in Python). Nothing else loads one: a spec alone never runs Python.
"""
from __future__ import annotations

from . import ir as _ir
from .errors import (ArchError, AssertionFailed, ElaborationError, LimitError, Limits, ParseError, ShapeError,
                     SpecImportError)
from .extern import load_plugins as _load_plugins
from .frontend import check as _check, check_files as _check_files
from .ir import ArchGraph
from .training import train

__all__ = ["check", "load", "loads", "render", "summary", "train", "evaluate_weights", "bench", "list_models",
           "create_model", "ArchGraph", "ArchError", "ParseError",
           "ElaborationError", "ShapeError", "LimitError", "SpecImportError", "AssertionFailed", "Limits"]
__version__ = "0.1.0"


def check(source, *, plugins=None, **kwargs) -> ArchGraph:
    _load_plugins(plugins)
    return _check(source, **kwargs)


check.__doc__ = (_check.__doc__ or "") + """
    ``plugins`` (a list of names) loads those plugins first, as ``--plugin NAME`` does
    (``archdsl.extern.load_plugins``): their ops can then appear in the spec.
    """


def load(source, *, device=None, dtype=None, seed=None, **check_kwargs):
    """Check a spec (a path or its text) and compile it into a ``torch.nn.Module``.

    ``check_kwargs`` go to :func:`check` (network parameters such as ``classes=10``,
    ``network``, ``inputs``, ``limits``, ``plugins``...); ``seed`` makes the initialisation reproducible
    without touching the global RNG; ``device`` / ``dtype`` move the built model.
    An IR already checked compiles with ``archdsl.compile.compile_graph``."""
    graph = check(source, **check_kwargs)
    from .compile import compile_graph
    return compile_graph(graph, device=device, dtype=dtype, seed=seed, limits=check_kwargs.get("limits"))


def loads(text, **kwargs):
    """Compile spec text into a ``torch.nn.Module`` (``text`` is spec text even without a newline)."""
    return load(text, **{"text": True, **kwargs})  # (`text` reaches archdsl.check with the network parameters)


_DRAWING = ("depth", "expand", "unroll", "rankdir", "layout", "max_nodes", "max_edges", "dot_timeout", "dot_memory")


def render(source, *, params: dict | None = None, **kwargs):
    """Draw a spec (a path or its text, checked with the keywords :func:`check` takes) or an
    :class:`ArchGraph` with Graphviz; the drawing options are ``archdsl.draw.render``'s.

    A spec that fails to elaborate raises its diagnostic as usual, with ``.drawing``: the
    network up to the failure, the failed op in red, as ``archdsl render`` draws it (a
    ``Rendering``, so a notebook shows it: ``e.drawing``); None when the error stops before any
    op or even that is too large to draw. ``.rendering`` is the same object (its older name).
    ``params`` gives network parameters whose names are drawing options (``params={"depth": 3}``)."""
    from .draw import check_options, render as draw
    _load_plugins(kwargs.pop("plugins", None))
    options = {k: kwargs.pop(k) for k in _DRAWING if k in kwargs}
    kwargs.update(params or {})
    if isinstance(source, ArchGraph):
        if kwargs:
            raise TypeError(f"render() of an ArchGraph takes no check options: {', '.join(sorted(kwargs))}")
        return draw(source, **options)
    check_options(options.get("max_nodes"), options.get("max_edges"))
    try:
        graph = check(source, **kwargs)
    except ArchError as e:
        drawing = None
        if e.partial is not None:
            try:
                drawing = draw(e.partial[0], failed=e.partial[1], **options)
            except LimitError:  # too large to draw: the spec's own error is what matters
                pass
        e.drawing = e.rendering = drawing
        raise
    return draw(graph, **options)


def summary(source, batch: int = 1, dtype: str = "fp32", depth: int | None = None, *, params: dict | None = None,
            **check_kwargs):
    """Per-layer parameters, MACs and memory of a spec (checked with ``check_kwargs``) or an
    :class:`ArchGraph` (see ``archdsl.analyze.summary``); ``params`` gives network parameters
    whose names are the summary's own options (``params={"depth": 3}``)."""
    from . import analyze
    _load_plugins(check_kwargs.pop("plugins", None))
    check_kwargs.update(params or {})
    analyze.check_options(batch, dtype, depth)
    if isinstance(source, ArchGraph):
        if check_kwargs:
            raise TypeError(f"summary() of an ArchGraph takes no check options: {', '.join(sorted(check_kwargs))}")
        graph = source
    else:
        graph = check(source, **check_kwargs)
    return analyze.summary(graph, batch, dtype, depth)


# ----------------------------------------------------------------------------- what the IR borrows

def evaluate_weights(spec, weights, data="digits", **options):
    """Validation accuracy and loss of a spec with trained weights (a safetensors file)."""
    from .evaluation import evaluate as _evaluate
    return _evaluate(spec, weights, data=data, **options)


def bench(spec, vs=None, **options):
    """Time a spec's forward pass (or training step) alone or against ``vs``: another spec, a
    variant, or ``"torchvision:NAME"``; returns a ``BenchResult``."""
    from .benchmark import bench as _bench
    return _bench(spec, vs, **options)


def _display(graph):
    """A graph in a notebook: the drawing stage's display, imported on first use."""
    from .draw import display
    return display(graph)


_ir.HOOKS.update(display=_display, replay=_check_files)

from .models import create_model, list_models  # noqa: E402  (the registry over the packaged zoo)
