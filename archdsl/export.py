"""Export the IR as the PyTorch a person would write: one ``nn.Module`` class per block, one for
the network (``archdsl compile SPEC -o model.py``).

Each block class is named in CamelCase of the block's name (``inception_a`` -> ``InceptionA``)
and takes ``in_channels``, each other dimension of its input its body reads (``in_height`` and
``in_width`` of a ``[C, H, W]`` input, ``in_length`` of a ``[C, L]`` one, ``in_dim{k}`` else:
``export_text.dim_name``), and the block's own parameters with the spec's defaults; the
network class takes the network's parameters. Layers are built from those parameters: an
argument of a layer is written as the expression of the spec (``nn.Conv2d(in_channels, w, 1,
bias=False)``, ``w = planes * base_width // 64 * groups``) when evaluating that expression for
every instance gives the value the elaborator used, and as the value otherwise. A group that
is present in some instances of a block and not in others, under an ``if`` of the block's
body (ResNet's projection shortcut), becomes an ``if`` in ``__init__`` and a check for
``None`` in ``forward``, when the condition, evaluated for each instance, says exactly which
instances have it. A scope that is a plain chain is an ``nn.Sequential``; parameter-free ops
are the registry's functional forms (``F.relu``).

Instances whose generated classes are the same text share one class. A block whose instances
need different classes (recursion, a body that a parameter reshapes in ways the rules above do
not express) gets one class per distinct text, numbered (``Ghost``, ``Ghost_2``), each
with a comment saying it is a specialisation. The module paths, and so the ``state_dict``
keys, are the IR names, as ``archdsl.load`` builds them. The file is laid out as ``ruff format``
writes it, by ``export_text.layout`` (ruff is not needed to export).

:func:`export_module_source` is what the command line writes: this export when it covers the
spec, checked by building both on the meta device and comparing every tensor's name and shape;
otherwise the flat exporter's single class (``compile.export_source``), with a header comment
saying so. The flat exporter stays the compiler's own code.
"""
from __future__ import annotations

import ast
import collections
import inspect
import math
import re
import textwrap

import torch
import torch.nn as nn
from .compile import _ancestors, _attr, _build, _Codegen, _load_class, _str, class_name, export_source, is_attribute
from .errors import ArchError, Limits
from .files import write_atomic
from .initializers import init_tensor, init_weights
from .ir import ArchGraph, is_tensor_decl
from .ops import HELPERS, OPS
from .ops import plugins as extern
from .ops.tensor import EXPANDED
from .export_optional import InitStatements, OptionalGroups
from .export_text import (Unsupported, _DIM, _FAIL, _MODULE_NAMES, _SymFloat, _SymInt, _Marker, _Names, _Source,
                          _call_args, _check_names, _evaluate, _functional, _fwd, _let_lines, _litable, _names, _pylit,
                          _rel, _same, _selfed, _sym, _val, dim_name, input_dims, input_env, layout, with_dim_names)

_CHUNK = 64
# parameter-free ops as the module an nn.Sequential holds: the registry's forward text -> module
_SEQ_FORMS = {"F.relu(X)": "nn.ReLU()", "F.relu6(X)": "nn.ReLU6()", "F.gelu(X)": "nn.GELU()",
              "F.silu(X)": "nn.SiLU()", "torch.sigmoid(X)": "nn.Sigmoid()", "torch.tanh(X)": "nn.Tanh()",
              "torch.flatten(X, 1)": "nn.Flatten()", "X": "nn.Identity()", "F.hardswish(X)": "nn.Hardswish()",
              "F.hardsigmoid(X)": "nn.Hardsigmoid()", "F.mish(X)": "nn.Mish()", "F.elu(X)": "nn.ELU()"}
_DROPOUT = re.compile(r"F\.dropout\(X, ([0-9.e-]+), self\.training\)")


# ----------------------------------------------------------------------------- public API

def export_module_source(graph: ArchGraph, limits=None) -> str:
    """What ``archdsl compile -o`` writes: the idiomatic export when it covers the spec and builds
    the same tensors as the compiler (names and shapes, checked on the meta device for networks of
    up to ``_CHECKED`` nodes), else the flat exporter's source with a header comment saying why."""
    flat = export_source(graph, limits)   # its checks (names E032, outputs E015, init rules E020) first
    try:
        source = export_idiomatic(graph, limits)
        if len(graph) <= _CHECKED:   # building both costs about a millisecond a layer
            _check_same_tensors(graph, source, flat)
        return source
    except ArchError:
        raise
    except Unsupported as e:
        why = str(e)
    except Exception as e:   # an exporter bug must not cost the user the file: the flat export serves
        why = f"it failed ({type(e).__name__}: {e})"
    note = textwrap.wrap(f"This is archdsl's flat export (one class, module containers named by the IR): the "
                         f"idiomatic export does not cover this spec yet: {why}.", _TEXT - 2)
    return layout("".join(f"# {line}\n" for line in note) + flat)


