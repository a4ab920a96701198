"""User mistakes give located, worded diagnostics; docs/errors.md catalogues every one."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.errors import CODES
from diagnostics_catalogue import DOC, EXAMPLES, document, run

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("ex", EXAMPLES, ids=[f"{e.code}-{i}" for i, e in enumerate(EXAMPLES)])
def test_diagnostic(ex, tmp_path):
    err = run(ex, tmp_path)
    assert err.code == ex.code, err.rendered
    assert ex.wording in err.message, err.rendered
    if ex.line is not None:
        assert (err.span.line, err.span.col) == (ex.line, ex.col), err.rendered
        assert f"{ex.file}:{ex.line}:{ex.col}" in err.rendered
        assert "^" in err.rendered
    assert "Traceback" not in err.rendered


def test_every_code_has_an_example_and_is_used():
    used = set()
    for path in (ROOT / "archdsl").glob("*.py"):
        used |= set(re.findall(r'"(E\d{3})"', path.read_text()))
    assert set(CODES) == {e.code for e in EXAMPLES}
    assert used - set(CODES) == set(), "codes raised but not catalogued"


def test_docs_errors_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == document(), \
        "docs/errors.md is stale: run .venv/bin/python tests/diagnostics_catalogue.py"


def test_hint_did_you_mean(tmp_path):
    err = run(EXAMPLES[[e.code for e in EXAMPLES].index("E010")], tmp_path)
    assert err.hint == "did you mean `relu`?"
    err = run(EXAMPLES[[e.code for e in EXAMPLES].index("E022")], tmp_path)
    assert err.hint == "did you mean `pad`? (PyTorch's `padding`)"


def test_stack_shows_block_calls(tmp_path):
    spec = tmp_path / "s.arch"
    spec.write_text("block inner(c) {\n  conv(c, 3, groups=5)\n}\nblock outer() {\n  inner(8)\n}\n"
                    "network t() {\n  input x: [4, 8, 8]\n  outer()\n}\n")
    proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "check", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    err = proc.stderr
    assert "error[E042]: groups=5 does not divide the 4 input channels" in err
    assert f"--> {spec}:2:14" in err
    assert f"= in block inner, called at {spec}:5:3" in err
    assert f"= in block outer, called at {spec}:9:3" in err
    assert err.index("in block inner") < err.index("in block outer")
    assert "input shape: [4, 8, 8]" in err


def test_cli_exit_codes(tmp_path):
    ok = tmp_path / "ok.arch"
    ok.write_text("network t() {\n  input x: [3, 8, 8]\n  conv(4, 3)\n}\n")
    run_cli = lambda *a: subprocess.run([sys.executable, "-m", "archdsl.cli", *a], capture_output=True, text=True)
    assert run_cli("check", str(ok)).returncode == 0
    assert run_cli("check", str(ok), "--set", "nope=1").returncode == 1
    assert run_cli("check").returncode == 2
    assert run_cli("check", str(ok), "--set", "oops").returncode == 2
    missing = run_cli("check", str(tmp_path / "missing.arch"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_stdin_and_shadowed_op_hint():
    spec = "block b(dropout = 0.3) { dropout(dropout) }\nnetwork n() {\n  input x: [3, 8, 8]\n  b\n}\n"
    proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "check", "-"], input=spec,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "--> <stdin>:1:26" in proc.stderr
    assert "hint: a variable named `dropout` hides the op of that name" in proc.stderr
