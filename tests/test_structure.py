"""The package's shape: stages import one way, and no module grows past ~800 lines.

The layers, lowest first (a module may import its own layer and the layers below it):

1. the foundation: errors, values, and the helpers files (writing outputs) and initializers;
2. ops (the op registry, a module or the package ``archdsl/ops/``, which also knows which
   plugins are loaded: ``ops/plugins.py``);
3. ir (the IR every stage shares);
4. the front end, itself in order: nodes (the AST), syntax, loader, evaluate and naming, joins, elaborate,
   frontend, specwriter (a spec's text back from what elaborated it);
4'. the back end, beside the front end and never importing it: compile, draw, analyze,
   reference, report, zoo (each takes an ``ArchGraph``), data (training data for a shape), highlight
   (the Pygments lexer and TextMate grammar, from the op registry alone);
5. the composition: ``archdsl/__init__.py`` (the API), cli (and ``__main__``, commands), extern
   (loading plugins: importing Python the user named), training, runs and evaluation, which check a
   spec with the front end and hand the IR to a stage.

Every import counts, at the top of a file or inside a function, and so does a call of
``importlib.import_module`` or ``__import__`` with a constant name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archdsl"

FOUNDATION = {"errors", "values", "files", "initializers", "layout"}
FRONT_END = ["nodes", "syntax", "loader", {"evaluate", "naming"}, "joins", "elaborate", "frontend", "specwriter"]
BACK_END = {"compile", "export", "export_text", "export_optional", "memory", "draw", "analyze", "reference", "report", "zoo", "data",
            "highlight"}
COMPOSITION = {"__init__", "__main__", "cli", "commands", "extern", "training", "runs", "evaluation", "progress",
               "benchmark", "distributed", "comparison", "sampling", "search", "generate", "models", "fmt", "lsp",
               "lsp_analysis"}

# module -> (rank, side): a module may import another of rank <= its own on its side or on
# the shared trunk (side None); the back end and the front end never import each other.
LAYERS = {**{m: (0, None) for m in FOUNDATION}, "ops": (1, None), "ir": (2, None)}
for _rank, _names in enumerate(FRONT_END, start=3):
    LAYERS.update({m: (_rank, "front") for m in ({_names} if isinstance(_names, str) else _names)})
LAYERS.update({m: (3, "back") for m in BACK_END})
LAYERS.update({m: (99, "top") for m in COMPOSITION})

MAX_LINES = 800
# Being split now; an entry may stay after its file is short (or gone) and be removed later.
TOO_LONG_FOR_NOW: set[str] = set()  # modules allowed over the limit while they are being split: none


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def module_of(path: Path) -> str:
    """The layer name of a file: its first component under archdsl/ (archdsl/ops/conv.py is ops)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def dotted(path: Path) -> list[str]:
    """The file's package as dotted parts: archdsl/ops/conv.py -> ["archdsl", "ops"]."""
    parts = ["archdsl", *path.relative_to(PACKAGE).parts[:-1]]
    return parts


def imported(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """(line, archdsl module) for every import of a module of the package in the file."""
    here = dotted(path)
    found = []

    def add(line: int, name: str) -> None:
        parts = name.split(".")
        if parts[0] == "archdsl":
            found.append((line, parts[1] if len(parts) > 1 else "__init__"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = [*base, *(node.module.split(".") if node.module else [])]
            if len(target) == 1 and target[0] == "archdsl":   # `from . import x`: x a module, or the API's name
                for alias in node.names:
                    is_module = (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()
                    add(node.lineno, f"archdsl.{alias.name}" if is_module else "archdsl")
            else:
                add(node.lineno, ".".join(target))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if name in ("import_module", "__import__"):
                text = node.args[0].value
                add(node.lineno, f"archdsl{text}" if text.startswith(".") else text)
    return found


def allowed(importer: str, imported_module: str) -> bool:
    if importer == imported_module:
        return True
    (rank, side), (their_rank, their_side) = LAYERS[importer], LAYERS[imported_module]
    if side == "top":
        return True
    if their_side == "top":
        return False
    return their_rank <= rank and (their_side is None or their_side == side)


def test_every_module_has_a_layer():
    unknown = sorted({module_of(p) for p in sources()} - set(LAYERS))
    assert not unknown, f"place {', '.join(unknown)} in a layer of tests/test_structure.py (see its docstring)"


def test_stages_import_one_way():
    wrong = []
    for path in sources():
        me = module_of(path)
        if me not in LAYERS:
            continue   # reported by test_every_module_has_a_layer
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, other in imported(path, tree):
            if other in LAYERS and not allowed(me, other):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({me}) imports {other}")
            elif other not in LAYERS:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports archdsl.{other}, which has "
                             "no layer (and may not exist)")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


@pytest.mark.parametrize("importer, other, ok", [
    ("compile", "frontend", False), ("draw", "cli", False), ("analyze", "syntax", False),
    ("zoo", "loader", False), ("ir", "draw", False), ("ops", "ir", False), ("errors", "ir", False),
    ("syntax", "elaborate", False), ("frontend", "compile", False), ("elaborate", "__init__", False),
    ("zoo", "analyze", True), ("compile", "ir", True), ("elaborate", "evaluate", True),
    ("cli", "elaborate", True), ("__init__", "draw", True), ("ir", "ops", True)])
def test_the_rule_itself(importer, other, ok):
    assert allowed(importer, other) is ok


def test_the_scanner_sees_every_form_of_import():
    code = ("from .frontend import check\nimport archdsl.syntax\ndef f():\n    from .. import loader\n"
            "    from ..cli import main\n    importlib.import_module('archdsl.elaborate')\n")
    found = sorted(m for _, m in imported(PACKAGE / "ops" / "x.py", ast.parse(code)))
    assert found == ["cli", "elaborate", "loader", "ops", "syntax"]   # `.frontend` of ops/ is ops' own
    found = [m for _, m in imported(PACKAGE / "draw.py", ast.parse("from .frontend import check\n"))]
    assert found == ["frontend"]


def test_no_module_is_over_800_lines():
    long = []
    for path in sources():
        name = path.relative_to(PACKAGE.parent).as_posix()
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_LINES and name not in TOO_LONG_FOR_NOW:
            long.append(f"{name}: {lines} lines")
    assert not long, f"modules over {MAX_LINES} lines (split them): " + ", ".join(long)