_TEXT = 88   # the width of the docstrings and comments the export writes, ruff's line length
_CHECKED = 2000   # networks of at most this many nodes are built twice on the meta device to check the export


def run_export(graph: ArchGraph, out_path, limits=None) -> str:
    """Write :func:`export_module_source` to ``out_path`` atomically (what ``archdsl compile -o``
    writes); returns the source."""
    source = export_module_source(graph, limits)
    write_atomic(out_path, source)
    return source


def export_idiomatic(graph: ArchGraph, limits=None) -> str:
    """The idiomatic source (see the module docstring); raises :class:`Unsupported` for a spec it
    does not cover."""
    return _Exporter(graph, limits if isinstance(limits, Limits) else Limits.of(limits)).source()


def _check_same_tensors(graph: ArchGraph, source: str, flat: str) -> None:
    """Build the exported network and the compiler's (from its source ``flat``) on the meta device,
    allocating nothing: the same tensors, of the same shapes."""
    namespace = {"__name__": "archdsl.exported"}
    try:
        exec(compile(source, "<archdsl:export>", "exec"), namespace)
        with torch.device("meta"):
            mine = namespace[class_name(graph.network)]()
    except Exception as e:  # a bug of this exporter: the flat export still serves
        raise Unsupported(f"the export did not build ({type(e).__name__}: {e})") from None
    theirs = _build(_load_class(flat, class_name(graph.network)), None, "meta")
    a = {k: tuple(v.shape) for k, v in mine.state_dict().items()}   # (an optional group may come later)
    b = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    if a != b:
        raise Unsupported("the export's tensors differ from the compiler's")


# ----------------------------------------------------------------------------- the exporter

