"""Ops from Python plugins (archdsl.extern): opt-in loading, every stage, pickles, exports."""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import archdsl
from archdsl import cli, extern
from archdsl import compile as C
from archdsl.draw import CATEGORIES
from archdsl.ops import OPS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
SPEC = EXAMPLES / "swiglu.arch"
PLUGIN = "swiglu_plugin"


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """Each test starts with no plugin loaded and leaves none loaded; docs/examples is on the path."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    unload()
    yield
    unload()


def unload():
    """Forget every loaded plugin, as a fresh process would have none."""
    extern._unload()


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write a Python module into tmp_path, which is on the path."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, text: str) -> None:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    return write


def net(body: str) -> str:
    return f"network t() {{\n    input x: [16, 8]\n{body}\n}}\n"


def run(*args):
    """Python in a fresh process, with docs/examples (the example plugin) on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES), str(ROOT)])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


# ----------------------------------------------------------------------------- opting in

def test_without_the_plugin_its_ops_are_unknown():
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check(SPEC)
    assert e.value.code == "E010" and "unknown op or block `swiglu`" in e.value.message
    assert PLUGIN not in extern.loaded_plugins() and "swiglu" not in OPS


def test_an_unknown_op_close_to_nothing_hints_at_plugins():
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check(net("    frobnicate_widget(3)"))
    assert e.value.code == "E010" and e.value.hint == extern.PLUGIN_HINT


def test_cli_check_needs_the_plugin(capsys):
    assert cli.main(["check", str(SPEC), "-q"]) == 1
    assert "error[E010]: unknown op or block `swiglu`" in capsys.readouterr().err
    with_it = run("-m", "archdsl", "check", str(SPEC), "-q", "--plugin", PLUGIN)   # PYTHONPATH finds it
    assert with_it.returncode == 0, with_it.stderr
    assert "19,242 parameters" in with_it.stdout


def test_loading_is_idempotent_and_records_the_plugin():
    assert archdsl.extern.load_plugins([PLUGIN]) == (PLUGIN,)
    ops = dict(OPS)
    assert extern.load_plugins(PLUGIN) == (PLUGIN,) and OPS == ops
    assert OPS["swiglu"].plugin == OPS["squared_relu"].plugin == PLUGIN and getattr(OPS["relu"], "plugin", None) is None
    assert extern.loaded_plugins() == (PLUGIN,) and extern.plugin_args() == ["--plugin", PLUGIN]
    assert OPS["swiglu"].signature() == "swiglu(hidden, bias=true)"
    graph = archdsl.check(SPEC)
    assert extern.plugins_of(graph) == (PLUGIN,) and extern.imports_of(graph) == (PLUGIN,)
    assert extern.plugins_of(archdsl.check(net("    relu"))) == ()


# ----------------------------------------------------------------------------- every stage

def test_check_and_summary_count_weights_and_macs_as_torch_does():
    from torch.utils.flop_counter import FlopCounterMode
    graph = archdsl.check(SPEC, plugins=[PLUGIN])
    glu = graph.node(graph.by_name("blocks.ffn_0.glu"))
    assert glu["op"] == "swiglu" and glu["shape"] == (16, 64) and glu["params"] == 2 * (32 * 64 + 64)
    s = archdsl.summary(SPEC, plugins=[PLUGIN])
    row = next(r for r in s.rows if r.name == "blocks.ffn_0.glu")
    import swiglu_plugin
    unit = swiglu_plugin.SwiGLU(32, 64)
    with FlopCounterMode(display=False) as counter:
        unit(torch.randn(1, 16, 32))
    assert row.macs == counter.get_total_flops() // 2 == 2 * 16 * 32 * 64
    assert row.params == sum(p.numel() for p in unit.parameters()) == 4224
    model = archdsl.load(SPEC, plugins=[PLUGIN])
    assert s.totals["params"] == graph.total_params == sum(p.numel() for p in model.parameters()) == 19242
    assert s.categories.get("linear", 0) >= 2 + 2 + 1 and s.totals["elementwise"] >= 16 * 32   # squared_relu


