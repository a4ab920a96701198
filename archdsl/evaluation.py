"""``archdsl eval``: the validation accuracy and loss of trained weights, and what it shares
with ``archdsl train``: checking a spec against the data it runs on.

A composition module (like ``cli``): it checks the spec with the front end, then hands the
IR to the stages, ``compile`` for the model and ``data`` for the loaders. The weights are a
safetensors file of the model's ``state_dict()``, as ``archdsl train`` writes them
(``safetensors.torch.save_file(model.state_dict(), path)``), loaded strictly.

    archdsl eval specs/lenet5.arch --weights runs/lenet5/weights.safetensors
    archdsl eval my.arch --set width=32 --weights best.safetensors --data cifar10:data --format json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import ArchError

SHOWN_KEYS = 5   # keys a weights diagnostic names before "and N more"


class WeightsError(ArchError):
    """A weights file that is missing, unreadable, or does not fit the network."""


# ----------------------------------------------------------------------------- the spec against the data

def network_io(graph, data_name: str = "the data") -> tuple[tuple, tuple]:
    """The one image input's shape and the one output's shape of a network (E104 otherwise:
    several inputs, or several outputs that are not training-only taps)."""
    from .data import DataError
    if len(graph.inputs) != 1:
        raise DataError("E104", f"the network `{graph.network}` has {len(graph.inputs)} inputs "
                        f"({', '.join(graph.inputs)}); training and evaluating on {data_name} need one image input")
    outs = [o for o in graph.outputs if not o.train_only]
    if len(outs) != 1:
        names = ", ".join(f"{o.name} {list(graph.node(o.node)['shape'])}" for o in outs)
        raise DataError("E104", f"the network `{graph.network}` has {len(outs)} outputs ({names}); training and "
                        "evaluating need one output of class scores",
                        hint="keep one `output`; a tap marked training-only is an auxiliary output and may stay")
    (node,) = graph.inputs.values()
    return tuple(graph.node(node)["shape"]), tuple(graph.node(outs[0].node)["shape"])


def check_for_data(spec, data, *, note=None, **check_kwargs):
    """The IR of ``spec`` fitted to ``data`` (a ``--data`` string or DataSpec): when the network
    has a ``classes`` parameter that ``check_kwargs`` does not set and its default differs from
    the data's class count, the spec is checked again with ``classes`` set to it and ``note``
    (a printer, or None) says so. Any other mismatch is E104 (``archdsl.data.match_classes``).
    Returns ``(graph, check_kwargs)``, the keywords as used."""
    from .data import data_classes, input_chw, match_classes, parse_data
    from .frontend import check
    data = parse_data(data)
    n = data_classes(data)
    graph = check(spec, **check_kwargs)
    shape_in, shape_out = network_io(graph, data.name)
    fix = match_classes(graph.params, shape_out, n, "classes" in check_kwargs, data)
    if fix is not None:
        if note is not None:
            note(f"classes = {fix}: the number of classes of {data.name} (the network's default is "
                 f"{graph.params['classes']}; set it with --set classes=N)")
        check_kwargs = {**check_kwargs, "classes": fix}
        graph = check(spec, **check_kwargs)
        shape_in, shape_out = network_io(graph, data.name)
        match_classes(graph.params, shape_out, n, True, data)
    input_chw(shape_in, data)
    return graph, check_kwargs


# ----------------------------------------------------------------------------- weights

def _keys(keys: list) -> str:
    shown = ", ".join(f"`{k}`" for k in keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


def read_weights(path) -> dict:
    """The tensors of a safetensors file, on the CPU (E105: missing, not a file, not safetensors)."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise WeightsError("E105", f"weights file {path} {what}",
                           hint="archdsl train writes RUN_DIR/weights.safetensors (final) and "
                           "RUN_DIR/best.safetensors (best)")
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:   # safetensors' own error for a truncated or foreign file, or an OSError
        first = str(e).strip().split("\n")[0] or type(e).__name__
        raise WeightsError("E105", f"weights file {path} is not a readable safetensors file: {first}",
                           hint="write weights with `safetensors.torch.save_file(model.state_dict(), path)`") from None


