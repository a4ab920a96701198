"""Wheel build hook: ship the zoo specs inside the package as ``archdsl/std/zoo/<name>.arch``.

The repository's ``specs/`` is the one copy of the packaged library. Its block
libraries (``specs/lib/``) are mapped to ``archdsl/std/`` in pyproject.toml; the zoo
specs are the ``*.arch`` files directly in ``specs/``, which a folder mapping cannot
pick out without ``specs/lib`` coming along, so this hook names each of them.
"""
from __future__ import annotations

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ZooHook(BuildHookInterface):
    def initialize(self, version, build_data) -> None:
        for spec in sorted(Path(self.root, "specs").glob("*.arch")):
            build_data["force_include"][str(spec)] = f"archdsl/std/zoo/{spec.name}"
