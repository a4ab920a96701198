"""Issue 10, items 6, 16, 17, 18 and the zoo half of 19: `meta` values reach commands safely.

- `meta reference` is resolved by archdsl.reference only: `torchvision:NAME` / `timm:NAME`
  (and the older `torchvision.models.NAME`), NAME registered by the library, literal
  `meta reference_args`, weights never requested; every other form is a diagnostic at the
  meta line (E061 the name, E062 the arguments).
- `summary --format json` converts every value of the language (ranges, tuple-keyed dicts,
  blocks, ops, builtins, tensors), bounded in size.
- meta values a command computes with (top1) are checked where they are read (E063).
- user strings (file names, meta strings) reach rich as literal text.
- `zoo DIR` on a missing folder is E070; its line counts follow the imports the loader reads.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import archdsl
from archdsl import reference as references
from archdsl import summary
from archdsl.analyze import META_DEPTH, META_ITEMS, meta_json
from archdsl.cli import main
from archdsl.errors import ArchError
from archdsl.zoo import entries, reference_of, source_lines
from conftest import ROOT
from measure import measure

CLI = [sys.executable, "-m", "archdsl.cli"]


def spec(*meta: str, blocks: str = "") -> str:
    """A tiny spec whose `meta` lines start at line 3 (column 5)."""
    lines = "".join(f"    {m}\n" for m in meta)
    return f"{blocks}network n() {{\n    input image: [3, 8, 8]\n{lines}" \
           "    conv(4, 3) -> global_avgpool -> flatten\n}\n"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def zoo_error(path: Path) -> ArchError:
    with pytest.raises(ArchError) as info:
        reference_of(summary(path))
    return info.value


def assert_at(err: ArchError, code: str, line: int, path: Path) -> None:
    assert err.code == code, err.render()
    assert (err.span.file, err.span.line, err.span.col) == (str(path), line, 5), err.render()
    rendered = err.render()
    assert f"{path}:{line}:5" in rendered and "^^^" in rendered


# ----------------------------------------------------------------------------- item 6: the resolver

REFUSED_NAMES = [
    '"timm:local-dir:/any/path"',       # timm would read a config from any folder
    '"timm:hf-hub:timm/resnet50.a1_in1k"',
    '"hf-hub:timm/resnet50"',
    '"torchvision.models.__dict__"',    # any attribute of the module
    '"torchvision.models.resnet50.__globals__"',
    '"torchvision:ResNet50"',
    '"os.system"',
    '"builtins:eval"',
    '""',
    '"[/x]"',
    "5",
    '["torchvision:resnet50"]',
]


@pytest.mark.parametrize("value", REFUSED_NAMES)
def test_refused_reference_forms(tmp_path, value):
    """Refused from the form alone: nothing is imported, the diagnostic points at the meta line."""
    path = write(tmp_path, "s.arch", spec('meta paper = "x"', f"meta reference = {value}"))
    err = zoo_error(path)
    assert_at(err, "E061", 4, path)
    assert "torchvision:NAME" in err.render()


def test_the_zoo_refuses_without_importing_torch(tmp_path):
    write(tmp_path, "s.arch", spec('meta reference = "timm:local-dir:/etc"'))
    got = measure(CLI + ["zoo", str(tmp_path)], timeout=30)
    assert got.rc == 1 and "Traceback" not in got.stderr, got.stderr
    assert "error[E061]" in got.stderr and f"{tmp_path}/s.arch:3:5" in got.stderr
    code = ("import sys; from archdsl.cli import main; main(['zoo', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    assert measure([sys.executable, "-c", code, str(ROOT / "specs")], cwd=ROOT, timeout=30).rc == 0


@pytest.mark.parametrize("value, where", [
    ('"torchvision:resnet5"', "did you mean `resnet50`?"),
    ('"timm:inception_v44"', "did you mean `inception_v4`?"),
    ('"torchvision:no_such_model_at_all"', "list_models()"),
])
def test_unregistered_names(tmp_path, value, where):
    path = write(tmp_path, "s.arch", spec(f"meta reference = {value}"))
    ref = reference_of(summary(path))            # the form is fine ...
    with pytest.raises(ArchError) as info:       # ... the library does not register it
        references.size(ref)
    assert_at(info.value, "E061", 3, path)
    assert where in info.value.render()


REFUSED_ARGS = [
    ('{"weights": "DEFAULT"}', "may not set `weights`"),
    ('{"weights_backbone": "IMAGENET1K_V1"}', "may not set `weights_backbone`"),
    ('{"pretrained": true}', "may not set `pretrained`"),
    ('{"checkpoint_path": "/etc/passwd"}', "may not set `checkpoint_path`"),
    ('{"cache_dir": "/tmp"}', "may not set `cache_dir`"),
    ('{"pretrained_cfg_overlay": "x"}', "may not set `pretrained_cfg_overlay`"),
    ('{"model_file": "x"}', "may not set `model_file`"),
    ('{"_private": 1}', "keys must be argument names"),
    ('{1: 2}', "keys must be argument names, got int 1"),
    ('{"num_classes": [10]}', "must be an int, float, bool, string or none, got list [10]"),
    ('{"num_classes": (10,)}', "got tuple"),
    ('{"num_classes": {"a": 1}}', "got dict"),
    ('{"act": b}', "got block b"),
    ('{"act": relu}', "got op relu"),
    ('{"x": "' + "a" * 1001 + '"}', "must be an int, float, bool, string or none"),
    ('[1, 2]', "must be a dict, got list"),
    ('"aux_loss=True"', "must be a dict, got string"),
    ("{" + ", ".join(f'"a{i}": {i}' for i in range(65)) + "}", "more than 64"),
]


@pytest.mark.parametrize("args, wording", REFUSED_ARGS, ids=[w for _, w in REFUSED_ARGS])
def test_refused_reference_args(tmp_path, args, wording):
    path = write(tmp_path, "s.arch", spec('meta reference = "torchvision:resnet18"', f"meta reference_args = {args}",
                                          blocks="block b() { relu }\n"))
    err = zoo_error(path)
    assert_at(err, "E062", 5, path)    # the block takes a line: the meta lines are 4 and 5
    assert wording in err.message


def test_reference_args_need_a_reference(tmp_path):
    path = write(tmp_path, "s.arch", spec('meta reference_args = {"aux_loss": true}'))
    assert_at(zoo_error(path), "E062", 3, path)


def test_forms_that_resolve(tmp_path):
    for text, label in (("torchvision:resnet18", "torchvision:resnet18"),
                        ("torchvision.models.resnet18", "torchvision:resnet18"),   # the older spelling
                        ("timm:resnetv2_50", "timm:resnetv2_50")):
        ref = references.from_meta({"reference": text})
        assert (ref.label, ref.text, ref.args) == (label, text, {})
    args = references.from_meta({"reference": "torchvision:resnet18",
                                 "reference_args": {"num_classes": 10, "zero_init_residual": True, "x": 0.5,
                                                    "s": "a", "n": None}}).args
    assert args == {"num_classes": 10, "zero_init_residual": True, "x": 0.5, "s": "a", "n": None}


def test_every_torchvision_namespace_is_registered():
    torchvision = pytest.importorskip("torchvision")
    names = set(references.registered("torchvision"))
    assert {"resnet50", "deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large", "fasterrcnn_resnet50_fpn",
            "maskrcnn_resnet50_fpn", "r3d_18", "raft_small", "quantized_resnet18", "vit_b_16"} <= names
    for sub in ("segmentation", "detection", "video", "optical_flow", "quantization"):
        assert set(torchvision.models.list_models(module=getattr(torchvision.models, sub))) <= names


@pytest.fixture
def no_downloads(monkeypatch):
    """Any request for weights fails the test; returns the list of builder calls' kwargs."""
    torch = pytest.importorskip("torch")
    tvm = pytest.importorskip("torchvision.models")
    from torchvision.models import _api

    def refuse(*args, **kwargs):
        raise AssertionError("weights were requested")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(_api.WeightsEnum, "get_state_dict", refuse)
    calls = []
    real = tvm.get_model_builder

    def recording(name):
        builder = real(name)

        def call(**kwargs):
            calls.append((name, dict(kwargs)))
            return builder(**kwargs)
        call.__signature__ = __import__("inspect").signature(builder)
        return call
    monkeypatch.setattr(tvm, "get_model_builder", recording)
    return calls


