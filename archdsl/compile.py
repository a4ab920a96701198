"""Compile the IR into a ``torch.nn.Module``: generate Python source for one class, run it.

The source is both what runs and what ``archdsl compile -o`` writes (``model.code``).
``__init__`` builds a module for each op that owns one, at the op's IR name (nested
``nn.ModuleDict`` containers, so ``state_dict`` keys are the IR names), then applies
the spec's ``init`` rules. ``forward`` is straight-line code: one local per live tensor,
freed right after its last use, and in-place ops only where that is provably safe.
Train-only outputs (taps) are computed under ``if self.training:``.

Pickling (``torch.save(model)``, ``copy.deepcopy``): a compiled class pickles as its
source text and the instance state; loading re-executes the source (cached).
"""
from __future__ import annotations

import functools
import inspect
import itertools
import keyword
import linecache
import math
import re
from collections import Counter
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ArchError, LimitError, Limits
from .files import write_atomic
from .frontend import check
from .initializers import init_weights
from .ir import ArchGraph, match_init
from .ops import HELPERS, OPS

_PART = re.compile(r"[A-Za-z0-9_]+")
_CTOR = re.compile(r"nn\.[A-Za-z0-9_]+")
_GLOBALS = {"self", "torch", "nn", "F", "collections", "init_weights", "getattr", "setattr", *HELPERS}
_TOP_RESERVED = set(dir(nn.Module())) | {"code", "ir"}
_DICT_RESERVED = set(dir(nn.ModuleDict()))


# ----------------------------------------------------------------------------- public API

def load(path, *, device=None, dtype=None, seed=None, network=None, inputs=None, limits=None, **params) -> nn.Module:
    """Check a spec file and compile it into a module.

    ``params`` set network parameters, ``inputs`` input shapes, ``limits`` resource
    limits; ``seed`` makes the initialisation reproducible without touching the
    global RNG; ``device`` / ``dtype`` move the built model."""
    graph = check(path, network=network, inputs=inputs, limits=limits, **params)
    return compile_graph(graph, device=device, dtype=dtype, seed=seed, limits=limits)


def loads(text: str, **kwargs) -> nn.Module:
    """Compile spec text into a module (the keywords of :func:`load`)."""
    return load(text, **kwargs)


def compile_graph(graph: ArchGraph, *, device=None, dtype=None, seed=None, limits=None) -> nn.Module:
    """Build the module for an IR. The parameter limit is checked before anything is allocated."""
    limits = limits if isinstance(limits, Limits) else Limits.of(limits)
    if graph.total_params > limits.params:
        raise LimitError("E082", f"the network has {graph.total_params:,} parameters, over the limit of "
                         f"{limits.params:,}", hint="raise it with `--limit params=N`")
    cls = _load_class(export_source(graph), class_name(graph.network))
    if seed is None:
        model = cls()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls()
    model.ir = graph
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model


def export_source(graph: ArchGraph) -> str:
    """The standalone PyTorch source of the network: one ``nn.Module`` class, torch imports only."""
    return _Codegen(graph).source()


def run_compile(graph: ArchGraph, out_path) -> None:
    """Write the standalone source to ``out_path`` atomically."""
    write_atomic(out_path, export_source(graph))


def cli(args) -> int:
    """``archdsl compile FILE -o OUT.py``."""
    from .cli import check_args
    graph = check(args.file, **check_args(args))
    run_compile(graph, args.output)
    print(f"wrote {args.output}: class {class_name(graph.network)}, {graph.total_params:,} parameters")
    return 0


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
    """Execute generated source (our own, from a validated IR) with only torch in scope."""
    filename = f"<archdsl:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"torch": torch, "nn": nn, "F": F, "__name__": "archdsl.generated"}
    exec(compile(source, filename, "exec"), namespace)
    cls = namespace[name]
    cls.code = source
    cls.__reduce_ex__ = _reduce_ex
    return cls


def _reduce_ex(self, protocol):
    """Pickle a compiled model as (source, class name) and its state."""
    return _rebuild, (type(self).code, type(self).__name__), self.__dict__