def test_render_draws_the_ops_in_their_category_colours():
    dot = archdsl.render(SPEC, plugins=[PLUGIN], depth=3).dot
    glu = next(line for line in dot.splitlines() if "swiglu 64" in line)
    act = next(line for line in dot.splitlines() if "squared_relu" in line)
    assert f'fillcolor="{CATEGORIES["linear"]}"' in glu and f'fillcolor="{CATEGORIES["activation"]}"' in act


def reference(model, x):
    """The network of docs/examples/swiglu.arch written with torch functions, from the model's weights."""
    sd = model.state_dict()
    t = F.conv2d(x, sd["patches.weight"], sd["patches.bias"], stride=8).flatten(2).transpose(1, 2)
    for i in range(2):
        p = f"blocks.ffn_{i}."
        h = F.layer_norm(t, (32,), sd[p + "norm.weight"], sd[p + "norm.bias"])
        h = F.silu(F.linear(h, sd[p + "glu.gate.weight"], sd[p + "glu.gate.bias"])) * \
            F.linear(h, sd[p + "glu.value.weight"], sd[p + "glu.value.bias"])
        t = t + F.linear(h, sd[p + "proj.weight"], sd[p + "proj.bias"])
    t = torch.relu(t) ** 2
    return F.linear(t.mean(1), sd["head.weight"], sd["head.bias"])


def test_compiled_model_computes_what_torch_does():
    model = archdsl.load(SPEC, plugins=[PLUGIN], seed=0).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(model(x), reference(model, x), rtol=1e-5, atol=1e-6)
    assert "swiglu_plugin.SwiGLU(32, 64)" in model.code and "swiglu_plugin.squared_relu(" in model.code
    model.train()
    model(x).sum().backward()
    assert model.blocks["ffn_0"]["glu"].gate.weight.grad is not None
    small = archdsl.loads(net("    glu: swiglu(12, bias=false)"), plugins=[PLUGIN], seed=0)
    assert list(small.state_dict()) == ["glu.gate.weight", "glu.value.weight"] and small.ir.total_params == 2 * 8 * 12
    t = torch.randn(1, 16, 8)
    torch.testing.assert_close(small(t), F.silu(t @ small.glu.gate.weight.T) * (t @ small.glu.value.weight.T))
    with pytest.raises(archdsl.ArchError) as e:   # the plugin's own shape rule
        archdsl.check("network t() {\n    input image: [3, 8, 8]\n    swiglu(4)\n}\n")
    assert e.value.code == "E041" and "needs a vector or a token sequence" in e.value.message
    assert (e.value.span.line, e.value.span.col) == (3, 5) and "flatten(1)" in e.value.hint


def test_exported_file_imports_the_plugin_and_a_pickle_does_not(tmp_path, capsys):
    out = tmp_path / "swiglu_mlp.py"
    assert cli.main(["compile", str(SPEC), "--plugin", PLUGIN, "-o", str(out)]) == 0
    assert "class SwigluMlp, 19,242 parameters" in capsys.readouterr().out
    source = out.read_text()
    header, body = source.split('"""\n', 1)
    assert "Needs the archdsl plugin swiglu_plugin: besides torch, this file imports swiglu_plugin" in \
        " ".join(header.split())
    imports = [line for line in body.splitlines() if line.startswith("import ")]
    assert imports == sorted(imports, key=str.lower) and {"import swiglu_plugin", "import torch"} <= set(imports)
    model = archdsl.load(SPEC, plugins=[PLUGIN], seed=1).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.save({"state": model.state_dict(), "x": x}, tmp_path / "data.pt")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(model))
    # a fresh process with the plugin importable: unpickling refuses and imports nothing; the
    # exported file imports the plugin itself and computes what the model does
    runner = textwrap.dedent(f"""
        import pickle, sys, torch, archdsl
        try:
            pickle.load(open({str(tmp_path / 'm.pkl')!r}, "rb"))
        except archdsl.ArchError as e:
            print(e.code, "swiglu_plugin" in sys.modules)
        sys.path.insert(0, {str(tmp_path)!r})
        import swiglu_mlp
        data = torch.load({str(tmp_path / 'data.pt')!r})
        m = swiglu_mlp.SwigluMlp().eval()
        m.load_state_dict(data["state"])
        torch.save(m(data["x"]), {str(tmp_path / 'y.pt')!r})
        """)
    proc = run("-c", runner)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["E075", "False"]
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), model(x), rtol=0, atol=0)