def test_segmentation_reference_builds_without_weights(tmp_path, no_downloads):
    """deeplabv3_resnet50 defaults to downloading its backbone: the resolver passes
    weights_backbone=None; with the aux head it has 42,004,074 parameters."""
    path = write(tmp_path, "s.arch", spec('meta reference = "torchvision:deeplabv3_resnet50"',
                                          'meta reference_args = {"aux_loss": true}'))
    ref = reference_of(summary(path))
    assert references.size(ref)[0] == 42_004_074
    model = references.build(ref)
    assert sum(p.numel() for p in model.parameters()) == 42_004_074
    assert model.aux_classifier is not None
    assert no_downloads and all(kw["weights"] is None and kw["weights_backbone"] is None and kw["aux_loss"] is True
                                for _, kw in no_downloads)


def test_extra_arguments_cannot_ask_for_weights(no_downloads):
    ref = references.from_meta({"reference": "torchvision:resnet18"})
    for key in ("weights", "weights_backbone", "pretrained", "checkpoint_path"):
        with pytest.raises(ArchError) as info:
            references.build(ref, device="meta", **{key: "DEFAULT"})
        assert info.value.code == "E062"
    model = references.build(ref, device="meta", num_classes=10)
    assert model.fc.out_features == 10 and no_downloads[-1][1]["weights"] is None


