"""Two parts of the idiomatic export (``archdsl.export``), mixins of its exporter: optional groups
and the statements of the spec's ``init`` rules.

An optional group is a group that some instances of a block have and others not, under an ``if``
of the block's body, written as that ``if``.

ResNet's projection shortcut is the example: ``if stride != 1 or in.c != planes * 4 { downsample:
... }`` becomes ``if stride != 1 or in_channels != planes * 4: self.downsample = nn.Sequential(...)``
``else: self.downsample = None`` in ``__init__``, and ``identity = x; if self.downsample is not
None: identity = self.downsample(identity)`` in ``forward``, placed right before the join that
reads it. The condition is used only when, evaluated for every instance, it says exactly which
instances have the group, and only when each instance without it reads, in the group's place,
what the group would have read.
"""
from __future__ import annotations

import collections

from .compile import _str, is_attribute
from .export_text import _TYPED, Unsupported, _evaluate, _pylit, _rel, input_env
from .ir import InitRules


class OptionalGroups:
    """The part of the exporter (a mixin of ``export._Exporter``) that finds and places optional groups."""

    # --- optional groups
    def _optional_groups(self, scope) -> dict:
        """{label: condition} for the groups of a block present in some of its instances only, under
        an ``if`` whose condition, evaluated for every instance, says exactly which have the group."""
        g = self.graph
        name = scope.block
        if name in self.optional:
            return self.optional[name]
        self.optional[name] = {}
        instances = [s for s in g.scopes.values() if s.kind == "block" and s.block == name]
        labels = {}
        for s in instances:
            for c in self.children[s.id]:
                if g.scopes[c].kind == "group":
                    labels.setdefault(_rel(g.scopes[c].name, s.name), []).append((s, g.scopes[c]))
        body = self._definition(name)[1]
        for label, where in labels.items():
            if len(where) == len(instances) or not is_attribute(label):
                continue
            cond = self.text.condition(where[0][1].span)
            if cond is None:
                continue
            have = {s.id for s, _ in where}
            ok = True
            for s in instances:
                ext = self._ext(s.id)
                if len(ext) != 1:
                    ok = False
                    break
                env = {**s.args, **input_env(g.node(ext[0])["shape"])}
                env.update(self._lets(body, env)[0])
                if _evaluate(cond, env) is not (s.id in have):
                    ok = False
                    break
            if ok:
                self.optional[name][label] = cond
        return self.optional[name]

    def _with_optional(self, sid: int, units: list, optional: dict) -> list:
        """A block instance's units with each optional group as an "opt" unit placed right before the
        join that reads it: the group's chain where the instance has it, its input where it has not."""
        g = self.graph
        scope = g.scopes[sid]
        present = {u["path"]: u for u in units if u["kind"] in ("seq", "block") and u["path"] in optional}
        for label, u in present.items():
            if len(self.users[u["outs"][0]]) != 1:
                raise Unsupported(f"the optional group `{label}` feeds {len(self.users[u['outs'][0]])} layers")
        out = []
        for u in units:
            if u["path"] in present:
                continue
            if u["kind"] == "node":
                n = u["nodes"][0]
                for label, cond in optional.items():
                    if label in present and present[label]["outs"][0] in g.args(n):
                        p = present[label]
                        out.append({"kind": "opt", "cond": cond, "path": label, "present": p, "ins": p["ins"],
                                    "outs": [], "nodes": [], "alias": p["outs"][0]})
                    elif label not in present:
                        src = self._absent_input(scope, label, n)
                        if src is not None:
                            out.append({"kind": "opt", "cond": cond, "path": label, "present": None, "ins": [src],
                                        "outs": [], "nodes": [], "alias": src})
            out.append(u)
        return out

    def _absent_input(self, scope, label: str, n: int):
        """In an instance without the optional group: when ``n`` is the join that would read the group
        (as in an instance that has it), the input it reads in its place (what the group would read)."""
        g = self.graph
        ext = set(self._ext(scope.id))
        for s in g.scopes.values():
            if s.kind != "block" or s.block != scope.block:
                continue
            for c in self.children[s.id]:
                if _rel(g.scopes[c].name, s.name) != label:
                    continue
                (o,) = self._outs(c)
                (join,) = self.users[o]
                mine = g.args(n)
                if _rel(g.node(join)["name"], s.name) != _rel(g.node(n)["name"], scope.name) \
                        or len(mine) != len(g.args(join)):
                    return None
                cand = mine[g.args(join).index(o)]
                (src,) = self._ext(c)
                theirs = set(self._ext(s.id))
                if (src in theirs) != (cand in ext):
                    return None
                if src not in theirs and _rel(g.node(src)["name"], s.name) != _rel(g.node(cand)["name"], scope.name):
                    return None
                return cand
        return None


