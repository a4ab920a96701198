"""The model registry: the packaged zoo by name, as ``torch.nn`` modules, with weights.

    archdsl.list_models()                          # ['alexnet', 'alexnet_2012', ..., 'zfnet']
    archdsl.list_models("resnet*")                 # a shell-style pattern picks some
    model = archdsl.create_model("resnet50", classes=10, weights="torchvision")

The names are the zoo specs the package ships (``archdsl/std/zoo/`` in a wheel, the
repository's ``specs/`` in a checkout: ``loader.library_dirs``), the same names
``archdsl check resnet50`` takes. ``weights`` is one of

* ``None``: the spec's own initialisation (``seed`` makes it reproducible);
* ``"torchvision"``: the checkpoint of the torchvision model the spec's ``meta reference``
  names, its first weights entry (``ResNet50_Weights.IMAGENET1K_V1``: the weights the
  papers' numbers and the old ``pretrained=True`` refer to), or ``"torchvision:ENTRY"``
  for another (``"torchvision:IMAGENET1K_V2"``, ``"torchvision:DEFAULT"``). The file is
  the one torchvision itself would cache, ``<torch.hub.get_dir()>/checkpoints/<file>``
  (``$TORCH_HOME/hub/checkpoints/``); archdsl never downloads it: when it is absent the
  diagnostic (E132) names it and says how to fetch it;
* a path: a safetensors file or a ``torch.save``'d state dict (read with
  ``weights_only=True``: no pickled code runs), such as a training loop's checkpoint.

With ``classes`` different from the weights' (ten classes from ImageNet's thousand), every
tensor loads except the classifier's, which keeps its initialisation; the keys left out
are named in a :class:`PartialWeightsWarning`. Anything else that does not fit (a missing
or an extra key, another shape) is E133, naming the keys.
"""
from __future__ import annotations

import fnmatch
import os
import warnings
from pathlib import Path

from .errors import ArchError, did_you_mean
from .loader import library_dirs

TORCHVISION = "torchvision"
SHOWN_KEYS = 6
# torchvision's auxiliary heads: its checkpoints hold them, and its builders drop them when the
# model is built without them (GoogLeNet and Inception v3 with aux_logits=False, DeepLabV3
# without aux_loss); a spec built without them (`aux = false`) leaves them out the same way.
_AUX = ("aux1.", "aux2.", "AuxLogits.", "aux_classifier.")


# torchvision builds these with `transform_input=True` when it loads their weights: the model
# itself turns ImageNet-normalised images into the normalisation the weights were trained with
# (mean 0.5, std 0.5 per channel); the spec, like the model torchvision builds without weights,
# takes its input as it comes.
_TRANSFORM_INPUT = {"googlenet", "inception_v3"}


class PartialWeightsWarning(UserWarning):
    """Weights loaded but for some tensors (the classifier of another number of classes)."""


def list_models(pattern: str | None = None) -> list[str]:
    """The names of the packaged zoo's specs, sorted; ``pattern`` (``"resnet*"``) keeps those
    it matches (shell-style, as :mod:`fnmatch`)."""
    _, zoo = library_dirs()
    try:
        names = sorted(p.stem for p in zoo.glob("*.arch") if p.is_file())
    except OSError:
        names = []
    return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]


def spec_path(name) -> Path:
    """The spec a model name stands for: a zoo name (``"resnet50"``) or a path to an ``.arch``
    file; an unknown bare name is E131."""
    if isinstance(name, os.PathLike) or (isinstance(name, str) and ("/" in name or os.sep in name
                                                                    or name.endswith(".arch"))):
        return Path(name)
    if not isinstance(name, str):
        raise TypeError(f"create_model() takes a model name or a spec path, got {type(name).__name__}")
    _, zoo = library_dirs()
    path = zoo / f"{name}.arch"
    if name and "\0" not in name and path.is_file():
        return path
    known = list_models()
    raise ArchError("E131", f"no model `{name}` in the zoo",
                    hint=did_you_mean(name, known) or "archdsl.list_models() lists the models (`archdsl zoo` "
                                                      "shows them with their sizes); a spec file is named by its path")


