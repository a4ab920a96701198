"""One example per diagnostic code: the catalogue behind docs/errors.md and its tests.

Each example is a spec (written as ``example.arch`` in a scratch folder, with any
extra files beside it), the keyword arguments given to ``archdsl.check``, and what
the diagnostic must say: code, line, column and a piece of its wording.

Regenerate the document with ``.venv/bin/python tests/diagnostics_catalogue.py``.
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import archdsl  # noqa: E402
from archdsl import benchmark, comparison, distributed, generate, models, sampling  # noqa: E402
from archdsl.errors import CODES  # noqa: E402
from archdsl.values import Expr  # noqa: E402

DOC = HERE.parent / "docs" / "errors.md"


@dataclass
class Example:
    code: str
    source: str | bytes
    line: int | None
    col: int | None
    wording: str
    kwargs: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    file: str = "example.arch"  # where the diagnostic points
    call: object = None         # what reads the spec, when not archdsl.check: a command's own check


def zoo_reads(path, **kwargs):
    """What `archdsl zoo` reads of a spec: its reference, and its top-1 as a number."""
    from archdsl.zoo import reference_of
    s = archdsl.summary(path, **kwargs)
    reference_of(s)
    return s.top1


def draws(path, **kwargs):
    """What `archdsl render` does with a spec: bound the drawing, then run Graphviz under its limits."""
    return archdsl.render(path, **kwargs).pipe("svg")


def with_plugin(name):
    """What `--plugin NAME` does before a command reads its spec: load the plugin (here from the
    spec's folder), then check; the plugin is forgotten afterwards."""
    def call(path, **kwargs):
        from archdsl import extern
        folder = str(Path(path).parent)
        sys.path.insert(0, folder)
        try:
            return archdsl.check(path, plugins=[name], **kwargs)
        finally:
            sys.path.remove(folder)
            extern._unload()
    return call


def on_data(data, weights=None):
    """What `archdsl train` and `archdsl eval --data DATA` do before training: open the data (HERE is
    the spec's folder) and fit the spec to it; with `weights`, evaluate those weights too."""
    def call(path, **kwargs):
        from archdsl.evaluation import check_for_data, evaluate
        folder = Path(path).parent
        where = data.replace("HERE", str(folder))
        if weights is not None:
            return evaluate(path, folder / weights, data=where, **kwargs)
        return check_for_data(path, where, **kwargs)
    return call


def searches(**options):
    """What `archdsl search` does with a spec: search its space (one 1-step trial unless told; the
    run folder beside the spec, no table)."""
    def call(path, **kwargs):
        from archdsl.search import search
        o = {"trials": 1, "steps": 1, "latency": False, "quiet": True, "out": str(Path(path).parent / "run"),
             **options}
        return search(path, **o, **kwargs)
    return call


SPACE = "network t(w = choice([8, 16])) {\n    input image: [3, 8, 8]\n    conv(w, 3)\n}\n"


def trains(**options):
    """What `archdsl train` does with a spec: train it (here one or two steps into a scratch run folder)."""
    def call(path, **kwargs):
        from archdsl import train
        opts = {"steps": 1, "out": "run", **options}
        opts["out"] = str(Path(path).parent / opts["out"])
        return train(path, quiet=True, **opts, **kwargs)
    return call


def resumes(path, **kwargs):
    """`archdsl train --resume FOLDER` on a folder that holds no run."""
    from archdsl import train
    return train(None, resume=Path(path).parent)


def compiles_badly(path, **kwargs):
    """`archdsl train --compile` where torch.compile fails (made to fail here)."""
    import torch
    real = torch.compile

    def failing(model, **kw):
        raise RuntimeError("no working C++ compiler")
    torch.compile = failing
    try:
        return trains(compile=True)(path, **kwargs)
    finally:
        torch.compile = real


def formats_wrongly(path, **kwargs):
    """`archdsl fmt` where the layout loses a statement (made to here): the check refuses it."""
    from archdsl import fmt
    real = fmt.render
    fmt.render = lambda doc, width: real(doc, width).replace("relu", "gelu")
    try:
        return fmt.format_source(Path(path).read_text(), file=str(path))
    finally:
        fmt.render = real


HEAD = "global_avgpool -> flatten -> linear(classes)"


def with_torch_home(path, name, weights, tensors=None):
    """`archdsl.create_model(name, weights=...)` with TORCH_HOME in the spec's folder (empty:
    torchvision's weights are not there) and, with ``tensors`` (key -> shape), a state dict of
    zeros written as the file ``weights`` beside the spec."""
    import os
    import torch
    folder = Path(path).parent
    if tensors is not None:
        torch.save({k: torch.zeros(shape) for k, shape in tensors.items()}, folder / weights)
        weights = folder / weights
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(folder / "torch")
    try:
        return models.create_model(name, weights=weights)
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old


def net(body: str, blocks: str = "") -> str:
    return f"{blocks}network t(classes = 10) {{\n    input image: [3, 32, 32]\n{body}\n}}\n"


EXAMPLES = [
    Example("E001", net("    conv(8, 3,, pad=1)"), 3, 15, "unexpected `,`"),
    Example("E001", net("    conv(8, 3) -> relu ->"), 4, 1, "unexpected `}`"),
    Example("E001", net("    my-block: conv(8, 3)"), 3, 7, "unexpected `-`"),
    Example("E002", "# \u202e hidden\n" + net("    relu"), 1, 3, "forbidden character RIGHT-TO-LEFT OVERRIDE"),
    Example("E003", b"network t() {\n  \xff\n}\n", 2, 3, "invalid UTF-8 at byte 16"),
    Example("E004", net("    let n = " + "9" * 5000), 3, 13, "number literal too long"),
    Example("E005", net("    let x = " + "[" * 210 + "]" * 210), 3, 212, "nested deeper than 200 levels"),
    Example("E005", net("    let x = " + " + ".join(["1"] * 250)), 3, 13, "expression nested deeper than 200"),
    Example("E006", net("    relu"), None, None, "over the source limit of 10", {"limits": {"source": 10}}),
    Example("E010", net("    conv(8, 3) -> rleu"), 3, 19, "unknown op or block `rleu`"),
    Example("E010", net("    relu"), 1, 5, "unknown name `clases`", {"classes": Expr("2 * clases", "--set classes")},
            file="<--set classes>"),
    Example("E011", net("    init convv = zeros\n    relu"), 3, 5, "unknown op `convv` in init"),
    Example("E012", net("    relu"), 1, 1, "network `t` has no parameter `clases`", {"clases": 5}),
    Example("E013", net("    relu"), 1, 1, "network `t` has no input `img`", {"inputs": {"img": [3, 8, 8]}}),
    Example("E014", "network t() {\n    let a = 1\n}\n", 1, 1, "declares no input"),
    Example("E015", net("    relu\n    output logits"), 4, 12, "output `logits` is not a named tensor or tap"),
    Example("E016", "network t() {\n    relu\n}\n", 2, 5, "nothing flows into `relu`"),
    Example("E017", net("    x = relu\n    output x\n    output x"), 5, 5, "`output` is given twice"),
    Example("E018", net("    b()", "block b() {\n    input x: [3, 8, 8]\n}\n"), 2, 5, "`input` belongs in a network"),
    Example("E019", net("    tap linear(10)"), 3, 5, "a tap needs a label"),
    Example("E020", net('    conv("eight", 3)'), 3, 10, "`out` must be an integer, got string"),
    Example("E021", net("    conv(8, 3, 1, 0, 1, 1, true, \"zeros\", 5)"), 3, 43, "takes at most 8 positional"),
    Example("E022", net("    conv(8, 3, padding=1)"), 3, 16, "`conv` has no parameter `padding`"),
    Example("E023", net("    conv(8)"), 3, 5, "`conv` needs `kernel`"),
    Example("E024", net("    dropout(1.5)"), 3, 13, "`p` must be at most"),
    Example("E026", net("    init conv = kaiming\n    relu"), 3, 5, "unknown init scheme `kaiming`"),
    Example("E030", net("    a: conv(8, 1) -> a: conv(8, 1)"), 3, 25, "the name `a` is used twice"),
    Example("E031", "block b() { relu }\nblock b() { relu }\n" + net("    b()"), 2, 1, "`b` is defined twice"),
    Example("E032", net("    layer{1.5}: relu"), 3, 11, "a label can interpolate integers and strings"),
    Example("E032", net('    "conv#1": relu'), 3, 5, 'label "conv#1" is not a valid name: it contains `#`'),
    Example("E041", net("    conv(8, 3) -> linear(classes)"), 3, 19, "`linear` needs a vector input, got [8, 30, 30]"),
    Example("E042", net("    conv(8, 3, groups=2)"), 3, 16, "groups=2 does not divide the 3 input channels"),
    Example("E043", net("    maxpool(2, pad=2)"), 3, 16, "pad"),
    Example("E044", net("    concat { conv(8, 3, pad=1); conv(8, 3, stride=2, pad=1) }"), 3, 5,
            "concat inputs differ beyond the channel dimension"),
    Example("E045", net("    conv(8, 3, stride=4) -> conv(8, 9)"), 3, 37, "output size"),
    Example("E046", net("    add(scale=[1]) { {}; conv(3, 1) }"), 3, 9, "scale"),
    Example("E047", "network t() {\n    input image: [3, 0, 4]\n}\n", 2, 18, "input shape must be a list of 1 to 4 positive"),
    Example("E048", net("    concat { }"), 3, 5, "`concat` has no branches"),
    Example("E050", net("    let x = 1e400"), 3, 13, "too large to be finite"),
    Example("E051", net('    let x = 1 + "a"'), 3, 13, "cannot apply `+` to int 1 and string"),
    Example("E052", net("    let x = classes // 0"), 3, 13, "division by zero"),
    Example("E052", net("    let x = [1, 2, 3][::0]"), 3, 25, "a slice step must not be zero"),
    Example("E053", net("    let f = 3\n    f(1)"), 4, 5, "`f` is int 3, not an op or block"),
    Example("E054", net("    let x = [1, 2][5]"), 3, 13, "index 5 is out of range"),
    Example("E055", net("    conv(in.channels, 1)"), 3, 10, "has no attribute `channels`"),
    Example("E056", net("    let x = 10 ** 100"), 3, 13, "10 ** 100 is too large"),
    Example("E057", net("    let x = [0] * 10 ** 7"), 3, 13, "over the limit of 1,000,000"),
    Example("E058", net("    for a, b in [1, 2] { relu }"), 3, 5, "cannot unpack 1 into 2 names"),
    Example("E059", net("    relu * -1"), 3, 12, "repetition count must be a non-negative integer"),
    Example("E060", net("    conv(8, 3)\n    assert in.c == 16, \"stem width\""), 4, 12, "assertion failed: in.c == 16"),
    Example("E061", net('    meta reference = "timm:local-dir:/etc"\n    relu'), 3, 5,
            "NAME must be a model name timm registers", call=zoo_reads),
    Example("E062", net('    meta reference = "torchvision:resnet50"\n    meta reference_args = {"weights": "DEFAULT"}'
                        '\n    relu'), 4, 5, "may not set `weights`", call=zoo_reads),
    Example("E063", net('    meta top1 = "76.1"\n    relu'), 3, 5, 'meta top1 must be a number (percent), got string "76.1"',
            call=zoo_reads),
    Example("E070", 'import "lib/missing.arch"\n' + net("    relu"), 1, 1, 'cannot find "lib/missing.arch"'),
    Example("E071", 'import "../outside.arch"\n' + net("    relu"), 1, 1, "leaves the allowed folders"),
    Example("E072", 'import "a.arch"\n' + net("    relu"), 1, 1, "import cycle: a.arch -> b.arch -> a.arch",
            files={"a.arch": 'import "b.arch"\n', "b.arch": 'import "a.arch"\n'}, file="b.arch"),
    Example("E073", 'import "model.py"\n' + net("    relu"), 1, 1, "can only import .arch files"),
    Example("E074", 'import "blocks.arch"\n' + net("    relu"), 1, 1, "blocks.arch is a directory, not a spec file",
            files={"blocks.arch/resnet.arch": "block b() { relu }\n"}),
    Example("E075", net("    relu"), None, None, "not a loading record", {"files": {"version": 1, "main": "x"}}),
    Example("E081", net("    upsample(scale=512) -> conv(1024, 1)"), 3, 28, "over the limit of 2,147,483,648"),
    Example("E082", net("    flatten -> linear(10 ** 7)"), 3, 16, "over 10,000,000,000 parameters"),
    Example("E083", net("    relu * 20"), 3, 5, "more than 10 ops", {"limits": {"nodes": 10}}),
    Example("E084", net("    relu * 1000000"), 3, 12, "over the repeat limit of 100,000"),
    Example("E085", net("    r()", "block r() {\n    relu -> r()\n}\n"), 2, 13, "nested deeper than 64"),
    Example("E086", net("    r(100000)", "block r(n) {\n    if n > 0 { relu -> r(n - 1) }\n}\n"), 6, 5,
            "nests too deeply", {"limits": {"depth": 10**6, "nodes": 10**6}}),
    Example("E086", 'import "a0.arch"\n' + net("    relu"), 1, 1, "imports nested deeper than 64",
            files={f"a{i}.arch": f'import "a{i + 1}.arch"\n' for i in range(70)}, file="a63.arch"),
    Example("E087", net("    for i in range(100000) { for j in range(100000) { } }"), 3, 30,
            "elaboration needs over 1,000,000 steps"),
    Example("E088", net("    conv(16, 3)"), 3, 5, "over the memory limit of 1000 B", {"limits": {"memory": 1000}},
            call=lambda path, **kw: archdsl.load(path, **kw)),
    Example("E089", "network t() {\n    input v: [2**17]\n    fc: linear(2**31)\n}\n", 3, 9,  # 1 PiB: past any
            "allocating the weights failed", {"limits": {"params": 2**49, "memory": 2**51}},   # address space
            call=lambda path, **kw: archdsl.load(path, **kw)),
    Example("E090", net("    relu"), None, None, "unknown limit `nodez`", {"limits": {"nodez": 5}}),
    Example("E094", net("    param scale: [0, 3]"), 3, 18, "the shape of param `scale` must be a list of 1 to 8 positive integers"),
    Example("E095", net("    param scale: [3, 1, 1]\n    @scale -> relu"), 4, 15, "is not an activation: `relu` cannot take it"),
    Example("E097", net("    relu"), None, None, "no plugin `no_such_plugin`", call=with_plugin("no_such_plugin")),
    Example("E098", net("    relu"), None, None, "plugin `broken_ops` failed to load: ValueError: nope",
            files={"broken_ops.py": "from archdsl.extern import op\n\nraise ValueError('nope')\n"},
            call=with_plugin("broken_ops")),
    Example("E099", net("    relu -> bad_op"), 3, 13, "failed in its shape rule: ZeroDivisionError",
            files={"bad_ops.py": 'from archdsl.extern import Op, op\n\n\n@op\nclass Bad(Op):\n    name = "bad_op"\n\n'
                                 '    def shape(self, a, xs):\n        return (xs[0][0] // 0,)\n'},
            call=with_plugin("bad_ops")),
    Example("E100", net("    relu"), None, None, "unknown data set `cifar`", call=on_data("cifar")),
    Example("E101", net("    relu"), None, None, "no_such_folder does not exist",
            call=on_data("cifar10:HERE/no_such_folder")),
    Example("E102", net("    relu"), None, None, "has no class folders",
            files={"images/train/README": "", "images/val/README": ""}, call=on_data("imagefolder:HERE/images")),
    Example("E103", net("    relu"), None, None, "cifar-10-batches-py/data_batch_1 is missing",
            files={"cifar/README": ""}, call=on_data("cifar10:HERE/cifar")),
    Example("E104", net("    global_avgpool -> flatten -> linear(1000)"), None, None, "the network's output has 1000 classes",
            call=on_data("digits")),
    Example("E105", net("    global_avgpool -> flatten -> linear(classes)"), None, None, "none.safetensors does not exist",
            call=on_data("digits", weights="none.safetensors")),
    Example("E106", net(f"    {HEAD}"), None, None, "--lr must be a positive number, got -1.0", call=trains(lr=-1.0)),
    Example("E107", net("    conv(4, 3) -> relu\n    side: tap head(classes)\n    logits = head(classes)\n    output logits, side",
                        "block head(classes) { global_avgpool -> flatten -> linear(classes) }\n"),
            None, None, "network `t` has 2 outputs (`logits` [10], `side` [10])", call=trains()),
    Example("E108", net(f"    {HEAD}"), None, None, "the run stopped", call=trains(lr=1e30, steps=30)),
    Example("E109", net(f"    {HEAD}"), None, None, "cannot write the run folder", files={"taken": ""},
            call=trains(out="taken")),
    Example("E110", net(f"    {HEAD}"), None, None, "is not a run folder: it has no options.json", call=resumes),
    Example("E111", net(f"    {HEAD}"), None, None, "--amp fp16 needs CUDA", call=trains(amp="fp16", device="cpu")),
    Example("E112", net(f"    {HEAD}"), None, None,
            "torch.compile could not compile `t`: RuntimeError: no working C++ compiler", call=compiles_badly),
    Example("E117", net("    conv(8, 3) -> bn -> relu"), None, None, "--sync-bn needs CUDA",
            call=lambda path, **kw: archdsl.train(path, steps=1, device="cpu", sync_bn=True, quiet=True)),
    Example("E118", net("    conv(8, 3)"), None, None, "the batch of 65 cannot be shared by 2 processes",
            call=lambda path, **kw: distributed.per_process_batch(65, 2)),
    Example("E113", net("    conv(8, 3)"), None, None, "network `t` has no `size` parameter for --size 64 to set",
            call=lambda path, **kw: benchmark.bench(path, size=64, runs=1, warmup=0)),
    Example("E114", net("    conv(8, 3)"), None, None, "--runs must be an integer >= 1, got 0",
            call=lambda path, **kw: benchmark.bench(path, runs=0)),
    Example("E115", net("    relu"), None, None, "is not a run folder: it has no summary.json",
            call=lambda path, **kw: comparison.read_runs([path.parent])),
    Example("E116", "network t() {\n    input image: [3, 1, 1]\n    bn\n}\n", None, None,
            "t cannot take a training step at batch 1",
            call=lambda path, **kw: benchmark.bench(path, train=True, runs=1, warmup=0)),
    Example("E119", "network t(w = choice([])) {\n    input image: [3, 32, 32]\n    conv(w, 3)\n}\n", 1, 15,
            "`choice` needs a non-empty list of values"),
    Example("E119", "network t(w = int_range(2, 8, stpe=2)) {\n    input image: [3, 32, 32]\n    conv(w, 3)\n}\n",
            1, 15, "`int_range` has no parameter `stpe`"),
    Example("E120", net("    let w = choice([8, 16])\n    conv(w, 3)"), 3, 13,
            "domains belong on network parameters only"),
    Example("E121", "network t(w = choice([8, 16])) {\n    input image: [3, 32, 32]\n    conv(w, 3)\n}\n", 1, 11,
            "`w` = 24 is outside its domain choice([8, 16])", {"w": 24}),
    Example("E122", net('    conv(8, 3)\n    require params < 100, "a tiny network"'), 4, 13,
            "requirement not met: params < 100 (a tiny network)"),
    Example("E123", net("    relu"), None, None, "network `t` declares no design space",
            call=lambda path, **kw: list(sampling.sample_designs(path, 5))),
    Example("E124", "network t(w = choice([8, 16])) {\n    input image: [3, 4, 4]\n    conv(w, 5)\n}\n", None, None,
            "no valid design in the 4 drawn from `example`",
            call=lambda path, **kw: sampling.some_valid([sampling.sample(path, 4)])),
    Example("E125", SPACE, None, None, "unknown --sampler 'bayes'", call=searches(sampler="bayes")),
    Example("E126", "network t(m = float_range(0.5, 2)) {\n    input image: [3, 8, 8]\n    conv(8, 3)\n}\n", None,
            None, "--sampler grid needs every domain finite: `m` is float_range(0.5, 2.0)", call=searches(sampler="grid")),
    Example("E127", SPACE, None, None, "cannot open the storage nosuchdb://host/study",
            call=searches(storage="nosuchdb://host/study")),
    Example("E128", SPACE.replace("conv(w, 3)", 'conv(w, 3)\n    require w > 16, "wider"'), None, None,
            "no design of the space could be trained: all 2 trials failed (E122 ×2)", call=searches(trials=2)),
    Example("E129", net("    relu"), None, None, "nothing to search: network `t` declares no design space",
            call=searches()),
    Example("E130", net("    relu"), None, None, "--ops names `batchnorm`, which the generator does not know",
            call=lambda path, **kw: generate.generate(1, ops="conv,batchnorm")),
    Example("E131", net("    relu"), None, None, "no model `resnet5` in the zoo",
            call=lambda path, **kw: models.create_model("resnet5")),
    Example("E132", net("    relu"), None, None, "the weights ResNet18_Weights.IMAGENET1K_V1 of torchvision:resnet18 "
            "are not on this machine", call=lambda path, **kw: with_torch_home(path, "resnet18", "torchvision")),
    Example("E133", net(f"    {HEAD}"), None, None, "do not fit `t`",
            call=lambda path, **kw: with_torch_home(path, path, "w.pt", {"fc.weight": [3, 4]})),
    Example("E134", net(f"    {HEAD}"), None, None, "weights=\"torchvision\": `t` names no `meta reference`",
            call=lambda path, **kw: models.create_model(path, weights="torchvision")),
    Example("E135", net("    relu"), 1, 1, "formatting would change what this spec means", call=formats_wrongly),
    Example("E091", net("    relu * 30"), 1, 1, "over the bounds of 10 nodes", {"max_nodes": 10}, call=draws),
    Example("E092", net("    relu"), 1, 1, "dot ran out of time: still drawing after 0.001 s", {"dot_timeout": 0.001},
            call=draws),
    Example("E093", net("    relu"), 1, 1, "dot ran out of memory under the limit of 1 MB", {"dot_memory": 2**20},
            call=draws),
]


def run(example: Example, folder: Path) -> archdsl.ArchError:
    """Write the example to ``folder`` and return the diagnostic it gives."""
    (folder / "proj").mkdir(parents=True, exist_ok=True)
    (folder / "outside.arch").write_text("block x() { relu }\n")
    for name, text in example.files.items():
        (folder / "proj" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "proj" / name).write_text(text)
    path = folder / "proj" / "example.arch"
    data = example.source if isinstance(example.source, bytes) else example.source.encode("utf-8")
    path.write_bytes(data)
    try:
        (example.call or archdsl.check)(path, **example.kwargs)
    except archdsl.ArchError as e:
        e.rendered = e.render().replace(str(folder / "proj") + "/", "").replace(str(folder), "/home/me").replace(str(HERE.parent), "<archdsl>")
        return e
    raise AssertionError(f"{example.code}: no error")


def document() -> str:
    lines = ["# Diagnostics", "",
             "Every diagnostic archdsl gives, with a spec that triggers it and what it prints.",
             "Generated by `tests/diagnostics_catalogue.py` from the examples the test suite checks",
             "(`tests/test_diagnostics.py` fails when this file is out of date).", "",
             "Every diagnostic has the form `error[CODE]: message`, then `--> file:line:col`, the source",
             "line with a caret under the span, the block call stack (`= in block b, called at ...`),",
             "notes with the shapes involved, and a hint where one helps. `archdsl` exits with status 1.", "",
             "| code | meaning |", "|---|---|"]
    lines += [f"| [{c}](#{c.lower()}) | {t} |" for c, t in CODES.items()]
    with tempfile.TemporaryDirectory() as tmp:
        for i, ex in enumerate(EXAMPLES):
            err = run(ex, Path(tmp) / str(i))
            if i == 0 or EXAMPLES[i - 1].code != ex.code:
                lines += ["", f"## {ex.code}", "", f"{CODES[ex.code].capitalize()}.", ""]
            src = ex.source.decode("utf-8", "backslashreplace") if isinstance(ex.source, bytes) else ex.source
            if len(src) > 400:
                src = src[:200] + " ... " + src[-100:]
            lines += ["```arch", src.rstrip("\n"), "```"]
            if ex.kwargs:
                lines += [f"called with `{ex.kwargs}`"]
            lines += ["", "```text", err.rendered if len(err.rendered) < 1500 else err.rendered[:1500] + " ...", "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.write_text(document(), encoding="utf-8")
    print(f"wrote {DOC}")
