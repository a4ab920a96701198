"""Compile the IR into a ``torch.nn.Module``: generate Python source for one class, run it.

The source is both what runs and what ``archdsl compile -o`` writes (``model.code``).
``__init__`` builds a module for each op that owns one, at the op's IR name (nested
``nn.ModuleDict`` containers, so ``state_dict`` keys are the IR names; see
:func:`is_attribute` for which names are attributes), then applies the spec's ``init``
rules. ``forward`` is straight-line code: one local per live tensor, freed right after its
last use, and in-place ops only where that is provably safe. Train-only outputs (taps)
are computed under ``if self.training:``. The source stays flat whatever the spec: one
statement per module or container, long joins accumulated ``_CHUNK`` inputs at a time,
long module paths walked in steps, so Python's compiler never meets deep nesting.

Pickling (``torch.save(model)``, ``copy.deepcopy``): a model pickles as plain data, its
spec's loading record and its tensors; unpickling (:func:`rebuild_model`, the one function
to allow-list for ``torch.load(weights_only=True)``) elaborates the spec again from those
texts and runs only code the generator writes, never source found in the pickle.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import json
import keyword
import linecache
import math
import pickle
import re
import sys
import textwrap
from collections import Counter
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import plugins as extern
from .errors import ArchError, LimitError, Limits
from .files import write_atomic
from .initializers import init_tensor, init_weights
from .ir import ArchGraph, InitRules, is_tensor_decl
from .memory import _largest, check_memory
from .ops import HELPERS, OPS
from .ops.tensor import EXPANDED

_PART = re.compile(r"[^.#]+")  # a name part: anything a label may be (archdsl.naming), never `.`
_CTOR = re.compile(r"nn\.[A-Za-z0-9_]+")
_GLOBALS = {"self", "torch", "nn", "F", "collections", "init_weights", "init_tensor", "getattr", "setattr", *HELPERS}
_LOCALS = _GLOBALS | {"mod"}   # names forward's parameters may not take (`mod`: a module reached in steps)
_CHAIN = 100                   # at most this many `[...]` in one expression reaching a module
_CHUNK = 64                    # at most this many inputs of a join in one expression
_RUN = 8                       # this many siblings built alike or more: one loop in __init__
_TOP_RESERVED = set(dir(nn.Module())) | {"code", "ir"}
_DICT_RESERVED = set(dir(nn.ModuleDict()))


# ----------------------------------------------------------------------------- public API

def compile_graph(graph: ArchGraph, *, device=None, dtype=None, seed=None, limits=None) -> nn.Module:
    """Build the module for an IR. The parameter limit (E082) and the memory the weights need
    (E088, :func:`check_memory`) are checked before anything is allocated; an allocation torch
    refuses anyway is E089. ``device="meta"`` builds a model without allocating its tensors."""
    limits = limits if isinstance(limits, Limits) else Limits.of(limits)
    if graph.total_params > limits.params:
        raise LimitError("E082", f"the network has {graph.total_params:,} parameters, over the limit of "
                         f"{limits.params:,}", hint="raise it with `--limit params=N`")
    check_memory(graph, device, dtype, limits)
    cls = _load_class(export_source(graph, limits), class_name(graph.network))
    try:
        model = _build(cls, seed, device)
        if device is not None or dtype is not None:
            model.to(device=device, dtype=dtype)
    except (MemoryError, RuntimeError) as e:
        if not _is_out_of_memory(e):
            raise
        first = str(e).strip().split("\n")[0] or type(e).__name__
        first = re.sub(r"^\[enforce fail at [^\]]*\]\s*(err == 0\.\s*)?", "", first)   # c10's prefix
        d = graph.node(_largest(graph))
        err = LimitError("E089", f"allocating the weights failed: {first}", d["span"], stack=d["stack"],
                         label="the largest layer", hint="free memory, build a smaller network, or load it on "
                         "another device")
        err.sources = graph.sources
        raise err from None
    model.ir = graph
    return model


def _build(cls, seed, device) -> nn.Module:
    """An instance, initialised from ``seed`` without touching the global RNG. On the meta device
    nothing is allocated (the model only describes its tensors); elsewhere it is built on the
    CPU, so that a seed gives the same weights whatever the device."""
    meta = device is not None and torch.device(device).type == "meta"
    with torch.device("meta") if meta else contextlib.nullcontext():
        if seed is None:
            return cls()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls()


def _is_out_of_memory(e: BaseException) -> bool:
    """Is this exception torch (or Python) failing to allocate memory?"""
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(e).lower()
    return "can't allocate" in text or "out of memory" in text or "not enough memory" in text


def export_source(graph: ArchGraph, limits=None) -> str:
    """The standalone PyTorch source of the network: one ``nn.Module`` class, torch imports only,
    but for the modules its plugin ops declare (``Op.imports``), which the header names.
    ``limits``: ``steps`` bounds the matching of init rules to layers."""
    return _Codegen(graph, limits if isinstance(limits, Limits) else Limits.of(limits)).source()


def run_compile(graph: ArchGraph, out_path, limits=None) -> None:
    """Write the standalone source to ``out_path`` atomically."""
    write_atomic(out_path, export_source(graph, limits))


def class_name(network: str) -> str:
    """CamelCase of a network name: resnet50 -> Resnet50, wide_resnet50_2 -> WideResnet50_2."""
    name = ""
    for part in filter(None, network.split("_")):
        name += ("_" if name and part[0].isdigit() else "") + part[0].upper() + part[1:]
    name = name or "Network"
    return name + "Net" if keyword.iskeyword(name) or name in _GLOBALS else name


# ----------------------------------------------------------------------------- running the source

@functools.lru_cache(maxsize=64)
def _load_class(source: str, name: str) -> type:
    """Execute generated source (our own, from a validated IR) with only torch in scope, and the
    modules of loaded plugins its own ``import`` lines name (already imported by
    ``extern.load_plugins``: running them binds the module, it imports nothing new)."""
    filename = f"<archdsl:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"torch": torch, "nn": nn, "F": F, "__name__": "archdsl.generated"}
    exec(compile(source, filename, "exec"), namespace)
    cls = namespace[name]
    cls.code = source
    cls.__reduce_ex__ = _reduce_ex
    return cls


# ----------------------------------------------------------------------------- pickling

PICKLE_VERSION = 1


def _reduce_ex(self, protocol):
    """Pickle a compiled model as what it is: its spec's loading record (``ir.record``: every
    source text, the network, parameters, inputs and limits), the plugins it needs, and its
    tensors and modes, all plain data, for :func:`rebuild_model` to rebuild."""
    record = getattr(getattr(self, "ir", None), "record", None)
    if record is None:
        raise pickle.PicklingError(f"{type(self).__name__} was compiled from an IR without a loading record "
                                   "(graph.record); only models of checked specs can be pickled")
    if record.get("opaque"):
        raise pickle.PicklingError(f"{type(self).__name__} cannot be pickled: parameter "
                                   f"{', '.join(map(str, record['opaque']))} is not plain data")
    return rebuild_model, ({
        "version": PICKLE_VERSION, "record": record, "plugins": list(extern.plugins_of(self.ir)),
        "state": dict(self.state_dict(keep_vars=False)),
        "training": {name: m.training for name, m in self.named_modules()},
        "frozen": [name for name, p in self.named_parameters() if not p.requires_grad],
    },)


def rebuild_model(payload: dict) -> nn.Module:
    """Unpickle a compiled model: elaborate its spec again from the record's in-memory texts (no
    file is read), generate its code, build it on the meta device and take the pickled tensors.
    Nothing the pickle holds is executed: its texts go through the parser and elaborator like
    any spec, and the only code that runs is what the code generator writes. A malformed payload
    is E075. The plugins the payload names must be loaded already (``extern.load_plugins``):
    unpickling refuses (E075) rather than import Python a pickle names."""
    payload = _valid_payload(payload)
    missing = sorted(set(payload["plugins"]) - set(extern.loaded_plugins()))
    if missing:
        names = ", ".join(f"`{p}`" for p in missing)
        raise ArchError("E075", f"the model needs the plugin{'s' if len(missing) > 1 else ''} {names}, not loaded "
                        "in this process", hint=f"load {'them' if len(missing) > 1 else 'it'} first: "
                        f"archdsl.extern.load_plugins({missing!r}) (a pickle never imports Python itself)")
    graph = ArchGraph.from_record(payload["record"])
    limits = Limits.of(payload["record"]["limits"])
    cls = _load_class(export_source(graph, limits), class_name(graph.network))
    model = _build(cls, None, "meta")   # every tensor of every op is in its state_dict, so none stays on meta
    try:
        model.load_state_dict(payload["state"], strict=True, assign=True)
    except RuntimeError as e:   # keys or shapes that are not the spec's
        raise ArchError("E075", f"the pickled tensors do not fit the spec: {str(e).splitlines()[0]}",
                        hint="the pickle was not made from this spec") from None
    for name, m in model.named_modules():
        m.training = payload["training"].get(name, m.training)
    for name, p in model.named_parameters():
        p.requires_grad_(name not in payload["frozen"])
    model.ir = graph
    return model


def _valid_payload(payload) -> dict:
    """The payload's fields, checked: it may come from an untrusted pickle."""
    fields = {"version", "record", "plugins", "state", "training", "frozen"}
    if type(payload) is not dict or set(payload) != fields or payload["version"] != PICKLE_VERSION:
        raise ArchError("E075", "not a pickled archdsl model",
                        hint=f"the payload's fields are {', '.join(sorted(fields))}, version {PICKLE_VERSION}")
    ok = (type(payload["plugins"]) is list and all(type(p) is str for p in payload["plugins"])
          and type(payload["state"]) is dict and all(type(k) is str and isinstance(v, torch.Tensor)
                                                      for k, v in payload["state"].items())
          and type(payload["training"]) is dict and all(type(k) is str and type(v) is bool
                                                         for k, v in payload["training"].items())
          and type(payload["frozen"]) is list and all(type(p) is str for p in payload["frozen"]))
    if not ok:
        raise ArchError("E075", "a pickled archdsl model with malformed fields",
                        hint="plugins and frozen are lists of names, state maps names to tensors, "
                        "training names to booleans")
    return payload


