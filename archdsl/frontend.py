"""The front end in one call: load (parse + imports) and elaborate into the IR."""
from __future__ import annotations

import os
from pathlib import Path

from .elaborate import elaborate
from .errors import ArchError, LimitError, Limits
from .ir import ArchGraph
from .loader import Loader


def is_text(source) -> bool:
    """Spec text rather than a path: it has a newline or a brace, or is blank."""
    return isinstance(source, str) and ("\n" in source or "{" in source or not source.strip())


def check(source: str | os.PathLike, *, network: str | None = None, inputs: dict | None = None,
          limits: Limits | dict | None = None, roots: list | None = None, base: str | None = None,
          text: bool | None = None, **params) -> ArchGraph:
    """Parse, elaborate and shape-check a spec (a path or its text); returns the IR.

    ``params`` override the network's parameters (``classes=10``), ``inputs`` its
    input shapes (``{"image": [3, 64, 64]}``), ``limits`` the resource limits;
    ``text=True`` takes ``source`` as spec text whatever it looks like (imports resolve
    from ``base``, by default the working directory).
    Raises :class:`ArchError` for every mistake in the spec.
    """
    limits = limits if isinstance(limits, Limits) else Limits.of(limits)
    loader = Loader(limits, roots)
    try:
        if text or (text is None and is_text(source)):
            module = loader.load_text(source, "<string>" if text is None else "<stdin>", base)
        else:
            module = loader.load_file(Path(source))
        graph = elaborate(module, network, params, inputs or {}, limits, loader.sources)
    except RecursionError:  # imports nested past the Python stack (only with `--limit depth` raised)
        raise LimitError("E086", "the spec nests too deeply to load", hint="imports nest too deeply") from None
    except ArchError as e:
        e.sources = {**loader.sources, **e.sources}
        raise
    if os.environ.get("ARCHDSL_LINT"):  # the test suite checks the IR's invariants on every elaboration
        graph.lint()
    return graph