class InitStatements:
    """The part of the exporter (a mixin of ``export._Exporter``) that writes the network's
    ``init`` rules and the fill of its declared tensors, as statements of its ``__init__``."""

    def _init_lines(self) -> list[str]:
        """The spec's ``init`` rules. A rule that applies to every module of its kinds and to no other
        module is a loop over ``self.modules()`` by type, as one writes it by hand; any other rule
        names its modules (``self.get_submodule``), as the flat export does."""
        flat = self.flat.init_lines()   # checks every rule on a stand-in first
        g = self.graph
        if not flat:
            return []
        rules = InitRules(g.init, budget=self.limits.steps)
        groups, kinds = {}, collections.defaultdict(set)
        for n, ctor in self.flat.modules.items():
            d = g.node(n)
            kinds[ctor.split("(")[0]].add(n)
            rule = rules.match(d["op"], d["name"]) if d["params"] else None
            if rule is not None and rule.scheme != "default":
                groups.setdefault(id(rule), (rule, []))[1].append(n)
        attention = "nn.MultiheadAttention" in kinds   # holds an nn.Linear subclass of its own
        lines = []
        for rule, nodes in groups.values():
            types = sorted({self.flat.modules[n].split("(")[0] for n in nodes})
            whole = all(kinds[t] <= set(nodes) for t in types) and all(t in _TYPED for t in types) \
                and not (attention and "nn.Linear" in types)
            kwargs = "".join(f", {k}={_pylit(v)}" for k, v in rule.kwargs.items())
            if whole:
                kind = types[0] if len(types) == 1 else f"({', '.join(types)})"
                lines += ["        for m in self.modules():", f"            if isinstance(m, {kind}):",
                          f"                init_weights(m, {_str(rule.scheme)}{kwargs})"]
            else:
                names = ", ".join(_str(g.node(n)["name"]) for n in nodes) + ("," if len(nodes) == 1 else "")
                lines += [f"        for m in map(self.get_submodule, ({names})):",
                          f"            init_weights(m, {_str(rule.scheme)}{kwargs})"]
        return lines

    def _tensor_init(self) -> list[str]:
        """Each declared tensor filled by its scheme, reached by its name from the network."""
        self.flat.tensor_init_lines()   # checks each scheme on a stand-in
        groups = {}
        for n, d in self.flat.tensors.items():
            a = d["attrs"]
            groups.setdefault((a["kind"], a["scheme"], tuple(a["kwargs"].items())), []).append(d["name"])
        lines = []
        for (kind, scheme, kwargs), names in groups.items():
            get = "get_parameter" if kind == "param" else "get_buffer"
            args = _str(scheme) + "".join(f", {k}={_pylit(v)}" for k, v in kwargs)
            if len(names) == 1:
                lines.append(f"        init_tensor(self.{get}({_str(names[0])}), {args})")
            else:
                lines += [f"        for name in ({', '.join(map(_str, names))}):",
                          f"            init_tensor(self.{get}(name), {args})"]
        return lines