# ----------------------------------------------------------------------------- code generation

def _lit(v) -> str:
    """Source of a constant: ints, finite floats, bools, strings, None and tuples of them only."""
    if isinstance(v, tuple):
        return "(" + ", ".join(map(_lit, v)) + ("," if len(v) == 1 else "") + ")"
    assert v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v)), repr(v)
    return repr(v)


def is_attribute(label: str) -> bool:
    """The naming rule of every stage that turns IR names into Python. A label becomes an attribute
    (``self.conv1``) only when Python takes it as written: an ASCII identifier, not a keyword, not
    starting with ``__`` (inside a class Python rewrites ``self.__w`` into ``self._Net__w``, which
    would merge a layer ``__w`` into a layer ``_Net__w``) and not ``__debug__`` (which cannot be
    assigned). Every other name is registered with ``add_module`` and read back with
    ``getattr(self, "...")`` or a container's indexing, so ``state_dict`` keys are the IR names
    byte for byte."""
    return (label.isascii() and label.isidentifier() and not keyword.iskeyword(label)
            and not label.startswith("__") and label != "__debug__")


def _str(text: str) -> str:
    """A Python string literal for any text (JSON's escapes are Python's)."""
    return json.dumps(text)


def _attr(obj: str, name: str) -> str:
    return f"{obj}.{name}" if is_attribute(name) else f"getattr({obj}, {_str(name)})"