def _rebuild(source: str, name: str) -> nn.Module:
    cls = _load_class(source, name)
    return cls.__new__(cls)


# ----------------------------------------------------------------------------- code generation

def _lit(v) -> str:
    """Source of a constant: ints, finite floats, bools, strings, None and tuples of them only."""
    if isinstance(v, tuple):
        return "(" + ", ".join(map(_lit, v)) + ("," if len(v) == 1 else "") + ")"
    assert v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v)), repr(v)
    return repr(v)


def _attr(obj: str, name: str) -> str:
    return f"{obj}.{name}" if name.isidentifier() and not keyword.iskeyword(name) else f'getattr({obj}, "{name}")'


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

    def __init__(self, graph: ArchGraph):
        self.graph = graph
        self.cls = class_name(graph.network)
        self.modules = {}   # node -> constructor source
        for n in graph.nodes():
            d = graph.node(n)
            spec = OPS[d["op"]].module(d["attrs"], [graph.node(u)["shape"] for u in graph.args(n)], d["shape"])
            if spec is not None:
                ctor, args, kwargs = spec
                assert _CTOR.fullmatch(ctor) and hasattr(nn, ctor[3:]), ctor
                assert all(k.isidentifier() for k in kwargs), kwargs
                self.modules[n] = f"{ctor}({', '.join([*map(_lit, args), *(f'{k}={_lit(v)}' for k, v in kwargs.items())])})"
        self._check_names()

    def _check_names(self):
        """Module paths and input names must be usable as Python names (E032), output names as fields (E015)."""
        g = self.graph
        for n in self.modules:
            for depth, part in enumerate(g.node(n)["name"].split(".")):
                assert _PART.fullmatch(part), g.node(n)["name"]
                if part in (_TOP_RESERVED if depth == 0 else _DICT_RESERVED):
                    self._name_error(n, f"`{g.node(n)['name']}` cannot be a module path: `{part}` is an attribute "
                                     f"of torch.nn.{'Module' if depth == 0 else 'ModuleDict'}", "rename the label")
        for name, n in g.inputs.items():
            if not name.isidentifier() or keyword.iskeyword(name) or name in _GLOBALS or name.startswith(self.cls):
                self._name_error(n, f"input `{name}` cannot be a Python parameter name", "rename the input")
        names = [o.name for o in g.outputs]
        for o in g.outputs:
            if not o.name.isidentifier() or keyword.iskeyword(o.name) or o.name.startswith("_") or names.count(o.name) > 1:
                self._name_error(o.node, f"output `{o.name}` cannot be a field of the output tuple",
                                 "output names must be distinct and not start with `_`", "E015")

    def _name_error(self, n: int, message: str, hint: str, code: str = "E032"):
        d = self.graph.node(n)
        raise self._error(code, message, d["span"], stack=d["stack"], hint=hint)

    # --- the file
    def source(self) -> str:
        g = self.graph
        forward = self.forward()
        text = "\n".join(forward)
        prelude = [HELPERS[h] for h in HELPERS if f"{h}(" in text]
        init = self.init_lines()
        if init:
            prelude.append(inspect.getsource(init_weights))
        ins = ", ".join(f"{k} {list(g.node(n)['shape'])}" for k, n in g.inputs.items())
        outs = ", ".join(f"{o.name} {list(g.node(o.node)['shape'])}" + (" (training only)" if o.train_only else "")
                         for o in g.outputs)
        lines = [f'"""{g.network}: {g.total_params:,} parameters. Generated by archdsl.',
                 "", f"Inputs: {ins}.", f"Outputs: {outs}.", '"""',
                 *(["import collections", ""] if self.tuples() else []), "import torch", "import torch.nn as nn",
                 "import torch.nn.functional as F", "", ""]
        for text in prelude:
            lines += [text.rstrip("\n"), "", ""]
        for cls, fields in self.tuples().items():
            lines.append(f"{cls} = collections.namedtuple({cls!r}, {fields!r})")
        if self.tuples():
            lines += ["", ""]
        lines += [f"class {self.cls}(nn.Module):", f'    """{g.network}: {g.total_params:,} parameters."""', "",
                  "    def __init__(self):", "        super().__init__()", *self.build_lines(), *init, "",
                  f"    def forward(self, {', '.join(g.inputs)}):", *forward]
        return "\n".join(lines) + "\n"

    def tuples(self) -> dict:
        """The namedtuple classes: all outputs, and the eval ones where taps leave several."""
        outs = self.graph.outputs
        evals = [o.name for o in outs if not o.train_only]
        tuples = {f"{self.cls}Outputs": [o.name for o in outs]} if len(outs) > 1 else {}
        if 1 < len(evals) < len(outs):
            tuples[f"{self.cls}EvalOutputs"] = evals
        return tuples

    # --- __init__
    def module_expr(self, n: int) -> str:
        first, *rest = self.graph.node(n)["name"].split(".")
        return _attr("self", first) + "".join(f'["{p}"]' for p in rest)

    def build_lines(self) -> list[str]:
        tree = {}
        for n, ctor in self.modules.items():
            *path, last = self.graph.node(n)["name"].split(".")
            t = tree
            for p in path:
                t = t.setdefault(p, {})
            t[last] = ctor

        def expr(v, indent):
            if isinstance(v, str):
                return v
            inner = [" " * (indent + 4) + f'"{k}": {expr(c, indent + 4)},' for k, c in v.items()]
            return "\n".join(["nn.ModuleDict({", *inner, " " * indent + "})"])

        return [f"        {_attr('self', k)} = {expr(v, 8)}" if k.isidentifier() and not keyword.iskeyword(k)
                else f'        setattr(self, "{k}", {expr(v, 8)})' for k, v in tree.items()]

    def init_lines(self) -> list[str]:
        """One loop per init rule over the modules it applies to (each rule checked first)."""
        g = self.graph
        groups = {}
        for n in self.modules:
            d = g.node(n)
            rule = match_init(g.init, d["op"], d["name"])
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
            lines += ["        for m in (", *(f"            {self.module_expr(n)}," for n in nodes), "        ):",
                      f"            init_weights(m, {rule.scheme!r}{kwargs})"]
        return lines

    def _check_init(self, rule, n: int) -> None:
        """Run the rule on a small stand-in of the module's weight (of the same rank)."""
        d = self.graph.node(n)
        with torch.device("meta"):
            weight = eval(self.modules[n], {"nn": nn}).weight
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
        keep = {o.node for o in g.outputs} | set(g.inputs.values())
        var = {n: k for k, n in g.inputs.items()}
        holders = {k: {n} for k, n in g.inputs.items()}   # name -> live nodes it holds
        free, fresh, pending = [], (f"x{i}" if i else "x" for i in itertools.count()), []
        body = []   # (training only, statement)

        def new_name():
            if free:
                free.sort(key=lambda s: (len(s), s))
                return free.pop(0)
            return next(k for k in fresh if k not in g.inputs and k not in _GLOBALS)

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
            if g.node(n)["op"] == "input":
                continue
            train = n not in always
            if not train:
                flush()
            d, args = g.node(n), g.args(n)
            op = OPS[d["op"]]
            expr = op.forward(d["attrs"], [var[u] for u in args], self.module_expr(n) if n in self.modules else None,
                              bool(args) and overwritable(args[0]))
            released, dead = [], []
            for u in dict.fromkeys(args):
                if last[u] == n and u not in keep:
                    holders[var[u]].discard(u)
                    if not holders[var[u]]:
                        released.append(var[u])
            if expr in (var[u] for u in args):   # the op passes an input through
                name = expr
                if name in released:
                    released.remove(name)
            else:
                name = released.pop(0) if released else new_name()
                body.append((train, f"{name} = {expr}"))
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
            return f"return {var[chosen[0].node]}" if len(chosen) == 1 else \
                f"return {cls}({', '.join(var[o.node] for o in chosen)})"
        if len(evals) == len(outs):
            return [f"        {ret(outs, tuples[0] if tuples else None)}"]
        return ["        if self.training:", f"            {ret(outs, tuples[0])}",
                f"        {ret(evals, tuples[-1])}"]

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
