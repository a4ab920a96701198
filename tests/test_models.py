"""The model registry (archdsl.list_models, archdsl.create_model), its weights, and the wheel:
the packaged library and `archdsl zoo` outside a checkout."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
import torch
import torchvision

import archdsl
from archdsl.models import PartialWeightsWarning, _torchvision_keys

from conftest import ROOT

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME; returns its checkpoints folder (created)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def checkpoint(folder: Path, name: str, model: torch.nn.Module, entry: str = "IMAGENET1K_V1") -> Path:
    """A random state dict saved where torchvision would cache the weights `entry` of `name`."""
    url = torchvision.models.get_model_weights(name)[entry].url
    path = folder / url.rsplit("/", 1)[1]
    torch.save(model.state_dict(), path)
    return path


def same_outputs(a: torch.nn.Module, b: torch.nn.Module, x=X) -> bool:
    with torch.inference_mode():
        return torch.equal(a.eval()(x), b.eval()(x))


# ----------------------------------------------------------------------------- the registry

def test_list_models_is_the_packaged_zoo():
    names = archdsl.list_models()
    assert names == sorted(p.stem for p in (ROOT / "specs").glob("*.arch"))
    assert {"resnet50", "vgg16", "googlenet"} <= set(names)
    assert archdsl.list_models("resnet1*") == ["resnet101", "resnet110_cifar", "resnet152", "resnet18"]
    assert archdsl.list_models("nothing*") == []


def test_create_model_builds_the_spec():
    model = archdsl.create_model("resnet18", classes=10, size=64, seed=0)
    same = archdsl.load(ROOT / "specs" / "resnet18.arch", classes=10, size=64, seed=0)
    assert same_outputs(model, same) and model(X).shape == (1, 10)


def test_an_unknown_model_is_a_diagnostic():
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.create_model("resnet5")
    assert info.value.code == "E131" and "did you mean `resnet50`?" in str(info.value)


# ----------------------------------------------------------------------------- torchvision's weights

def test_torchvision_weights_absent_are_named_never_downloaded(torch_home):
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.create_model("resnet18", weights="torchvision")
    err = info.value
    assert err.code == "E132" and str(torch_home / "resnet18-f37072fd.pth") in err.message
    assert "ResNet18_Weights.IMAGENET1K_V1" in err.message and "never downloads" in str(err)
    assert list(torch_home.iterdir()) == []


def test_torchvision_weights_give_torchvisions_outputs(torch_home):
    ref = torchvision.models.resnet18()
    checkpoint(torch_home, "resnet18", ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # every tensor fits: no warning
        model = archdsl.create_model("resnet18", weights="torchvision", size=64)
    assert same_outputs(model, ref)
    ref2 = torchvision.models.resnet18()
    checkpoint(torch_home, "resnet18", ref2, "IMAGENET1K_V1")   # DEFAULT of resnet18 is V1 too
    assert same_outputs(archdsl.create_model("resnet18", weights="torchvision:DEFAULT", size=64), ref2)


def test_other_classes_load_all_but_the_classifier(torch_home):
    ref = torchvision.models.resnet18()
    checkpoint(torch_home, "resnet18", ref)
    with pytest.warns(PartialWeightsWarning) as caught:
        model = archdsl.create_model("resnet18", classes=10, weights="torchvision", seed=0)
    message = str(caught[0].message)
    assert "`fc.weight`, `fc.bias`" in message and "built for 10 classes, the weights have 1000" in message
    assert "loaded 120 of 122 tensors" in message
    ours, theirs = model.state_dict(), ref.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if not k.startswith("fc."))
    fresh = archdsl.create_model("resnet18", classes=10, seed=0)   # the classifier keeps its initialisation
    assert torch.equal(ours["fc.weight"], fresh.state_dict()["fc.weight"])
    # a convolution as the classifier (SqueezeNet's), the first dimension is the classes there too
    squeeze = torchvision.models.squeezenet1_1()
    checkpoint(torch_home, "squeezenet1_1", squeeze)
    with pytest.warns(PartialWeightsWarning, match="`classifier.1.weight`, `classifier.1.bias`"):
        model = archdsl.create_model("squeezenet1_1", classes=10, weights="torchvision")
    assert torch.equal(model.state_dict()["features.0.weight"], squeeze.state_dict()["features.0.weight"])


def test_auxiliary_heads_a_spec_leaves_out_are_skipped_and_named(torch_home):
    ref = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    checkpoint(torch_home, "googlenet", ref)
    with pytest.warns(UserWarning) as caught:
        model = archdsl.create_model("googlenet", aux=False, size=64, weights="torchvision")
    normalised, partial = (str(w.message) for w in caught)
    assert "normalised with mean 0.5 and std 0.5" in normalised
    assert "auxiliary heads `googlenet` is built without" in partial and "`aux1.conv.conv.weight`" in partial
    ref.aux_logits, ref.aux1, ref.aux2 = False, None, None
    assert same_outputs(model, ref)


def test_densenet_checkpoints_old_names_are_renamed():
    t = torch.zeros(1)
    old = {"features.denseblock1.denselayer1.norm.1.weight": t, "features.denseblock1.denselayer1.conv.2.weight": t,
           "features.conv0.weight": t}
    assert list(_torchvision_keys(old)) == ["features.denseblock1.denselayer1.norm1.weight",
                                            "features.denseblock1.denselayer1.conv2.weight", "features.conv0.weight"]


def test_torchvision_weights_need_a_torchvision_reference(tmp_path, torch_home):
    spec = tmp_path / "tiny.arch"
    spec.write_text("network tiny(classes = 10) {\n    input image: [3, 8, 8]\n    conv(4, 3) -> global_avgpool "
                    "-> flatten -> linear(classes)\n}\n")
    for name, said in ((spec, "`tiny` names no `meta reference`"), ("cspdarknet53", "names timm:cspdarknet53")):
        with pytest.raises(archdsl.ArchError) as info:
            archdsl.create_model(name, weights="torchvision")
        assert info.value.code == "E134" and said in info.value.message
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.create_model("resnet50", weights="torchvision:IMAGENET1K_V3")
    assert info.value.code == "E134" and "did you mean `IMAGENET1K_V2`?" in str(info.value)
    assert "its entries: IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT" in str(info.value)


# ----------------------------------------------------------------------------- weights from a file

def test_weights_from_a_file(tmp_path):
    from safetensors.torch import save_file
    ref = archdsl.create_model("resnet18", classes=10, size=64, seed=1)
    save_file(ref.state_dict(), tmp_path / "w.safetensors")
    torch.save({"epoch": 3, "state_dict": ref.state_dict()}, tmp_path / "checkpoint.pt")   # a training checkpoint
    for name in ("w.safetensors", "checkpoint.pt"):
        model = archdsl.create_model("resnet18", classes=10, size=64, weights=tmp_path / name)
        assert same_outputs(model, ref)
    with pytest.warns(PartialWeightsWarning, match="built for 7 classes, the weights have 10"):
        archdsl.create_model("resnet18", classes=7, weights=str(tmp_path / "w.safetensors"))


def test_weights_that_do_not_fit_are_diagnostics(tmp_path):
    ref = archdsl.create_model("resnet18", classes=10, seed=1)
    torch.save(ref.state_dict(), tmp_path / "r18.pt")
    cases = [("resnet34", {"classes": 10}, "r18.pt", "E133", "missing from the file: `layer1.2.conv1.weight`"),
             ("resnet18", {}, "r18.pt", "E133", "`fc.weight` is [10, 512] in the file, [1000, 512] in `resnet18`"),
             ("resnet18", {}, "absent.pt", "E132", "absent.pt does not exist")]
    (tmp_path / "code.pt").write_bytes(b"just some text, not weights")
    torch.save([1, 2], tmp_path / "list.pt")
    cases += [("resnet18", {}, "code.pt", "E133", "is not a safetensors file or a torch state dict"),
              ("resnet18", {}, "list.pt", "E133", "holds list that is not a state dict")]
    for name, kwargs, weights, code, wording in cases:
        with pytest.raises(archdsl.ArchError) as info:
            archdsl.create_model(name, weights=tmp_path / weights, **kwargs)
        assert info.value.code == code and wording in str(info.value), (weights, str(info.value))
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.create_model("resnet18", weights=3)
    assert info.value.code == "E134"


# ----------------------------------------------------------------------------- the wheel

def test_the_wheel_works_outside_the_checkout(tmp_path):
    """Build the wheel, install it with --no-deps into a fresh virtual environment that sees this
    one's dependencies through a .pth file, and use it from an empty folder."""
    py = sys.executable
    quiet = {"capture_output": True, "text": True, "timeout": 120}
    build = subprocess.run([py, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), str(ROOT)], **quiet)
    assert build.returncode == 0, build.stderr
    wheel, = (tmp_path / "dist").glob("archdsl-*.whl")
    env = tmp_path / "env"
    subprocess.run([py, "-m", "venv", "--without-pip", str(env)], check=True, **quiet)
    python = env / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, **quiet).stdout.strip()
    Path(site, "main-environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run([py, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                              str(wheel)], **quiet)
    assert install.returncode == 0, install.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = lambda *args: subprocess.run(list(args), cwd=empty, env=clean, **quiet)  # noqa: E731
    api = run(str(python), "-c", "import archdsl; print(archdsl.__file__); print(' '.join(archdsl.list_models())); "
                                 "m = archdsl.create_model('resnet18', classes=10, size=32).eval(); "
                                 "import torch; print(tuple(m(torch.zeros(1, 3, 32, 32)).shape))")
    assert api.returncode == 0, api.stderr
    where, names, shape = api.stdout.splitlines()
    assert Path(where).is_relative_to(env) and names.split() == archdsl.list_models() and shape == "(1, 10)"
    check = run(str(env / "bin" / "archdsl"), "check", "resnet50")
    assert check.returncode == 0 and "resnet50: 176 ops, 25,557,032 parameters" in check.stdout, check.stderr
    zoo = run(str(env / "bin" / "archdsl"), "zoo", "--format", "markdown")
    assert zoo.returncode == 0, zoo.stderr
    assert all(f"| `{name}` |" in zoo.stdout for name in archdsl.list_models())
    assert list(empty.iterdir()) == []