def _is_long_join(d: dict, args: list) -> bool:
    """A sum, product or plain mean with too many inputs for one expression (concat and
    FractalNet's mean take a flat list, which Python compiles at any length)."""
    if d["op"] == "mean":
        return len(args) > _CHUNK and not d["attrs"]["drop_path"]
    return len(args) > _CHUNK and d["op"] in ("add", "mul")


def _long_join(d: dict, args: list[str], acc: str) -> list[str]:
    """A long join as statements that accumulate ``_CHUNK`` terms at a time into ``acc``. One long
    ``a + b + ...`` nests as deep as it has terms and overflows Python's compiler at about 3,000;
    ``acc = acc + c + d ...`` adds in the same order, so the result is the same to the bit."""
    op, a = d["op"], d["attrs"]
    terms = args
    if op == "add":   # each input's own term (drop-path, scale) as the op writes it
        def own(key, i):
            return None if a[key] is None else (a[key][i],)
        terms = [OPS["add"].forward({"scale": own("scale", i), "survival": own("survival", i)}, [x], None, False)
                 for i, x in enumerate(args)]
    sign = " * " if op == "mul" else " + "
    chunks = [sign.join(terms[i:i + _CHUNK]) for i in range(0, len(terms), _CHUNK)]
    lines = [f"{acc} = {chunks[0]}", *(f"{acc} = {acc}{sign}{c}" for c in chunks[1:])]
    return lines + ([f"{acc} = {acc} / {len(args)}"] if op == "mean" else [])