def load_weights(model, path, network: str = "the network", tensors: dict | None = None) -> None:
    """Load a safetensors file (or ``tensors`` already read from ``path``) into ``model``,
    strictly: E105 naming the first missing, unexpected and misshapen keys when the file does
    not fit the network."""
    tensors = read_weights(path) if tensors is None else tensors
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        notes = ([f"missing from the file: {_keys(missing)}"] if missing else []) + \
            ([f"in the file but not in the network: {_keys(unexpected)}"] if unexpected else []) + \
            [f"`{k}` is {list(tensors[k].shape)} in the file, {list(expected[k].shape)} in the network"
             for k in wrong[:SHOWN_KEYS]]
        raise WeightsError("E105", f"the weights in {path} do not fit `{network}`", notes=notes,
                           hint="evaluate with the spec, --set values and --input shapes the weights were "
                           "trained with")
    model.load_state_dict(tensors, strict=True)


# ----------------------------------------------------------------------------- evaluating

def evaluate(spec, weights, data="digits", *, batch: int = 256, device=None, workers: int = 0, note=None,
             plugins=None, **check_kwargs) -> dict:
    """Validation accuracy (``val_acc``, a fraction) and mean cross-entropy (``val_loss``) of
    ``spec`` with the weights of a safetensors file on ``data``'s validation split.

    ``check_kwargs`` are :func:`archdsl.check`'s (network parameters such as ``classes=10``,
    ``network``, ``inputs``...); ``classes``, when the network has it and it is not given,
    follows the data (``note`` hears it). Returns a dict with ``val_acc``, ``val_loss``,
    ``images`` (how many were evaluated), ``classes``, ``data``, ``network`` and ``weights``."""
    from .compile import compile_graph
    from .data import make_loaders, parse_data, resolve_device, validate
    from .extern import load_plugins
    load_plugins(plugins)
    data = parse_data(data)
    tensors = read_weights(weights)     # a missing or unreadable file first: it costs nothing
    graph, check_kwargs = check_for_data(spec, data, note=note, **check_kwargs)
    device = resolve_device(device)
    shape_in, _ = network_io(graph, data.name)
    loaders = make_loaders(data, shape_in, batch=batch, workers=workers, device=device, augment=False)
    model = compile_graph(graph, device=device, seed=0, limits=check_kwargs.get("limits"))
    load_weights(model, weights, graph.network, tensors)
    result = validate(model, loaders.val, device)
    return {"val_acc": result["val_acc"], "val_loss": result["val_loss"], "images": result["images"],
            "classes": loaders.classes, "data": str(data), "network": graph.network, "weights": str(weights)}


# ----------------------------------------------------------------------------- the command

def add_parser(subparsers):
    """``archdsl eval SPEC --weights FILE [--data DATA] [--format json|table] [--batch N] [--device D]``."""
    from .cli import _common
    p = subparsers.add_parser("eval", help="validation accuracy and loss of trained weights")
    _common(p)
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="a safetensors file of the model's state dict (archdsl train's weights.safetensors)")
    p.add_argument("--data", default="digits", metavar="DATA",
                   help="digits (default), cifar10:PATH, cifar100:PATH, mnist:PATH or imagefolder:PATH")
    p.add_argument("--format", choices=("table", "json"), default="table", help="the output format (default: table)")
    p.add_argument("--batch", type=int, default=256, help="images per batch (default 256)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA when there is one)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    return p


def run(args) -> int:
    """The ``eval`` command: 0 evaluated, 1 a diagnostic, 2 a usage error."""
    from .cli import _notes, _usage, check_args
    from .data import parse_data, resolve_device
    if args.batch < 1:
        return _usage(f"--batch must be at least 1, got {args.batch}")
    if args.workers < 0:
        return _usage(f"--workers must be 0 or more, got {args.workers}")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        return _usage(str(e))
    result = evaluate(args.file, args.weights, data=args.data, batch=args.batch, device=device,
                      workers=args.workers, note=_notes(), **check_args(args))
    if args.format == "json":
        print(json.dumps(result))
    else:
        print(f"{result['network']} with {result['weights']} on {parse_data(args.data).name} "
              f"({result['images']:,} validation images, {result['classes']} classes)")
        print(f"  val_acc   {result['val_acc']:.4f}")
        print(f"  val_loss  {result['val_loss']:.4f}")
    sys.stdout.flush()
    return 0
