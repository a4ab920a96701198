"""What the registry knows of plugins: which are loaded, which ops an IR takes from them and
what its generated source must import. Loading plugins (importing Python) is
``archdsl.extern``'s; this module only reads the registry, so the compiler can ask it
without ever reaching the loader."""
from __future__ import annotations

import re
import sys

from .base import OPS, Op

MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
LOADED: dict[str, tuple[str, ...]] = {}  # plugin (module name) -> the ops it registered


def loaded_plugins() -> tuple[str, ...]:
    """The plugins loaded in this process (module names, sorted). A process this one starts to
    work on a spec (training, search) must load the same: pass it :func:`plugin_args`."""
    return tuple(sorted(LOADED))


def plugins_of(graph) -> tuple[str, ...]:
    """The plugins an IR's ops come from (module names, sorted): what compiling, exporting and
    pickling it needs."""
    found = {getattr(OPS.get(graph.node(n)["op"]), "plugin", None) for n in graph.nodes()}
    return tuple(sorted(p for p in found if p))


def imports_of(graph) -> tuple[str, ...]:
    """The modules the generated source of an IR imports besides torch: the ``imports`` its
    plugin ops declare (sorted)."""
    return tuple(sorted({m for n in graph.nodes() for m in getattr(OPS.get(graph.node(n)["op"]), "imports", ())}))


def roots_of(graph) -> set[str]:
    """The names the generated source's plugin imports bind (``a`` for ``import a.b``)."""
    return {m.split(".")[0] for m in imports_of(graph)}


def constructor_ok(inst: Op, ctor) -> bool:
    """Is ``ctor`` a constructor the op's module rule may name: ``nn.X`` of torch, or a callable
    reached by attributes from one of the modules the op ``imports``?"""
    if not isinstance(ctor, str) or not MODULE.match(ctor) or "." not in ctor:
        return False
    if ctor.startswith("nn."):
        import torch.nn as nn
        return callable(getattr(nn, ctor[3:], None))
    for m in getattr(inst, "imports", ()):
        if ctor.startswith(m + ".") and m in sys.modules:
            target = sys.modules[m]
            for part in ctor[len(m) + 1:].split("."):
                target = getattr(target, part, None)
            return callable(target)
    return False