def _ancestors(graph: ArchGraph, nodes) -> set:
    seen, todo = set(), list(nodes)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += graph.args(n)
    return seen


class _Codegen:
    """Source for one graph; see the module docstring for its shape."""

    def __init__(self, graph: ArchGraph, limits: Limits | None = None):
        self.graph = graph
        self.limits = limits or Limits()
        self.cls = class_name(graph.network)
        self.imports = extern.imports_of(graph)   # plugin modules the source imports besides torch
        self.reserved = extern.roots_of(graph)    # the names those imports bind
        self.modules = {}   # node -> constructor source
        self.tensors = {}   # node -> data, for each param and buffer (registered on its scope's container)
        for n in graph.nodes():
            d = graph.node(n)
            if is_tensor_decl(d):
                self.tensors[n] = d
                continue
            spec = OPS[d["op"]].module(d["attrs"], [graph.node(u)["shape"] for u in graph.args(n)], d["shape"])
            if spec is not None:
                ctor, args, kwargs = spec
                assert (_CTOR.fullmatch(ctor) and hasattr(nn, ctor[3:])) or extern.constructor_ok(OPS[d["op"]], ctor), ctor
                assert all(k.isidentifier() for k in kwargs), kwargs
                self.modules[n] = f"{ctor}({', '.join([*map(_lit, args), *(f'{k}={_lit(v)}' for k, v in kwargs.items())])})"
        self._check_names()
        self.params = self._parameters()

    def _check_names(self):
        """Module paths must be registrable in torch (E032), output names usable as fields (E015)."""
        g = self.graph
        for n in [*self.modules, *self.tensors]:
            for depth, part in enumerate(g.node(n)["name"].split(".")):
                assert _PART.fullmatch(part), g.node(n)["name"]
                if part in (_TOP_RESERVED if depth == 0 else _DICT_RESERVED):
                    self._name_error(n, f"`{g.node(n)['name']}` cannot be a module path: `{part}` is an attribute "
                                     f"of torch.nn.{'Module' if depth == 0 else 'ModuleDict'}", "rename the label")
        names = [o.name for o in g.outputs]
        for o in g.outputs:
            if g.output_dict and names.count(o.name) == 1:   # dict keys: any distinct names
                continue
            if not o.name.isidentifier() or keyword.iskeyword(o.name) or o.name.startswith("_") or names.count(o.name) > 1:
                self._name_error(o.node, f"output `{o.name}` cannot be a field of the output tuple",
                                 "output names must be distinct and not start with `_`", "E015")

    def _parameters(self) -> dict:
        """Input name -> forward's parameter. An input keeps its name where that is a plain Python
        name the generated code does not use itself; otherwise (``__debug__``, ``__x``, ``self``,
        ``torch``, ``mod``) the parameter is ``input0``, ``input1``, ... by position, which callers
        passing inputs positionally never see."""
        taken = set(self.graph.inputs)
        out = {}
        for i, name in enumerate(self.graph.inputs):
            if is_attribute(name) and name not in _LOCALS | self.reserved and not name.startswith(self.cls):
                out[name] = name
                continue
            alias = f"input{i}"
            while alias in taken:
                alias += "_"
            taken.add(alias)
            out[name] = alias
        return out

    def _name_error(self, n: int, message: str, hint: str, code: str = "E032"):
        d = self.graph.node(n)
        raise self._error(code, message, d["span"], stack=d["stack"], hint=hint)

    # --- the file
    def source(self) -> str:
        g = self.graph
        forward = self.forward()
        text = "\n".join(forward)
        prelude = [HELPERS[h] for h in HELPERS if f"{h}(" in text]
        tensors, rules = self.tensor_init_lines(), self.init_lines()
        init = tensors + rules
        if init:
            prelude.append(inspect.getsource(init_tensor))
        if rules:
            prelude.append(inspect.getsource(init_weights))
        ins = ", ".join(f"{k} {list(g.node(n)['shape'])}"
                        + ("" if self.params[k] == k else f" (argument {self.params[k]})") for k, n in g.inputs.items())
        outs = ", ".join(f"{o.name} {list(g.node(o.node)['shape'])}" + (" (training only)" if o.train_only else "")
                         for o in g.outputs) + (", as a dict" if g.output_dict else "")
        plugins = extern.plugins_of(g)
        needs = [] if not plugins else ["", *textwrap.wrap(
            f"Needs the archdsl plugin{'s' if len(plugins) > 1 else ''} {', '.join(plugins)}: besides torch, this file "
            f"imports {', '.join(self.imports)}, which must be importable where it runs.", 96)]
        lines = [f'"""{g.network}: {g.total_params:,} parameters. Generated by archdsl.',
                 "", f"Inputs: {ins}.", f"Outputs: {outs}.", *needs, '"""', "",
                 *(["import collections", ""] if self.tuples() else []),
                 *sorted(["import torch", "import torch.nn.functional as F", *(f"import {m}" for m in self.imports)],
                         key=lambda line: line.split()[1].lower()),   # isort's order, as ruff checks it
                 "from torch import nn", "", ""]
        for text in prelude:
            lines += [text.rstrip("\n"), "", ""]
        for cls, fields in self.tuples().items():
            lines.append(f"{cls} = collections.namedtuple({cls!r}, {fields!r})")
        if self.tuples():
            lines += ["", ""]
        lines += [f"class {self.cls}(nn.Module):", f'    """{g.network}: {g.total_params:,} parameters."""', "",
                  "    def __init__(self):", "        super().__init__()", *self.build_lines(), *init, "",
                  f"    def forward(self, {', '.join(self.params.values())}):", *forward]
        return "\n".join(lines) + "\n"

    def tuples(self) -> dict:
        """The namedtuple classes: all outputs, and the eval ones where taps leave several."""
        outs = self.graph.outputs
        if self.graph.output_dict:
            return {}
        evals = [o.name for o in outs if not o.train_only]
        tuples = {f"{self.cls}Outputs": [o.name for o in outs]} if len(outs) > 1 else {}
        if 1 < len(evals) < len(outs):
            tuples[f"{self.cls}EvalOutputs"] = evals
        return tuples

    # --- __init__
    def module_ref(self, n: int) -> tuple[list[str], str]:
        """Statements and an expression reaching node ``n``'s module: ``self.layer1["0"]["conv1"]``.
        A path of more than ``_CHAIN`` parts is walked in steps through the local ``mod``, so no
        expression nests deeper than that however deep the spec's scopes go."""
        first, *rest = self.graph.node(n)["name"].split(".")
        expr, steps = _attr("self", first), []
        for i in range(0, len(rest), _CHAIN):
            if i:
                steps.append(f"mod = {expr}")
                expr = "mod"
            expr += "".join(f"[{_str(p)}]" for p in rest[i:i + _CHAIN])
        return steps, expr

    def tensor_ref(self, n: int) -> str:
        """An expression reading a param or buffer on its container: ``self.class_token``,
        ``self.features["1"]["0"].layer_scale`` (a ModuleDict's indexing reaches modules only); a
        path too long for one expression is looked up by name (``self.get_parameter(...)``)."""
        d = self.graph.node(n)
        *path, last = d["name"].split(".")
        if len(path) > _CHAIN:
            return f"self.{'get_parameter' if d['attrs']['kind'] == 'param' else 'get_buffer'}({_str(d['name'])})"
        expr = "self" if not path else _attr("self", path[0]) + "".join(f"[{_str(p)}]" for p in path[1:])
        return _attr(expr, last)

    def build_lines(self) -> list[str]:
        """One flat statement per module and per container, in the order of the IR (which is
        ``state_dict``'s order): ``self.layer1 = d1 = nn.ModuleDict()``, ``d1["0"] = d2 = ...``.
        The open container of each depth is the local ``d<depth>``, so nothing nests however
        deep the spec's scopes go. ``_RUN`` or more siblings built alike (``conv(1, 1) * 19000``)
        are one loop over their names, which Python compiles in a fraction of the time and memory."""
        tree = {}
        for n in sorted([*self.modules, *self.tensors]):   # a param or buffer: registered on its container
            *path, last = self.graph.node(n)["name"].split(".")
            t = tree
            for p in path:
                t = t.setdefault(p, {})
            t[last] = self.modules[n] if n in self.modules else ("tensor", n)
        lines, stack = [], [("self", list(tree.items()), 0)]
        while stack:
            holder, items, i = stack.pop()
            if i == len(items):
                continue
            key, v = items[i]
            if isinstance(v, dict):   # a container: open it as the local of its depth
                local = f"d{len(stack) + 1}"
                lines += self._attach(holder, key, f"{local} = nn.ModuleDict()", local)
                stack += [(holder, items, i + 1), (local, list(v.items()), 0)]
                continue
            if isinstance(v, tuple):
                lines.append(self._register(holder, key, v[1]))
                stack.append((holder, items, i + 1))
                continue
            j = i + 1
            while j < len(items) and items[j][1] == v:
                j += 1
            if j - i < _RUN:
                lines += self._attach(holder, key, v)
                j = i + 1
            else:
                lines += [f"for name in ({', '.join(_str(k) for k, _ in items[i:j])}):",
                          "    " + (f"self.add_module(name, {v})" if holder == "self" else f"{holder}[name] = {v}")]
            stack.append((holder, items, j))
        return ["        " + line for line in lines]

    def _register(self, holder: str, key: str, n: int) -> str:
        """The statement registering param or buffer ``n`` as ``key`` of ``holder`` (uninitialised:
        :meth:`tensor_init_lines` fills it)."""
        a = self.graph.node(n)["attrs"]
        empty = f"torch.empty({', '.join(map(str, a['shape']))})"
        if a["kind"] == "param":
            if holder == "self" and is_attribute(key):
                return f"self.{key} = nn.Parameter({empty})"
            return f"{holder}.register_parameter({_str(key)}, nn.Parameter({empty}))"
        return f"{holder}.register_buffer({_str(key)}, {empty})"

    def tensor_init_lines(self) -> list[str]:
        """Each param and buffer filled by its own scheme (``init_tensor``; spec ``init`` rules are for
        modules), one loop per scheme and arguments; each checked first on a stand-in of its rank."""
        groups, lines = {}, []
        for n, d in self.tensors.items():
            a = d["attrs"]
            groups.setdefault((a["kind"], a["scheme"], tuple(a["kwargs"].items())), []).append(n)
        for (kind, scheme, kwargs), nodes in groups.items():
            for n in {len(self.tensors[n]["shape"]): n for n in nodes}.values():
                try:
                    init_tensor(torch.empty((2,) * len(self.tensors[n]["shape"])), scheme, **dict(kwargs))
                except Exception as e:  # nn.init's own message says what is wrong
                    d = self.tensors[n]
                    raise self._error("E020", f"init `{scheme}` cannot initialise {kind} `{d['name']}`: {e}",
                                      d["span"], stack=d["stack"], hint="name another scheme or arguments") from None
            args = f"{scheme!r}" + "".join(f", {k}={_lit(v)}" for k, v in kwargs)
            if len(nodes) == 1:
                lines.append(f"        init_tensor({self.tensor_ref(nodes[0])}, {args})")
                continue
            lines += [f"        for t in map(self.{'get_parameter' if kind == 'param' else 'get_buffer'}, (",
                      *(f"            {_str(self.tensors[n]['name'])}," for n in nodes), "        )):",
                      f"            init_tensor(t, {args})"]
        return lines

    @staticmethod
    def _attach(holder: str, key: str, value: str, local: str | None = None) -> list[str]:
        """Statements putting ``value`` (bound to ``local`` too, for a container) at ``key`` of ``holder``."""
        if holder != "self":
            return [f"{holder}[{_str(key)}] = {value}"]
        if is_attribute(key):
            return [f"self.{key} = {value}"]
        if local:
            return [value, f"self.add_module({_str(key)}, {local})"]
        return [f"self.add_module({_str(key)}, {value})"]

    def init_lines(self) -> list[str]:
        """One loop per init rule over the modules it applies to (each rule checked first), reached
        by name (``self.get_submodule``). The rules are compiled once (``ir.InitRules``) and their
        matching is charged to ``steps``."""
        g = self.graph
        rules = InitRules(g.init, budget=self.limits.steps)
        groups = {}
        for n in self.modules:
            d = g.node(n)
            try:
                rule = rules.match(d["op"], d["name"]) if g.init else None
            except ArchError as e:   # the matching ran past `steps`: show the rule's line
                e.sources = g.sources
                raise
            if d["params"] and rule is not None and rule.scheme != "default":
                groups.setdefault(id(rule), (rule, []))[1].append(n)
        lines, checked = [], set()
        for rule, nodes in groups.values():
            for n in nodes:
                kind = (id(rule), re.sub(r"\d+", "0", self.modules[n]))   # the weight's rank does not depend on sizes
                if kind not in checked:
                    self._check_init(rule, n)
                    checked.add(kind)
            kwargs = "".join(f", {k}={_lit(v)}" for k, v in rule.kwargs.items())
            lines += ["        for m in map(self.get_submodule, (",
                      *(f"            {_str(g.node(n)['name'])}," for n in nodes), "        )):",
                      f"            init_weights(m, {rule.scheme!r}{kwargs})"]
        return lines

    def _check_init(self, rule, n: int) -> None:
        """Run the rule on a small stand-in of the module's weight (of the same rank)."""
        d = self.graph.node(n)
        with torch.device("meta"):
            module = eval(self.modules[n], {"nn": nn, **{r: sys.modules[r] for r in self.reserved}})
        weight = getattr(module, "weight", None)
        if weight is None:   # nn.MultiheadAttention: in_proj_weight, out_proj.weight
            weight = next((p for name, p in module.named_parameters() if name.endswith("weight")), None)
        if weight is None:
            return
        try:
            if not all(isinstance(v, (bool, int, float, str)) for v in rule.kwargs.values()):
                raise TypeError("its arguments must be numbers or strings")
            init_weights(SimpleNamespace(weight=torch.empty((2,) * weight.dim())), rule.scheme, **rule.kwargs)
        except Exception as e:  # nn.init's own message says what is wrong
            raise self._error("E020", f"init `{rule.scheme}` cannot initialise `{d['name']}` ({d['op']}): {e}",
                              rule.span, hint="add a later rule for these layers, or narrow the pattern") from None

    def _error(self, code, message, span, **kw) -> ArchError:
        err = ArchError(code, message, span, **kw)
        err.sources = self.graph.sources
        return err

    # --- forward
    def forward(self) -> list[str]:
        g = self.graph
        always = _ancestors(g, [o.node for o in g.outputs if not o.train_only])
        needed = _ancestors(g, [o.node for o in g.outputs])
        order = [n for n in g.nodes() if n in needed]
        uses = Counter(u for n in order for u in g.args(n))
        last = {u: n for n in order for u in g.args(n)}
        keep = {o.node for o in g.outputs} | set(g.inputs.values()) | set(self.tensors)
        var = {n: self.params[k] for k, n in g.inputs.items()}
        var.update((n, self.tensor_ref(n)) for n in self.tensors)   # read in place, never a local
        holders = {self.params[k]: {n} for k, n in g.inputs.items()}   # name -> live nodes it holds
        taken = set(self.params.values()) | _LOCALS | self.reserved
        free, fresh, pending = [], (f"x{i}" if i else "x" for i in itertools.count()), []
        body = []   # (training only, statement)

        def new_name():
            if free:
                free.sort(key=lambda s: (len(s), s))
                return free.pop(0)
            return next(k for k in fresh if k not in taken)

        def flush():
            if pending:
                body.append((False, f"del {', '.join(pending)}"))
                free.extend(pending)
                pending.clear()

        def overwritable(u):
            """An op may overwrite its input in place when that input is a tensor of its own: not a
            graph input or output, used by this op alone, and ``fresh`` (ops.Op.fresh_output)."""
            return u not in keep and uses[u] == 1 and OPS[g.node(u)["op"]].fresh_output(len(g.args(u)))

        for n in order:
            if g.node(n)["op"] == "input" or n in self.tensors:
                continue
            train = n not in always
            if not train:
                flush()
            d, args = g.node(n), g.args(n)
            op = OPS[d["op"]]
            steps, mod = self.module_ref(n) if n in self.modules else ([], None)
            chain = _is_long_join(d, args)
            ins = [var[u] for u in args]
            if d["op"] in EXPANDED and any(u in self.tensors for u in args):   # [1, ...] over the batch
                b = next(var[u] for u in args if u not in self.tensors)
                ins = [f"{v}.expand({b}.shape[0]{', -1' * (len(g.node(u)['shape']) - 1)})" if u in self.tensors
                       else v for u, v in zip(args, ins)]
            expr = None if chain else op.forward(d["attrs"], ins, mod, bool(args) and overwritable(args[0]))
            released, dead = [], []
            for u in dict.fromkeys(args):
                if last[u] == n and u not in keep:
                    holders[var[u]].discard(u)
                    if not holders[var[u]]:
                        released.append(var[u])
            if chain:   # a fresh accumulator: the inputs are read until the last statement
                name = new_name()
                body += [(train, stmt) for stmt in _long_join(d, ins, name)]
            elif expr in (var[u] for u in args):   # the op passes an input through
                name = expr
                if name in released:
                    released.remove(name)
            else:
                name = released.pop(0) if released else new_name()
                body += [(train, step) for step in steps] + [(train, f"{name} = {expr}")]
            holders.setdefault(name, set()).add(n)
            var[n] = name
            for k in released:
                if train and any(var[u] == k and u in always for u in args):
                    pending.append(k)   # an always-live tensor: free it after the training block
                else:
                    dead.append(k)
            if dead:
                body.append((train, f"del {', '.join(dead)}"))
                free.extend(dead)
        flush()
        return self._blocks(body) + self._returns(var)

    def _returns(self, var) -> list[str]:
        outs = self.graph.outputs
        evals = [o for o in outs if not o.train_only]
        tuples = list(self.tuples())

        def ret(chosen, cls):
            if self.graph.output_dict:   # `output {out, aux}`: by name
                return "return {" + ", ".join(f"{_str(o.name)}: {var[o.node]}" for o in chosen) + "}"
            return f"return {var[chosen[0].node]}" if len(chosen) == 1 else \
                f"return {cls}({', '.join(var[o.node] for o in chosen)})"
        if len(evals) == len(outs):
            return [f"        {ret(outs, tuples[0] if tuples else None)}"]
        return ["        if self.training:", f"            {ret(outs, tuples[0] if tuples else None)}",
                f"        {ret(evals, tuples[-1] if tuples else None)}"]

    @staticmethod
    def _blocks(body) -> list[str]:
        """Statements, with each run of training-only ones under ``if self.training:``."""
        lines, inside = [], False
        for train, stmt in body:
            if train and not inside:
                lines.append("        if self.training:")
            inside = train
            lines.append(("            " if train else "        ") + stmt)
        return lines