def create_model(name, *, weights=None, device=None, dtype=None, seed=None, **check_kwargs):
    """The zoo spec ``name`` (or a spec path) checked with ``check_kwargs`` (network parameters
    such as ``classes=10`` or ``size=160``, and what ``archdsl.check`` takes) and compiled into a
    ``torch.nn.Module``, with ``weights`` (None, ``"torchvision"``, ``"torchvision:ENTRY"`` or
    a path: see the module's documentation) loaded into it."""
    from . import check
    from .compile import compile_graph
    graph = check(spec_path(name), **check_kwargs)
    source = None
    if weights is not None:
        source = _torchvision_file(graph, weights) if _is_torchvision(weights) else _weights_path(weights)
    model = compile_graph(graph, device=device, dtype=dtype, seed=seed, limits=check_kwargs.get("limits"))
    if source is not None:
        path, theirs = source
        tensors = read_state_dict(path)
        if theirs is not None:
            tensors = _torchvision_keys(tensors)
        fit(model, tensors, path, graph.network, theirs if theirs is not None else
            (graph.params.get("classes") if "classes" in check_kwargs else None), from_torchvision=theirs is not None)
    return model


# ----------------------------------------------------------------------------- where the weights are

def _is_torchvision(weights) -> bool:
    return isinstance(weights, str) and (weights == TORCHVISION or weights.startswith(TORCHVISION + ":"))


def _weights_path(weights) -> tuple[Path, None]:
    if not isinstance(weights, (str, os.PathLike)):
        raise ArchError("E134", f"weights must be None, \"torchvision\" or a path, got {type(weights).__name__}",
                        hint='weights="torchvision" loads the reference\'s checkpoint; a path loads a safetensors '
                             "file or a torch state dict")
    path = Path(weights)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ArchError("E132", f"weights file {path} {what}",
                        hint="a path names a safetensors file or a torch.save'd state dict")
    return path, None


def _torchvision_file(graph, weights: str) -> tuple[Path, int | None]:
    """The checkpoint file torchvision names for the spec's reference, and the number of classes
    its weights have; E134 when the spec has no torchvision reference, E132 when the file is absent."""
    from .reference import from_graph
    ref = from_graph(graph)
    if ref is None or ref.library != TORCHVISION:
        said = "names no `meta reference`" if ref is None else f"names {ref.label}, not a torchvision model"
        raise ArchError("E134", f"weights=\"torchvision\": `{graph.network}` {said}",
                        hint="torchvision's weights fit the specs whose `meta reference` is a torchvision model "
                             "(resnet50, vgg16, ...); load other weights from a file: weights=PATH")
    import torchvision.models as tvm
    try:
        enum = tvm.get_model_weights(ref.name)
    except (ValueError, KeyError):
        enum = None
    entries = list(enum) if enum is not None else []
    if not entries:
        raise ArchError("E134", f"torchvision has no weights for {ref.label}",
                        hint="load weights from a file: weights=PATH")
    wanted = weights.partition(":")[2]
    if wanted:
        names = list(enum.__members__)
        if wanted not in names:
            raise ArchError("E134", f"torchvision's {enum.__name__} has no entry `{wanted}`",
                            hint=" ".join(filter(None, [did_you_mean(wanted, names),
                                                        f"its entries: {', '.join(names)}"])))
        entry = enum.__members__[wanted]
    else:
        entry = entries[0]
    import torch.hub
    from urllib.parse import urlparse
    file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(entry.url).path)
    if not file.is_file():
        raise ArchError("E132", f"the weights {enum.__name__}.{entry.name} of {ref.label} are not on this machine: "
                                f"{file} does not exist",
                        notes=[f"torchvision keeps them at {entry.url}", "archdsl reads torchvision's cache "
                               "($TORCH_HOME/hub/checkpoints/) and never downloads"],
                        hint=f"fetch them once with torchvision (`torchvision.models.{ref.name}"
                             f"(weights=\"{entry.name}\")` downloads them there), or save that URL as {file}")
    if ref.name in _TRANSFORM_INPUT:
        warnings.warn(f"{graph.network}: torchvision's {enum.__name__} were trained on images normalised with mean "
                      "0.5 and std 0.5 per channel (torchvision's own model converts ImageNet-normalised input with "
                      "transform_input=True); normalise the input that way for this model", UserWarning, stacklevel=3)
    categories = entry.meta.get("categories")
    return file, len(categories) if categories else None


