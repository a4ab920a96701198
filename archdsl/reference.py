"""The one resolver of ``meta reference``: which library model a spec reproduces, built safely.

A spec names its reference as ``meta reference = "torchvision:resnet50"`` or
``"timm:inception_v4"`` (``"torchvision.models.resnet50"`` is the older spelling of the
first), and may give the constructor arguments as ``meta reference_args = {"aux_loss": true}``.
``zoo --parity`` uses this module, and so does every later command that builds a reference.

Why so strict: the reference used to go to the libraries' own loaders, which read files
(``timm:local-dir:/path``), fetch from hubs (``hf-hub:...``) or call any attribute
(``torchvision.models.<anything>``). Here NAME must be a model the library registers
(``torchvision.models.list_models()``, every namespace: classification, segmentation,
detection, video, optical flow, quantization; ``timm.list_models()``); the arguments are
literals (int, float, bool, string, none) under keys that cannot name weights, files or
URLs; and the resolver itself passes ``weights=None`` (and ``weights_backbone=None`` where the
builder takes it) or ``pretrained=False``, last, so nothing is ever downloaded or read.
Every refusal is a diagnostic at the ``meta`` line: E061 for the name (and a model that cannot
be built without arguments), E062 for the arguments (and what the constructor refuses of them).

Checking the form needs no import (``zoo`` without ``--parity`` never imports torch);
checking the name and building import the library.
"""
from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Callable

from .errors import ArchError, Limits, did_you_mean
from .values import describe, show

# (meta name, code, message, hint) -> the diagnostic to raise, pointing at that meta line
ErrorFactory = Callable[..., ArchError]

LIBRARIES = ("torchvision", "timm")
_NAME = r"[a-z][a-z0-9_]{0,99}"          # every name either library registers has this form
_FORM = re.compile(rf"(torchvision|timm):({_NAME})|torchvision\.models\.({_NAME})")
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
MAX_ARGS = 64
MAX_STRING = 1000
# Keys the resolver sets itself, and keys that make the libraries load weights, read a file or
# fetch a URL (timm.create_model's checkpoint_path, cache_dir, pretrained_cfg...): refused, as
# is any key with one of these words among its underscore-separated parts (`init_weights`, how
# torchvision initialises, is allowed).
_OWN = {"weights", "weights_backbone", "pretrained", "progress"}
_LOADING_WORDS = {"pretrained", "checkpoint", "cache", "path", "url", "hub", "file", "dir", "download",
                  "local", "root", "cfg"}
# torchvision warns unless these say how to initialise (the weights are replaced anyway)
_TV_DEFAULTS = {"googlenet": {"init_weights": True}, "inception_v3": {"init_weights": True}}


def _no_span(name: str, code: str, message: str, hint: str | None = None) -> ArchError:
    return ArchError(code, message, hint=hint)


@dataclass(frozen=True)
class Reference:
    """A checked ``meta reference``: library, registered-looking name, literal arguments."""

    library: str                    # "torchvision" | "timm"
    name: str                       # "resnet50"
    args: dict = field(default_factory=dict)
    text: str = ""                  # as the spec wrote it
    error: ErrorFactory = field(default=_no_span, repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.library}:{self.name}"


def from_meta(meta: dict, error: ErrorFactory = _no_span) -> Reference | None:
    """The spec's reference from its meta values, its form checked (no import); None when the
    spec declares none. ``error`` makes the diagnostics (with the meta line's span)."""
    if meta.get("reference") is None:
        if meta.get("reference_args") is not None:
            raise error("reference_args", "E062", "`meta reference_args` without a `meta reference`",
                        hint='name the model too: `meta reference = "torchvision:resnet50"`')
        return None
    library, name = _parse_name(meta["reference"], error)
    return Reference(library, name, _checked_args(meta.get("reference_args"), error), meta["reference"], error)


def from_graph(graph) -> Reference | None:
    """The reference of an elaborated spec, diagnostics pointing at its ``meta`` lines."""
    def error(name, code, message, hint=None):
        err = ArchError(code, message, graph.meta_span(name), hint=hint)
        err.sources = dict(graph.sources)
        return err
    return from_meta(graph.meta, error)


def _parse_name(value, error: ErrorFactory) -> tuple[str, str]:
    hint = 'write `meta reference = "torchvision:NAME"` or `"timm:NAME"` with a model name the library lists'
    if not isinstance(value, str):
        raise error("reference", "E061", f"meta reference must be a string, got {describe(value)}", hint=hint)
    m = _FORM.fullmatch(value)
    if m:
        return (m.group(1), m.group(2)) if m.group(1) else ("torchvision", m.group(3))
    lib = value.partition(":")[0] if ":" in value else value.partition(".")[0]
    if lib in LIBRARIES:
        message = f"meta reference {show(value)}: NAME must be a model name {lib} registers " \
                  "(lower-case letters, digits and _); files, hubs and URLs are never read"
    else:
        message = f"meta reference {show(value)} is not `torchvision:NAME` or `timm:NAME`"
    raise error("reference", "E061", message, hint=hint)