def test_timm_is_built_with_pretrained_false(monkeypatch):
    timm = pytest.importorskip("timm")
    calls = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda name, **kw: calls.append((name, kw)) or real(name, **kw))
    def refuse(*args, **kwargs):
        raise AssertionError("weights were requested")
    monkeypatch.setattr("timm.models._builder.load_pretrained", refuse)
    ref = references.from_meta({"reference": "timm:resnetv2_50", "reference_args": {"num_classes": 7}})
    model = references.build(ref, device="meta")
    assert model.num_classes == 7 and calls == [("resnetv2_50", {"num_classes": 7, "pretrained": False})]


def test_what_the_constructor_refuses(tmp_path, no_downloads):
    path = write(tmp_path, "s.arch", spec('meta reference = "torchvision:resnet18"',
                                          'meta reference_args = {"no_such_argument": 1}'))
    with pytest.raises(ArchError) as info:
        references.size(reference_of(summary(path)))
    assert_at(info.value, "E062", 4, path)
    assert "refuses these arguments: TypeError" in info.value.message


def test_sizes_are_counted_before_anything_is_allocated(no_downloads):
    big = references.from_meta({"reference": "torchvision:resnet18", "reference_args": {"num_classes": 10**8}})
    with pytest.raises(ArchError) as info:           # 51 billion bytes of weights: refused on the meta device
        references.build(big, max_params=10**9)
    assert info.value.code == "E082" and "over the limit of 1,000,000,000" in info.value.message
    regnet = references.from_meta({"reference": "torchvision:regnet_x_400mf", "reference_args": {"num_classes": 10}})
    assert references.size(regnet) is None           # RegNets cannot be built on the meta device ...
    with pytest.raises(ArchError) as info:           # ... so they take no arguments that could size them
        references.build(regnet)
    assert info.value.code == "E062" and "cannot be sized" in info.value.message


def test_zoo_parity_through_the_resolver(tmp_path):
    pytest.importorskip("archdsl.compile")
    folder = tmp_path / "z"
    folder.mkdir()
    os.symlink(ROOT / "specs" / "squeezenet1_1.arch", folder / "squeezenet1_1.arch")
    write(folder, "tiny.arch", spec('meta reference = "torchvision:resnet18"'))
    rows = {e.spec: e for e in entries(folder, run_parity=True, check=archdsl.check)}
    assert rows["squeezenet1_1"].parity == "identical outputs"
    assert rows["tiny"].parity.startswith("FAILS (torchvision:resnet18 has 11,689,512 parameters")