def _torchvision_keys(tensors: dict) -> dict:
    """torchvision's DenseNet checkpoints predate its module names: ``denselayer1.norm.1.weight``
    is ``denselayer1.norm1.weight`` today (torchvision renames them as it loads them)."""
    import re
    old = re.compile(r"(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))")
    out = {}
    for key, value in tensors.items():
        m = old.fullmatch(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


# ----------------------------------------------------------------------------- reading and fitting

def read_state_dict(path: Path) -> dict:
    """The tensors of a safetensors file or a torch state dict (a training checkpoint's
    ``"state_dict"`` or ``"model"`` entry too), on the CPU; E133 for anything else."""
    import torch
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise ArchError("E133", f"cannot read the weights file {path}: {e.strerror or e}") from None
    try:
        if len(head) == 9 and head[8:9] == b"{":   # safetensors: an 8-byte header length, then JSON
            from safetensors.torch import load_file
            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # a truncated or foreign file, pickled code weights_only refuses, ...
        first = str(e).strip().split("\n")[0] or type(e).__name__
        raise ArchError("E133", f"{path} is not a safetensors file or a torch state dict: {first}",
                        hint="save weights with `torch.save(model.state_dict(), path)` or "
                             "`safetensors.torch.save_file(model.state_dict(), path)`") from None
    if isinstance(data, dict) and not _tensors_only(data):
        inner = next((data[k] for k in ("state_dict", "model") if isinstance(data.get(k), dict)), None)
        data = inner if inner is not None else data
    if not isinstance(data, dict) or not _tensors_only(data):
        raise ArchError("E133", f"{path} holds {type(data).__name__ if not isinstance(data, dict) else 'a dict'} "
                                "that is not a state dict (names to tensors)",
                        hint="save weights with `torch.save(model.state_dict(), path)`")
    return data


def _tensors_only(data: dict) -> bool:
    import torch
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())


def _keys(keys: list) -> str:
    shown = ", ".join(f"`{k}`" for k in keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


def fit(model, tensors: dict, path, network: str, classes: int | None = None, *,
        from_torchvision: bool = False) -> list[str]:
    """Load ``tensors`` into ``model``. When ``classes`` is given, a tensor whose first dimension
    is that number in the file and another in the model (the classifier, built for other classes)
    is left out; so are torchvision's auxiliary heads a spec built without. Returns the keys left
    out (named in a :class:`PartialWeightsWarning`); anything else that does not fit is E133."""
    expected = model.state_dict()
    # a BatchNorm's step counter: older checkpoints (torchvision's) predate it, and it is not a weight
    missing = [k for k in expected if k not in tensors and not k.endswith("num_batches_tracked")]
    extra = [k for k in tensors if k not in expected]
    aux = [k for k in extra if from_torchvision and k.startswith(_AUX)]
    extra = [k for k in extra if k not in aux]
    head, wrong = [], []
    for k in expected:
        if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape):
            a, b = tuple(tensors[k].shape), tuple(expected[k].shape)
            other_classes = classes is not None and a and b and a[1:] == b[1:] and b[0] != a[0] and \
                (a[0] == classes if from_torchvision else b[0] == classes)
            (head if other_classes else wrong).append(k)
    if missing or extra or wrong:
        notes = ([f"missing from the file: {_keys(missing)}"] if missing else []) + \
            ([f"in the file but not in `{network}`: {_keys(extra)}"] if extra else []) + \
            [f"`{k}` is {list(tensors[k].shape)} in the file, {list(expected[k].shape)} in `{network}`"
             for k in wrong[:SHOWN_KEYS]]
        raise ArchError("E133", f"the weights in {path} do not fit `{network}`", notes=notes,
                        hint="build the model with the parameters the weights were trained with "
                             "(a different `classes` leaves the classifier out; other changes do not fit)")
    loaded = {**expected, **{k: v for k, v in tensors.items() if k in expected and k not in head}}
    model.load_state_dict(loaded, strict=True)
    skipped = head + aux
    if skipped:
        why = []
        if head:
            why.append(f"{_keys(head)} keep their initialisation (`{network}` is built for "
                       f"{expected[head[0]].shape[0]} classes, the weights have {tensors[head[0]].shape[0]})")
        if aux:
            why.append(f"{_keys(aux)} belong to auxiliary heads `{network}` is built without")
        used = sum(1 for k in tensors if k in expected and k not in head)
        warnings.warn(f"{network}: loaded {used} of {len(tensors)} tensors from "
                      f"{Path(path).name}; " + "; ".join(why), PartialWeightsWarning, stacklevel=3)
    return skipped