def _checked_args(args, error: ErrorFactory, what: str = "reference_args") -> dict:
    """``meta reference_args``: a dict of literal values under argument names that cannot load
    anything; absent or ``none`` is no arguments."""
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise error(what, "E062", f"meta reference_args must be a dict, got {describe(args)}",
                    hint='write `meta reference_args = {"num_classes": 10}`')
    if len(args) > MAX_ARGS:
        raise error(what, "E062", f"meta reference_args has {len(args):,} entries, more than {MAX_ARGS}")
    for key, value in args.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise error(what, "E062", f"meta reference_args keys must be argument names, got {describe(key)}",
                        hint='quote the keys: `{"aux_loss": true}`')
        if key.lower() in _OWN or _LOADING_WORDS & set(key.lower().split("_")):
            raise error(what, "E062", f"meta reference_args may not set `{key}`: the reference is always built "
                        "with random weights, and nothing is downloaded or read",
                        hint="weights=None, weights_backbone=None and pretrained=False are passed by archdsl")
        if not (value is None or isinstance(value, (bool, int, str))
                or isinstance(value, float) and math.isfinite(value)) or \
                isinstance(value, str) and len(value) > MAX_STRING:
            raise error(what, "E062", f"meta reference_args `{key}` must be an int, float, bool, string or none, "
                        f"got {describe(value)}")
    return dict(args)


# ----------------------------------------------------------------------------- building

def registered(library: str) -> list[str]:
    """Every model name the library registers (imports it)."""
    if library == "timm":
        import timm
        return timm.list_models()
    import torchvision.models as tvm
    names = set(tvm.list_models())
    for sub in ("segmentation", "detection", "video", "optical_flow", "quantization"):  # in case the
        module = getattr(tvm, sub, None)                                              # default misses one
        if module is not None:
            names.update(tvm.list_models(module=module))
    return sorted(names)


def _builder(ref: Reference) -> tuple[Callable, dict, dict]:
    """(constructor, default arguments, arguments the resolver forces) for a registered name."""
    names = registered(ref.library)
    if ref.name not in names:
        raise ref.error("reference", "E061", f"{ref.library} has no model `{ref.name}`",
                        hint=did_you_mean(ref.name, names) or f"the names are {ref.library}'s list_models()")
    if ref.library == "timm":
        import timm
        return (lambda **kw: timm.create_model(ref.name, **kw)), {}, {"pretrained": False}
    import torchvision.models as tvm
    builder = tvm.get_model_builder(ref.name)
    forced = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        forced["weights_backbone"] = None
    return builder, dict(_TV_DEFAULTS.get(ref.name, {})), forced


class _Unsized(Exception):
    """The model cannot be built on the meta device (it copies data out of a tensor)."""


def _construct(ref: Reference, builder, kwargs: dict, has_args: bool, device=None):
    """Call the constructor; what it refuses becomes a diagnostic at the meta line to blame:
    ``reference_args`` when there are any (E062), else ``reference`` (E061)."""
    import torch
    try:
        if device is None:
            return builder(**kwargs)
        with torch.device(device):
            return builder(**kwargs)
    except Exception as e:   # TypeError for an unknown argument, the library's own checks, ...
        if isinstance(e, NotImplementedError) and str(device) == "meta":
            raise _Unsized() from None
        text = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        if has_args:
            raise ref.error("reference_args", "E062", f"{ref.label} refuses these arguments: {text}") from None
        raise ref.error("reference", "E061", f"{ref.label} cannot be built: {text}") from None


def _kwargs(ref: Reference, extra: dict) -> tuple[Callable, dict]:
    builder, defaults, forced = _builder(ref)
    extra = _checked_args(extra, lambda name, code, message, hint=None: ArchError(code, message, hint=hint))
    return builder, {**defaults, **ref.args, **extra, **forced}   # forced last: never overridden


def size(ref: Reference, **extra) -> tuple[int, int] | None:
    """(parameters, buffer elements) of the reference, counted on the meta device (nothing is
    allocated); None where the model cannot be built there (torchvision's RegNets)."""
    builder, kwargs = _kwargs(ref, extra)
    try:
        model = _construct(ref, builder, kwargs, bool(ref.args or extra), "meta")
    except _Unsized:
        return None
    return sum(p.numel() for p in model.parameters()), sum(b.numel() for b in model.buffers())


def build(ref: Reference, *, device=None, max_params: int | None = None, **extra):
    """The reference model with random weights (never downloaded), on ``device``; ``extra``
    arguments (checked as ``reference_args`` are) override the spec's. Its size is counted on
    the meta device first and refused above ``max_params`` (default: the ``params`` limit); a
    model that cannot be counted there is built only with its library's default arguments, the
    sizes its library chose."""
    builder, kwargs = _kwargs(ref, extra)
    has_args = bool(ref.args or extra)
    if str(device) == "meta":
        try:
            return _construct(ref, builder, kwargs, has_args, "meta")
        except _Unsized:
            raise ref.error("reference", "E061", f"{ref.label} cannot be built on the meta device") from None
    counted = size(ref, **extra)
    limit = Limits().params if max_params is None else max_params
    if counted is None and has_args:
        raise ref.error("reference_args", "E062", f"{ref.label} cannot be sized before it is built, so it takes "
                        "no reference_args", hint="drop `meta reference_args`")
    if counted is not None and counted[0] > limit:
        raise ref.error("reference", "E082", f"{ref.label} has {counted[0]:,} parameters, over the limit of "
                        f"{limit:,}", hint="raise it with `--limit params=N`")
    return _construct(ref, builder, kwargs, has_args, device)