# ----------------------------------------------------------------------------- item 16: JSON of any value

def test_summary_json_of_every_kind_of_value(tmp_path, capsys):
    path = write(tmp_path, "s.arch", spec(
        "meta year = range(3)", "meta pairs = {(1, 2): 3, 4: (5, 6)}", "meta mixed = {1: \"a\", \"1\": \"b\"}",
        "meta keys = {\"a\": [1, 2.5, true, none]}", "meta top1 = some_block", "meta act = relu",
        "meta part = conv(8)", "meta f = len", "meta t = in", "meta s = \"[bold red]x\"",
        blocks="block some_block() { relu }\n"))
    assert main(["summary", str(path), "--format", "json"]) == 0
    meta = json.loads(capsys.readouterr().out)["meta"]
    assert meta == {"year": [0, 1, 2], "pairs": [[[1, 2], 3], [4, [5, 6]]], "mixed": [[1, "a"], ["1", "b"]],
                    "keys": {"a": [1, 2.5, True, None]}, "top1": "block some_block", "act": "op relu",
                    "part": meta["part"], "f": "builtin len", "t": [3, 8, 8], "s": "[bold red]x"}
    assert meta["part"].startswith("op conv")    # an op with arguments bound: its shown name


def test_meta_json_is_bounded():
    big = meta_json(list(range(10**6)))
    assert META_ITEMS - 1 <= len(big) <= META_ITEMS + 1 and big[:-1] == list(range(len(big) - 1)) and big[-1] == "..."
    assert len(meta_json(range(10**12))) <= META_ITEMS + 1
    deep = (1,)
    for _ in range(150):
        deep = [deep]
    text = json.dumps(meta_json(deep))
    assert text.count("[") == META_DEPTH and '"..."' in text
    assert meta_json("a" * 10**6) == "a" * 10_000 + " ..."
    assert len(json.dumps(meta_json(["a" * 10_000] * 10_000))) < 400_000      # long strings cost items too
    both = meta_json({"a": list(range(10**6)), "b": list(range(10**6))})    # one budget for all of meta
    assert len(both["a"]) <= META_ITEMS + 1 and both["..."] == "1 more" and "b" not in both
    shown = meta_json({f"k{i}": i for i in range(20_000)})
    assert len(shown) <= META_ITEMS + 1 and shown["..."] == f"{20_001 - len(shown):,} more"


def test_summary_json_of_a_million_items_is_quick(tmp_path):
    path = write(tmp_path, "s.arch", spec("meta big = list(range(1000000))", "meta rows = [[1, 2]] * 300000"))
    got = measure(CLI + ["summary", str(path), "--format", "json"], timeout=60)
    assert got.rc == 0, got.stderr
    data = json.loads(got.stdout)["meta"]
    assert len(data["big"]) <= META_ITEMS + 1 and data["big"][-1] == "..." and len(json.dumps(data)) < 200_000
    assert got.cpu_s < 5 and got.peak_mb < 500
    print(f"summary json, meta of 10^6 items: {got.cpu_s:.2f} s CPU, {got.peak_mb:.0f} MB peak")


# ----------------------------------------------------------------------------- item 17: numbers where read

