"""The README's zoo table describes the specs as they are (static columns)."""
from __future__ import annotations

import re
from pathlib import Path

import archdsl
from archdsl.zoo import entries

ROOT = Path(__file__).resolve().parent.parent


def test_readme_zoo_table_is_current():
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- zoo:begin -->\n(.*)<!-- zoo:end -->", readme, re.S).group(1)
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", table, re.M)}
    specs = entries(ROOT / "specs", check=archdsl.check)
    assert set(rows) == {e.spec for e in specs}, "run `archdsl zoo --parity --format markdown` and update the README"
    for e in specs:
        cells = [c.strip() for c in rows[e.spec].strip("|").split("|")]
        assert cells[1] == f"{e.params:,}", e.spec
        assert cells[3] == e.input and cells[4] == e.reference and cells[7] == str(e.lines), e.spec
        assert cells[6] in ("identical outputs", "paper") or cells[6].startswith("equal"), e.spec
        assert (cells[6] == "paper") == (e.reference == "paper"), e.spec


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1:lines.index("```")]
    assert [line.split("#")[0].strip() for line in block] == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_every_spec_is_in_a_reference_table():
    """Registry-driven: a new spec must get a row (parameter count, shapes, parity or paper figure)."""
    from zoo_reference import ROWS as TORCHVISION
    from zoo_reference_papers import ROWS as PAPERS
    tabled = {r.spec.removesuffix(".arch") for r in TORCHVISION} | {r.spec for r in PAPERS}
    assert {p.stem for p in (ROOT / "specs").glob("*.arch")} == tabled