def test_cli_summary_and_render(tmp_path, capsys):
    assert cli.main(["summary", str(SPEC), "--plugin", PLUGIN, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["params"] == 19242
    assert cli.main(["render", str(SPEC), "--plugin", PLUGIN, "-o", str(tmp_path / "n.dot"), "--depth", "3"]) == 0
    assert "swiglu 64" in (tmp_path / "n.dot").read_text()


# ----------------------------------------------------------------------------- pickles

def test_pickle_round_trip_with_the_plugin_loaded():
    model = archdsl.load(SPEC, plugins=[PLUGIN], seed=0).eval()
    _, (payload,) = model.__reduce_ex__(4)
    assert payload["plugins"] == [PLUGIN]
    buf = io.BytesIO()
    torch.save(model, buf)
    with torch.serialization.safe_globals([C.rebuild_model]):
        copy = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    x = torch.randn(1, 3, 32, 32)
    assert copy.code == model.code and torch.equal(copy(x), model(x))


def test_pickle_refuses_to_unpickle_without_the_plugin():
    model = archdsl.load(SPEC, plugins=[PLUGIN], seed=0)
    data = pickle.dumps(model)
    unload()
    with pytest.raises(archdsl.ArchError) as e:
        pickle.loads(data)
    assert e.value.code == "E075" and "`swiglu_plugin`, not loaded" in e.value.message
    assert "archdsl.extern.load_plugins(['swiglu_plugin'])" in e.value.hint
    extern.load_plugins([PLUGIN])
    assert torch.equal(pickle.loads(data).state_dict()["head.weight"], model.state_dict()["head.weight"])


# ----------------------------------------------------------------------------- entry points

def dist(tmp_path, entries: str) -> None:
    info = tmp_path / "archdsl_test_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: archdsl-test-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[archdsl.plugins]\n{entries}")


def test_entry_points_are_looked_up_by_name_and_no_other_is_loaded(tmp_path, module):
    canary = tmp_path / "canary"
    module("ep_doubling_ops", '''
        from archdsl.extern import Op, op

        @op
        class Doubled(Op):
            name, category, elementwise = "doubled", "other", True
            def forward(self, a, args, mod, inplace):
                return f"2 * {args[0]}"
        ''')
    module("ep_boom", f"open({str(canary)!r}, 'w').write('loaded')\nraise RuntimeError('boom')\n")
    dist(tmp_path, "double-ops = ep_doubling_ops\nboom = ep_boom\n")
    assert extern.load_plugins(["double-ops"]) == ("ep_doubling_ops",)
    assert not canary.exists() and "ep_boom" not in sys.modules
    assert OPS["doubled"].plugin == "ep_doubling_ops" and extern.loaded_plugins() == ("ep_doubling_ops",)
    assert extern.load_plugins(["ep_doubling_ops", "double-ops"]) == ("ep_doubling_ops",) * 2   # one plugin
    model = archdsl.loads(net("    doubled"))
    x = torch.randn(1, 16, 8)
    assert torch.equal(model(x), 2 * x)
    with pytest.raises(archdsl.ArchError) as e:   # named, the failing one is a diagnostic
        extern.load_plugins(["boom"])
    assert e.value.code == "E098" and "RuntimeError: boom" in e.value.message and canary.exists()


# ----------------------------------------------------------------------------- mistakes are diagnostics

def test_a_plugin_that_is_not_there_or_fails_to_import(tmp_path, module, capsys):
    with pytest.raises(archdsl.ArchError) as e:
        archdsl.check(net("    relu"), plugins=["no_such_plugin_anywhere"])
    assert e.value.code == "E097" and "no plugin `no_such_plugin_anywhere`" in e.value.message
    module("broken_plugin_h8", "from archdsl.extern import op\n\nx = 1\nraise ValueError('nope')\n")
    spec = tmp_path / "s.arch"
    spec.write_text(net("    relu"))
    assert cli.main(["check", str(spec), "--plugin", "broken_plugin_h8"]) == 1
    err = capsys.readouterr().err
    assert "error[E098]: plugin `broken_plugin_h8` failed to load: ValueError: nope" in err
    assert f"note: raised at {tmp_path / 'broken_plugin_h8.py'}:4" in err and "Traceback" not in err
    assert cli.main(["zoo", str(tmp_path), "--plugin", "no_such_plugin_anywhere"]) == 1
    assert "error[E097]" in capsys.readouterr().err


def test_name_clashes_name_both_sides(module):
    body = '''
        from archdsl.extern import Op, op

        @op
        class Mine(Op):
            name = "{name}"
        '''
    module("clash_builtin_h8", body.format(name="relu"))
    with pytest.raises(archdsl.ArchError) as e:
        extern.load_plugins(["clash_builtin_h8"])
    assert e.value.code == "E098" and "declares op `relu`, which is a built-in op" in e.value.message
    module("first_h8", body.format(name="twin"))
    module("second_h8", body.format(name="twin"))
    extern.load_plugins(["first_h8"])
    with pytest.raises(archdsl.ArchError) as e:
        extern.load_plugins(["second_h8"])
    assert e.value.code == "E098" and "plugin `second_h8` declares op `twin`, which is plugin `first_h8`" in \
        e.value.message
    assert OPS["twin"].plugin == "first_h8" and extern.loaded_plugins() == ("first_h8",)
    module("empty_h8", "X = 1\n")
    with pytest.raises(archdsl.ArchError, match="declares no ops"):
        extern.load_plugins(["empty_h8"])
    module("keyword_h8", body.format(name="range"))
    with pytest.raises(archdsl.ArchError, match="word of the language"):
        extern.load_plugins(["keyword_h8"])


def test_a_plugin_rule_that_fails_is_a_diagnostic_at_the_spec_line(module):
    module("buggy_h8", '''
        from archdsl.extern import Op, P, op

        @op
        class Crashes(Op):
            name, params = "crashes", (P("k", "int", 1),)
            def shape(self, a, xs):
                return (xs[0][0] // (a["k"] - 1),)

        @op
        class Negative(Op):
            name = "negative"
            def weights(self, a, xs, y):
                return -1, 0

        @op
        class Sneaky(Op):
            name = "sneaky"
            def module(self, a, xs, y):
                return "os.system", ("true",), {}
            def weights(self, a, xs, y):
                return 1, 0
        ''')
    extern.load_plugins(["buggy_h8"])
    for line, problem in (("crashes", "failed in its shape rule: ZeroDivisionError"),
                          ("negative", "its weights gave (-1, 0)"), ("sneaky", "names the constructor 'os.system'")):
        with pytest.raises(archdsl.ArchError) as e:
            archdsl.check(net(f"    relu -> {line}"))
        assert e.value.code == "E099" and problem in e.value.message, e.value.render()
        assert (e.value.span.line, e.value.span.col) == (3, 13) and "Traceback" not in e.value.render()


def test_the_examples_of_docs_plugins_elaborate():
    text = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```arch\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        assert archdsl.check(block, plugins=[PLUGIN], base=str(ROOT)).outputs