@pytest.mark.parametrize("value, wording", [
    ("range(3)", "must be a number (percent), got range(0, 3, 1)"),
    ('"76.1"', 'meta top1 must be a number (percent), got string "76.1"'),
    ("some_block", "must be a number (percent), got block some_block"),
    ("true", "got bool true"),
    ("[76.1]", "got list [76.1]"),
    ("176", "must be between 0 and 100 (percent), got 176"),
])
def test_top1_must_be_a_number(tmp_path, capsys, value, wording):
    path = write(tmp_path, "s.arch", spec(f"meta top1 = {value}", blocks="block some_block() { relu }\n"))
    for argv in (["chart", str(path), "-o", str(tmp_path / "c.png")], ["zoo", str(tmp_path)],
                 ["zoo", str(tmp_path), "--format", "markdown"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "error[E063]: meta top1 must be" in err and wording in err, err
        assert f"{path}:4:5" in err and "Traceback" not in err, err
    assert not (tmp_path / "c.png").exists()


# ----------------------------------------------------------------------------- item 18: rich markup

def test_markup_in_file_names_is_shown_literally(tmp_path):
    write(tmp_path, "[bold red]x.arch", spec('meta paper = "[/x] :smile:"'))
    write(tmp_path, "e\x1b[31mvil.arch", spec())
    got = measure(CLI + ["zoo", str(tmp_path)], timeout=30, env={**os.environ, "COLUMNS": "200"})
    assert got.rc == 0 and "Traceback" not in got.stderr, got.stderr
    assert "[bold red]x" in got.stdout
    assert "e\\x1b[31mvil" in got.stdout and "\x1b" not in got.stdout   # the escape shown, not sent
    got = measure(CLI + ["zoo", str(tmp_path), "--format", "markdown"], timeout=30)
    assert "`[bold red]x`" in got.stdout


def test_markup_in_meta_strings_never_crashes(tmp_path, capsys):
    path = write(tmp_path, "s.arch", spec('meta reference = "[/x]"'))
    assert main(["zoo", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'error[E061]: meta reference "[/x]" is not' in err and "MarkupError" not in err
    path.write_text(spec('meta top1 = "[/x]"'))
    assert main(["chart", str(path), "-o", str(tmp_path / "c.png")]) == 1
    assert 'got string "[/x]"' in capsys.readouterr().err


def test_names_reach_rich_as_text(tmp_path, capsys):
    """Labels are identifiers today; names that are not (quoted labels, plugin ops) print literally."""
    from archdsl.analyze import compare_table
    from archdsl.report import print_check
    graph = archdsl.check(spec())
    first = graph.nodes()[1]
    graph.table[first]["name"] = "[b]x[/y]:smile:"
    print_check(graph)
    assert "[b]x[/y]:smile:" in capsys.readouterr().out
    graph.network = "[red]net"
    s = summary(graph)
    s.print()
    assert "[red]net (batch 1" in capsys.readouterr().out
    from rich.console import Console
    console = Console(highlight=False, width=200)
    with console.capture() as cap:
        console.print(compare_table(s, s))
    assert "[red]net vs [red]net" in cap.get()


# ----------------------------------------------------------------------------- item 19: the zoo's folder and lines

def test_zoo_of_a_missing_folder(tmp_path, capsys):
    for target in (tmp_path / "nowhere", write(tmp_path, "file.arch", spec())):
        for fmt in ("table", "markdown"):
            assert main(["zoo", str(target), "--format", fmt]) == 1
            out = capsys.readouterr()
            assert out.err.startswith("error[E070]: cannot list the zoo:") and str(target) in out.err
            assert out.out == ""


def test_line_counts_follow_the_imports_the_loader_reads(tmp_path):
    lib = ROOT / "specs" / "lib" / "resnet.arch"
    own = "import \"{}\"\n# a comment\n\nnetwork n() {{\n    input image: [3, 32, 32]\n    basic(8)\n}}\n"

    def counted(text: str) -> int:
        return sum(1 for line in text.splitlines() if line.split("#", 1)[0].strip())
    want = counted(own) + counted(lib.read_text())
    std = write(tmp_path / "a", "s.arch", own.format("std/resnet.arch"))
    assert source_lines(archdsl.check(std)) == want
    local = write(tmp_path / "b", "s.arch", own.format("lib/resnet.arch"))
    write(tmp_path / "b" / "lib", "resnet.arch", lib.read_text())
    assert source_lines(archdsl.check(local)) == want
    both = write(tmp_path / "c", "s.arch", own.format("std/resnet.arch").replace(
        "# a comment", 'import "std/resnet.arch"'))   # the same file twice: counted once
    assert source_lines(archdsl.check(both)) == want + 1
    assert [e.lines for e in entries(tmp_path / "a", check=archdsl.check)] == [want]