class _Exporter(OptionalGroups, InitStatements):
    def __init__(self, graph: ArchGraph, limits: Limits):
        self.graph, self.limits = graph, limits
        self.text = _Source(graph)
        self.flat = _Codegen(graph, limits)   # names checked (E032, E015), init rules, forward's parameters
        g = graph
        self.children = collections.defaultdict(list)
        for s in g.scopes.values():
            if s.parent is not None:
                self.children[s.parent].append(s.id)
        self.chain = {n: [s.id for s in g.scope_chain(g.node(n)["scope"])] for n in g.nodes()}
        self.members = collections.defaultdict(list)   # scope -> its subtree's nodes, in order
        for n in g.nodes():
            for sid in self.chain[n]:
                self.members[sid].append(n)
        self.users = collections.defaultdict(list)
        for v in g.nodes():
            for u in g.args(v):
                self.users[u].append(v)
        self.outputs = {o.node for o in g.outputs}
        self.always = _ancestors(g, [o.node for o in g.outputs if not o.train_only])
        self.needed = _ancestors(g, [o.node for o in g.outputs])
        self.classes = {}      # class key -> class name
        self.class_src = {}    # class name -> source lines, in the order made (a class before its users)
        self.fill = {}         # class name -> {optional group: {constructor texts}}
        self.taken = {"F", "nn", "torch", "collections", *HELPERS, "init_weights", "init_tensor"}
        self.bases = collections.Counter()
        self.defs = {}
        self.optional = {}     # block name -> {group label: condition tree}
        self._chains = {}
        self._patched = None   # (scope id, optional groups) while a block with optional groups renders
        self.last_out = None   # the channel expression of the output of the class body rendered last

    # --- the file
    def source(self) -> str:
        g = self.graph
        name = class_name(g.network)
        self.taken.add(name)
        # a list parameter's default is a tuple (a list default is shared between calls: ruff's B006)
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in g.params.items()}
        env = dict(params)
        found = self.text.definition(g.network, network=True)
        values, trees = self._lets(found[1] if found else "", env)
        env.update(values)
        init, forward, used, _ = self._body(g.scopes[0], env, network=True)
        init += self._tensor_init() + self._init_lines()
        if not all(_litable(v) for v in g.params.values()):
            raise Unsupported("a network parameter is not a constant")
        _check_names(g.params, g.network)
        sig = ", ".join(f"{k}={_pylit(v)}" for k, v in params.items())
        built = ", ".join(f"{k}={_pylit(v)}" for k, v in g.params.items())
        doc = [f'    """{g.network}: {g.total_params:,} parameters."""']
        if g.params:
            doc = textwrap.wrap(f'"""{g.network}: {g.total_params:,} parameters, built for {built}.', _TEXT,
                                initial_indent="    ", subsequent_indent="    ")
            doc += ["", *textwrap.wrap('A parameter changes the layers whose arguments the spec writes with it; '
                                       'the rest of the network was elaborated for the values above."""', _TEXT,
                                       initial_indent="    ", subsequent_indent="    ")]
        net = [f"class {name}(nn.Module):", *doc, "", f"    def __init__(self{', ' + sig if sig else ''}):",
               "        super().__init__()", *_let_lines(used, trees, "        "), *init, "",
               f"    def forward(self, {', '.join(self.flat.params.values())}):", *forward]
        parts = [self._filled(cls, lines) for cls, lines in self.class_src.items()] + ["\n".join(net)]
        body = "\n\n\n".join(parts)
        prelude = [HELPERS[h] for h in HELPERS if f"{h}(" in body]
        if "init_tensor(" in body or "init_weights(" in body:
            prelude.append(inspect.getsource(init_tensor))
        if "init_weights(" in body:
            prelude.append(inspect.getsource(init_weights))
        code = body + "".join(prelude)
        imports = extern.imports_of(g)
        tuples = self.flat.tuples()
        ins = ", ".join(f"{k} {list(g.node(n)['shape'])}" for k, n in g.inputs.items())
        outs = ", ".join(f"{o.name} {list(g.node(o.node)['shape'])}" + (" (training only)" if o.train_only else "")
                         for o in g.outputs) + (", as a dict" if g.output_dict else "")
        plugins = extern.plugins_of(g)
        needs = [] if not plugins else ["", *textwrap.wrap(
            f"Needs the archdsl plugin{'s' if len(plugins) > 1 else ''} {', '.join(plugins)}: besides torch, this file "
            f"imports {', '.join(imports)}, which must be importable where it runs.", _TEXT)]
        classes = [*self.class_src, name]
        doc = "\n".join([f'"""{g.network}: {g.total_params:,} parameters, exported by archdsl.',
                         "", *textwrap.wrap(f"Classes: {', '.join(classes)}.", _TEXT),
                         *textwrap.wrap(f"Inputs: {ins}.", _TEXT), *textwrap.wrap(f"Outputs: {outs}.", _TEXT), *needs,
                         '"""'])
        straight = {m: f"import {m}" for m in imports}   # isort's order, as ruff checks it
        if re.search(r"\btorch\.(?!nn\b)", code):
            straight["torch"] = "import torch"
        if re.search(r"\bF\.", code):
            straight["torch.nn.functional"] = "import torch.nn.functional as F"
        imports = "\n".join([*(["import collections", ""] if tuples or "collections." in code else []),
                             *(straight[m] for m in sorted(straight, key=str.lower)), "from torch import nn"])
        sections = [doc + "\n\n" + imports, *(text.rstrip("\n") for text in prelude)]
        if tuples:   # one blank line between imports and a statement, as isort writes it
            named = "\n".join(f"{cls} = collections.namedtuple({_str(cls)}, {_pylit(list(fields))})"
                               for cls, fields in tuples.items())
            sections[-1] += ("\n\n\n" if prelude else "\n\n") + named
        return layout("\n\n\n".join([*sections, body]) + "\n")

    def _filled(self, cls: str, lines: list) -> str:
        """A class's source with its optional groups' constructors put in (one text per group, from
        the instances that have it), or the group dropped where no instance has it."""
        text = "\n".join(lines)
        for label, texts in self.fill.get(cls, {}).items():
            mark = f"@@{label}@@"
            if len(texts) > 1:
                raise Unsupported(f"the optional group `{label}` of {cls} is built differently across instances")
            if texts:
                text = text.replace(mark, next(iter(texts)))
            else:   # no instance has it: the `if` goes, the None stays
                text = re.sub(rf"(?m)^( *)if [^\n]*:\n[^\n]*{re.escape(mark)}\n *else:\n *([^\n]*)$", r"\1\2", text)
        return text

    # --- expressions
    def _lets(self, body: str, env: dict) -> tuple[dict, dict]:
        """The values and trees of the body's ``let`` statements that evaluate in ``env``."""
        values, trees = {}, {}
        for name, tree in _Source.lets(body):
            v = _evaluate(tree, {**env, **values})
            if v is not _FAIL and name not in env and name not in values:
                values[name], trees[name] = v, tree
        return values, trees

    def _sym_of(self, tree, env: dict, value, used: set):
        """``value`` as the expression ``tree`` when that evaluates to it in ``env``, else as is."""
        if isinstance(value, tuple) and isinstance(tree, (ast.List, ast.Tuple)) and len(tree.elts) == len(value):
            return tuple(self._sym_of(t, env, v, used) for t, v in zip(tree.elts, value))   # a kernel [h, w]
        if tree is None or not isinstance(value, (int, float)) or isinstance(value, bool) \
                or isinstance(tree, ast.Constant):
            return value
        v = _evaluate(tree, env)
        if v is _FAIL or not _same(v, value):
            return value
        used |= _names(tree)
        return _sym(value, ast.unparse(tree))

    # --- one class body
    def _body(self, scope, env: dict, network: bool = False):
        """(__init__ lines, forward lines, names read, optional constructors) of a class: the network's
        or a block instance's."""
        g = self.graph
        used: set = set()
        cexpr = {}     # node -> the expression of its channel count; (node, "dims") -> of its other dimensions
        if network:
            var = {n: self.flat.params[k] for k, n in g.inputs.items()}
        else:
            members = set(self.members[scope.id])
            ext = sorted({u for n in members for u in g.args(n) if u not in members})
            if len(ext) != 1:
                raise Unsupported(f"block `{scope.block}` takes {len(ext)} inputs")
            var = {ext[0]: "x"}
            cexpr[ext[0]] = "in_channels"
            rank = len(g.node(ext[0])["shape"])
            cexpr[ext[0], "dims"] = tuple(f"{_DIM}{k}" for k in range(1, rank))
        units = self._units(scope.id, scope.name)
        whole = network or any(n in self.always for n in self._outs(scope.id))   # the block runs in eval too
        labels = {u["path"].split(".")[0] for u in units}
        stores: dict = {}   # parameter -> `self.NAME = NAME`, for the ones forward reads
        init, containers, fwd, opt_ctor = [], set(), [], {}
        names = _Names(set(var.values()) | self.taken | {"self"}, "x" if network else "out")
        last = {}
        for i, u in enumerate(units):
            for n in u["ins"]:
                last[n] = i
        keep = set(self.outputs) | set(var)
        holder = {name: n for n, name in var.items()}   # local name -> the node whose value it holds now
        tensors = set()   # the class's own `param` and `buffer` tensors
        fixed = set()   # names an optional group's result takes: never taken again
        for i, u in enumerate(units):
            path = u["path"]
            ref = self._ref(path)
            if u["kind"] == "opt":
                cond, present = u["cond"], u["present"]
                used |= _names(cond)
                if present is not None:
                    opt_ctor[path] = self._unit_ctor(present, env, cexpr, used)
                init += [f"if {ast.unparse(cond)}:", f"    {self._assign('', path, f'@@{path}@@')[0]}", "else:",
                         "    " + self._assign("", path, "None")[0]]
                src = var[u["ins"][0]]
                name = names.fresh("identity")
                fwd += [(False, f"{name} = {src}"), (False, f"if {ref} is not None:"),
                        (False, f"    {name} = {ref}({name})")]
                var[u["alias"]] = name
                holder[name] = u["alias"]
                fixed.add(name)
                continue
            if u["kind"] == "node" and is_tensor_decl(g.node(u["nodes"][0])):
                n = u["nodes"][0]
                init += self._tensor(path, g.node(n)["attrs"], containers)
                *box, key = path.split(".")
                var[n] = _attr(self._ref(".".join(box)) if box else "self", key)
                keep.add(n)
                tensors.add(n)
                continue
            if u["kind"] == "node":
                n = u["nodes"][0]
                d = g.node(n)
                if _is_long(d, g.args(n)):
                    raise Unsupported("a join has more than 64 inputs")
                ctor = self._ctor(n, env, cexpr, used)
                functional = _functional(ctor, d, path)
                if functional is not None:   # forward cannot read __init__'s names: the values, then
                    functional = _functional(self._ctor(n, {}, {}, set()), d, path)
                if functional is not None:
                    ctor = None
                elif ctor is not None:
                    init += self._register(path, ctor, containers)
                if n not in self.needed:
                    continue
                cand: set = set()
                attrs = self._forward_attrs(n, env, cand, labels)
                ins = [var[a] for a in g.args(n)]
                if d["op"] in EXPANDED and any(a in tensors for a in g.args(n)):   # [1, ...] over the batch
                    b = next(var[a] for a in g.args(n) if a not in tensors)
                    ins = [f"{v}.expand({b}.shape[0]{', -1' * (len(g.node(a)['shape']) - 1)})" if a in tensors
                           else v for a, v in zip(g.args(n), ins)]
                expr = OPS[d["op"]].forward(attrs, ins, ref if ctor else None, False) if functional is None \
                    else functional.format(ins[0])
                read = {k for k in cand if re.search(rf"\bself\.{k}\b", expr)}
                used |= read
                stores.update(dict.fromkeys(read))
            else:
                init += self._register(path, self._unit_ctor(u, env, cexpr, used), containers)
                if u["outs"][0] not in self.needed:
                    continue
                expr = f"{ref}({var[u['ins'][0]]})"
            (out,) = u["outs"]
            train = out not in self.always and network
            if not network and (out in self.always) != whole:
                raise Unsupported(f"block `{scope.block}` computes a training-only output")
            if expr in [var[a] for a in u["ins"]]:   # passes its input through
                var[out] = expr
                holder[expr] = out
                continue
            dying = [var[a] for a in dict.fromkeys(u["ins"]) if last.get(a) == i and a not in keep
                     and holder.get(var[a]) == a and var[a] not in fixed]
            name = dying[0] if dying else names.fresh()
            fwd.append((train, f"{name} = {expr}"))
            var[out] = name
            holder[name] = out
            for v in dying[1:]:
                names.release(v)
        lines = _Codegen._blocks(fwd)
        if network:
            lines += self.flat._returns(var)
        else:
            (out,) = self._outs(scope.id)
            lines.append(f"        return {var[out]}")
            self.last_out = cexpr.get(out)
        init = [f"self.{k} = {k}" for k in sorted(stores)] + init
        return ["        " + line for line in init], lines, used, opt_ctor

    def _forward_attrs(self, n: int, env: dict, cand: set, labels: set) -> dict:
        """Node ``n``'s attributes for its forward text: a value the spec writes with the class's
        parameters is ``self.NAME`` there (stored in ``__init__``), where evaluating it gives the value."""
        g = self.graph
        d = g.node(n)
        a = dict(d["attrs"])
        parsed = _call_args(self.text.span_text(d["span"]) or "")
        if parsed is None:
            return a
        names = [p.name for p in OPS[d["op"]].params]
        trees = dict(zip(names, parsed[0]))
        trees.update((k, t) for k, t in parsed[1].items() if k in names)
        bad = labels | _MODULE_NAMES | {"x"}

        def one(tree, value):
            if isinstance(value, tuple) and isinstance(tree, (ast.List, ast.Tuple)) and len(tree.elts) == len(value):
                return tuple(one(t, v) for t, v in zip(tree.elts, value))
            probe: set = set()
            v = self._sym_of(tree, env, value, probe)
            if not isinstance(v, (_SymInt, _SymFloat)) or probe & bad or not all(map(is_attribute, probe)):
                return value
            cand.update(probe)
            return _fwd(value, ast.unparse(_selfed(tree)))

        for k, t in trees.items():
            if k in a and t is not None:
                a[k] = one(t, a[k])
        return a

    def _outs(self, sid: int) -> list:
        members = set(self.members[sid])
        return [n for n in self.members[sid] if n in self.outputs or any(v not in members for v in self.users[n])]

    def _ext(self, sid: int) -> list:
        members = set(self.members[sid])
        return list(dict.fromkeys(u for n in self.members[sid] for u in self.graph.args(n) if u not in members))

    def _units(self, sid: int, prefix: str) -> list:
        """The items of a scope's body in order: its own nodes, the blocks it calls and the chains it
        groups, each with its inputs and outputs; a group that is not a chain is flattened into it."""
        g = self.graph
        items, seen = [], set()
        for n in self.members[sid]:
            ch = self.chain[n]
            k = ch.index(sid)
            if k == len(ch) - 1:
                if g.node(n)["op"] != "input":
                    items.append(("node", n))
            elif ch[k + 1] not in seen:
                seen.add(ch[k + 1])
                items.append(("scope", ch[k + 1]))
        units = []
        for kind, x in items:
            if kind == "node":
                units.append({"kind": "node", "nodes": [x], "ins": list(g.args(x)), "outs": [x],
                              "path": _rel(g.node(x)["name"], prefix)})
                continue
            s = g.scopes[x]
            ins, outs = self._ext(x), self._outs(x)
            unit = {"nodes": self.members[x], "ins": ins, "outs": outs, "path": _rel(s.name, prefix), "scope": x}
            if len(ins) == 1 and len(outs) == 1 and (s.kind == "block" or self._chain_of(x) is not None):
                units.append({**unit, "kind": "block" if s.kind == "block" else "seq"})
            elif s.kind == "block":
                raise Unsupported(f"block `{s.block}` at `{s.name}` has {len(ins)} inputs and {len(outs)} outputs")
            else:
                units += self._units(x, prefix)
        if self._patched and self._patched[0] == sid:
            units = self._with_optional(sid, units, self._patched[1])
        return units

    def _chain_of(self, sid: int):
        """The units of a group that is a plain chain (each reads the one before), or None."""
        if sid in self._chains:
            return self._chains[sid]
        self._chains[sid] = None
        try:
            units = self._units(sid, self.graph.scopes[sid].name)
        except Unsupported:
            return None
        prev, inner = None, {n for u in units for n in u["nodes"]}
        for u in units:
            if "." in u["path"] or len(u["ins"]) != 1 or (prev is not None and u["ins"] != [prev]) \
                    or (u["kind"] == "node" and self._seq_module(u["nodes"][0]) is None):
                return None
            prev = u["outs"][0]
        for u in units[:-1]:
            if any(v not in inner for v in self.users[u["outs"][0]]) or u["outs"][0] in self.outputs:
                return None
        if units:
            self._chains[sid] = units
        return self._chains[sid]

    def _seq_module(self, n: int):
        """How a chain's node sits in an nn.Sequential: "own" (its module), an nn form of a
        parameter-free op, or None."""
        d = self.graph.node(n)
        op = OPS[d["op"]]
        shapes = [self.graph.node(u)["shape"] for u in self.graph.args(n)]
        if op.module(d["attrs"], shapes, d["shape"]) is not None:
            return "own" if op.forward(d["attrs"], ["X"], "M", False) == "M(X)" else None
        text = op.forward(d["attrs"], ["X"], None, False)
        if text in _SEQ_FORMS:
            return _SEQ_FORMS[text]
        m = _DROPOUT.fullmatch(text)
        return f"nn.Dropout({m.group(1)})" if m else None

    def _unit_ctor(self, u, env, cexpr, used) -> str:
        """The constructor of a block instance or of a chain (an nn.Sequential)."""
        g = self.graph
        if u["kind"] == "block":
            return self._block_instance(g.scopes[u["scope"]], env, cexpr, used)
        parts = []
        for v in self._chain_of(u["scope"]):
            if v["kind"] == "node":
                n = v["nodes"][0]
                form = self._seq_module(n)
                if form == "own":
                    text = self._ctor(n, env, cexpr, used)
                else:
                    text = form
                    self._channel(n, g.node(n)["attrs"], self._in_shapes(n, cexpr), cexpr)
            else:
                text = self._unit_ctor(v, env, cexpr, used)
            parts.append((v["path"], text))
        out = u["outs"][0]
        last = self._chain_of(u["scope"])[-1]["outs"][0]
        if last in cexpr:
            cexpr[out] = cexpr[last]
        if all(label == str(i) for i, (label, _) in enumerate(parts)):
            return "nn.Sequential(" + ", ".join(t for _, t in parts) + ")"
        return "nn.Sequential(collections.OrderedDict([" + ", ".join(f"({_str(k)}, {t})" for k, t in parts) + "]))"

    def _ctor(self, n: int, env: dict, cexpr: dict, used: set):
        """The constructor source of node ``n``'s module (None when it has none), its arguments written
        as the spec's expressions where they evaluate to the values used."""
        g = self.graph
        d = g.node(n)
        op = OPS[d["op"]]
        a = dict(d["attrs"])
        parsed = _call_args(self.text.span_text(d["span"]) or "")
        if parsed is not None:
            pos, kw = parsed
            names = [p.name for p in op.params]
            trees = dict(zip(names, pos))
            trees.update((k, t) for k, t in kw.items() if k in names)
            for k, t in trees.items():
                if k in a:
                    a[k] = self._sym_of(t, env, a[k], used)
        xs = self._in_shapes(n, cexpr)
        for u in g.args(n):
            if u in cexpr and g.node(u)["shape"]:
                used |= set(re.findall(r"[A-Za-z_]\w*", cexpr[u]))
        self._channel(n, a, xs, cexpr)
        spec = op.module(a, xs, d["shape"])
        if spec is None:
            return None
        ctor, args, kwargs = spec
        if not (ctor.startswith("nn.") and hasattr(nn, ctor[3:])) and not extern.constructor_ok(op, ctor):
            raise Unsupported(f"op `{d['op']}` names the constructor {ctor}")
        kwargs = self._kwargs(op, a, xs, d["shape"], kwargs)
        return f"{ctor}({', '.join([*map(_val, args), *(f'{k}={_val(v)}' for k, v in kwargs.items())])})"

    @staticmethod
    def _kwargs(op, a, xs, y, kwargs):
        """The module's keyword arguments, with the ones written as expressions kept even where their
        value is torch's default (``stride=stride`` for every instance, whatever its stride)."""
        marks = {p.name: _Marker() for p in op.params
                 if not p.required and isinstance(a.get(p.name), (_SymInt, _SymFloat))}
        if not marks:
            return kwargs
        try:
            spec = op.module({**a, **marks}, xs, y)
        except Exception:
            return kwargs
        if spec is None:
            return kwargs
        by_mark = {id(m): name for name, m in marks.items()}
        out = {}
        for k, v in spec[2].items():
            if id(v) in by_mark:
                out[k] = a[by_mark[id(v)]]
            elif k in kwargs:
                out[k] = kwargs[k]
        out.update((k, v) for k, v in kwargs.items() if k not in out)
        return out

    def _in_shapes(self, n: int, cexpr: dict) -> list:
        """The shapes of node ``n``'s inputs, each dimension the expression known for it (``in_channels``,
        a placeholder of the block's input dimensions) where there is one."""
        xs = []
        for u in self.graph.args(n):
            shape = tuple(self.graph.node(u)["shape"])
            dims = cexpr.get((u, "dims"), ())
            if shape:
                shape = (_sym(shape[0], cexpr[u]) if u in cexpr else shape[0],
                         *(_sym(v, e) if e else v for v, e in zip(shape[1:], [*dims, *[None] * len(shape)])))
            xs.append(shape)
        return xs

    def _channel(self, n, a, xs, cexpr):
        """Record the expression of node ``n``'s channel count where the spec gives one, and of its other
        dimensions where it keeps its first input's shape (a norm, an activation, an attention)."""
        d = self.graph.node(n)
        x = xs[0] if xs else ()
        out = a.get("out")
        if d["op"] == "linear" and isinstance(out, _SymInt) and len(x) == len(d["shape"]) > 1 \
                and out == d["shape"][-1] and tuple(x[:-1]) == tuple(d["shape"][:-1]):
            x = (*x[:-1], out)   # a linear layer sets the last dimension
        if len(x) == len(d["shape"]) > 1 and tuple(x) == tuple(d["shape"]) and d["op"] not in _MOVES \
                and any(isinstance(v, _SymInt) for v in x[1:]):
            cexpr[(n, "dims")] = tuple(v.expr if isinstance(v, _SymInt) else None for v in x[1:])
        c = d["shape"][0] if d["shape"] else None
        out = a.get("out")
        if isinstance(out, _SymInt) and out == c:
            cexpr[n] = out.expr
        elif d["op"] in ("add", "mul", "sub", "mean") and any(isinstance(x[0], _SymInt) and x[0] == c
                                                              for x in xs if x and len(x) == len(d["shape"])):
            cexpr[n] = next(x[0].expr for x in xs if x and isinstance(x[0], _SymInt) and x[0] == c)
        elif d["op"] == "concat" and a.get("dim", 0) == 0 and xs and all(x and isinstance(x[0], _SymInt) for x in xs):
            tree = ast.parse(xs[0][0].expr, mode="eval").body
            for x in xs[1:]:
                tree = ast.BinOp(tree, ast.Add(), ast.parse(x[0].expr, mode="eval").body)
            if len(ast.unparse(tree)) <= 40:   # a long sum reads worse than its value
                cexpr[n] = ast.unparse(tree)
        elif d["op"] == "slice" and a["dim"] == 0 and a["start"] == 0 and a["step"] == 1 \
                and isinstance(a["end"], _SymInt) and a["end"] == c:
            cexpr[n] = a["end"].expr
        elif "out" not in a and len(xs) == 1 and xs[0] and isinstance(xs[0][0], _SymInt) and xs[0][0] == c \
                and (len(d["shape"]) == len(self.graph.node(self.graph.args(n)[0])["shape"])
                     or (d["op"] == "flatten" and len(d["shape"]) == 1 and math.prod(xs[0][1:]) == 1)) \
                and d["op"] not in ("reshape", "permute", "transpose", "matmul", "pixel_shuffle", "pixel_unshuffle"):
            cexpr[n] = xs[0][0].expr

    def _register(self, path: str, ctor: str, containers: set) -> list[str]:
        """Statements putting a module at a path relative to the class: ``self.conv1 = ...``; a path
        through a group that is not a chain goes through nn.ModuleDict containers made on first use."""
        parts = path.split(".")
        lines = []
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix not in containers:
                containers.add(prefix)
                lines += self._assign(".".join(parts[:i - 1]), parts[i - 1], "nn.ModuleDict()")
        if ctor is None:   # the containers of a path only
            if path not in containers:
                containers.add(path)
                lines += self._assign(".".join(parts[:-1]), parts[-1], "nn.ModuleDict()")
            return lines
        return lines + self._assign(".".join(parts[:-1]), parts[-1], ctor)

    def _tensor(self, path: str, a: dict, containers: set) -> list[str]:
        """Statements registering a declared tensor (uninitialised: the network's ``__init__`` fills it)."""
        *holder, key = path.split(".")
        lines = self._register(".".join(holder), None, containers) if holder else []
        obj = self._ref(".".join(holder)) if holder else "self"
        empty = f"torch.empty({', '.join(map(str, a['shape']))})"
        if a["kind"] == "param":
            if obj == "self" and is_attribute(key):
                return lines + [f"self.{key} = nn.Parameter({empty})"]
            return lines + [f"{obj}.register_parameter({_str(key)}, nn.Parameter({empty}))"]
        return lines + [f"{obj}.register_buffer({_str(key)}, {empty})"]

    def _assign(self, holder: str, key: str, value: str) -> list[str]:
        if not holder:
            return [f"self.{key} = {value}" if is_attribute(key) else f"self.add_module({_str(key)}, {value})"]
        return [f"{self._ref(holder)}[{_str(key)}] = {value}"]

    @staticmethod
    def _ref(path: str) -> str:
        first, *rest = path.split(".")
        expr = f"self.{first}" if is_attribute(first) else f"getattr(self, {_str(first)})"
        return expr + "".join(f"[{_str(p)}]" for p in rest)

    # --- block classes
    def _definition(self, name: str):
        """(parameters [(name, default or _FAIL)], body text) of a block, from the spec's text."""
        if name not in self.defs:
            found = self.text.definition(name)
            if found is not None:
                found = ([(p, _FAIL if t is None else _evaluate(t, {})) for p, t in found[0]], found[1])
            self.defs[name] = found
        return self.defs[name]

    def _block_instance(self, scope, penv: dict, pcexpr: dict, pused: set) -> str:
        """``Bottleneck(256, 128, stride=2)``: the instance's class (made on first use) and its arguments."""
        g = self.graph
        name = scope.block
        found = self._definition(name)
        if found is None or not set(scope.args) <= {p for p, _ in found[0]}:
            raise Unsupported(f"the header of block `{name}` was not found in the spec's text")
        params, body_text = found
        baked = [p for p, _ in params if p not in scope.args]   # lists, blocks: not kept as values
        params = [(p, v) for p, v in params if p in scope.args]
        defaults, seen_default = {}, False
        for p, v in params:
            if v is not _FAIL and _litable(v):
                defaults[p], seen_default = v, True
            elif seen_default:
                raise Unsupported(f"a default of block `{name}` is not a constant")
        if not all(_litable(v) for v in scope.args.values()):
            raise Unsupported(f"block `{name}` takes a value that is not a constant")
        _check_names(scope.args, name)
        (inp,) = self._ext(scope.id)
        shape = g.node(inp)["shape"]
        in_c, rank = shape[0], len(shape)
        env = {**scope.args, **input_env(shape)}
        values, trees = self._lets(body_text, env)
        env.update(values)
        optional = self._optional_groups(scope)
        saved, self._patched = self._patched, (scope.id, optional) if optional else None
        try:
            init, forward, used, opt_ctor = self._body(scope, env)
            child_out = self.last_out
        finally:
            self._patched = saved
        lets = _let_lines(used, trees, "        ")
        dims = input_dims("\n".join([*lets, *init, *forward, *opt_ctor.values()]), rank)
        names = [dim_name(k, rank) for k in dims]
        if set(names) & set(scope.args):
            raise Unsupported(f"a parameter of block `{name}` is named as a dimension of its input")
        lets, init, forward = ([with_dim_names(line, rank) for line in part] for part in (lets, init, forward))
        opt_ctor = {label: with_dim_names(text, rank) for label, text in opt_ctor.items()}
        sig = ", ".join(["in_channels", *names,
                         *(f"{p}={_pylit(defaults[p])}" if p in defaults else p for p, _ in params)])
        key = (name, tuple(lets), tuple(init), tuple(forward), sig)
        cls = self.classes.get(key)
        if cls is None:
            base = class_name(name)
            self.bases[base] += 1
            cls = base if self.bases[base] == 1 else f"{base}_{self.bases[base]}"
            while cls in self.taken:
                cls += "_"
            self.taken.add(cls)
            self.classes[key] = cls
            note = [] if self.bases[base] == 1 else textwrap.wrap(
                f"A specialisation of block `{name}`: these instances need a different body from {base}'s (their "
                "structure differs in ways this export does not write as Python conditions or loops).", _TEXT,
                initial_indent="# ", subsequent_indent="# ")
            if baked:
                note += textwrap.wrap(f"Specialised for the value of {', '.join(f'`{p}`' for p in baked)} its "
                                      "instances take (the body is unrolled for it).", _TEXT,
                                      initial_indent="# ", subsequent_indent="# ")
            self.class_src[cls] = [*note, f"class {cls}(nn.Module):", f'    """Block `{name}` of the spec."""', "",
                                   f"    def __init__(self, {sig}):", "        super().__init__()", *lets, *init, "",
                                   "    def forward(self, x):", *forward]
            self.fill[cls] = {label: set() for label in optional}
        for label, text in opt_ctor.items():
            self.fill[cls].setdefault(label, set()).add(text)
        # the arguments, as the caller's expressions where the call's text gives them
        parsed = _call_args(self.text.span_text(scope.span) or "")
        calls = {}
        if parsed is not None:
            calls = dict(zip([p for p, _ in params], parsed[0]))
            calls.update(parsed[1])
        inarg = _sym(in_c, pcexpr[inp]) if inp in pcexpr else in_c
        if isinstance(inarg, _SymInt):
            pused |= set(re.findall(r"[A-Za-z_]\w*", inarg.expr))
        args, given = [_val(inarg), *(_pylit(shape[k]) for k in dims)], {"in_channels": inarg}
        for p, _ in params:
            v = given[p] = self._sym_of(calls.get(p), penv, scope.args[p], pused)
            if p not in defaults:
                args.append(_val(v))
            elif isinstance(v, (_SymInt, _SymFloat)) or not _same(v, defaults[p]):
                args.append(f"{p}={_val(v)}")
        self._out_channels(scope, child_out, given, penv, pcexpr)
        return f"{cls}({', '.join(args)})"

    def _out_channels(self, scope, child_out, given: dict, penv: dict, pcexpr: dict) -> None:
        """The caller's expression of a block instance's output channels: the class's own (``planes * 4``)
        with its parameters replaced by the caller's arguments, where that gives the value."""
        (out,) = self._outs(scope.id)
        if child_out is None or not self.graph.node(out)["shape"]:
            return
        tree = ast.parse(child_out, mode="eval").body
        if not _names(tree) <= set(given):
            return

        class Put(ast.NodeTransformer):
            def visit_Name(self, node):
                v = given.get(node.id)
                if node.id not in given:
                    return node
                text = v.expr if isinstance(v, (_SymInt, _SymFloat)) else _pylit(v)
                return ast.parse(f"({text})", mode="eval").body

        import copy
        new = ast.fix_missing_locations(Put().visit(copy.deepcopy(tree)))
        c = self.graph.node(out)["shape"][0]
        if _same(_evaluate(new, penv), c) and _names(new):
            pcexpr[out] = ast.unparse(new)


# ops whose output may have their input's shape with its dimensions moved (a square transposed)
_MOVES = {"reshape", "permute", "transpose", "matmul", "pixel_shuffle", "pixel_unshuffle", "flatten"}


def _is_long(d: dict, args: list) -> bool:
    return len(args) > _CHUNK and d["op"] in ("add", "mul", "mean")


__all__ = ["export_module_source", "export_idiomatic", "run_export", "Unsupported"]
