"""Elaborate: AST -> IR. Expands every block call, loop, repetition and condition,
evaluates expressions with the language's own closed evaluator (``archdsl.evaluate``),
infers every shape as it goes (``in.c`` is known wherever a statement runs) and names
every op (``archdsl.naming`` has the rule).

:class:`Elaborator` is an :class:`~archdsl.evaluate.Evaluator` (one step budget for
statements and expressions alike) with the naming rule mixed in; this module has the
statements, items, calls, joins and the graph they build.
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace

from . import syntax as A
from .errors import AssertionFailed, ElaborationError, Frame, LimitError, Limits, ShapeError, Span, did_you_mean
from .evaluate import BUILTINS, Ctx, Evaluator, _count, _TooDeep, user_ops  # noqa: F401 (BUILTINS: re-exported)
from .initializers import SCHEMES
from .ir import ArchGraph, InitRule, OutputSpec, Scope, is_tensor_decl
from .loader import ModuleScope
from .joins import Joins
from .naming import Naming
from .ops import OPS, BadArgument, ShapeProblem
from .ops.tensor import line_up
from .ops.layout import Variadic
from .values import BlockRef, Domain, OpRef, Tensor, choice_key, describe, escape, show


MAX_DECL_RANK = 8   # dims a param or buffer may have


class RequirementFailed(AssertionFailed):
    """A `require` a design does not meet (E122): outside the design space's constraints."""


def has_domain(v, depth: int = 0) -> bool:
    """Whether a value holds a domain (in its containers; values are bounded by the limits)."""
    if isinstance(v, Domain):
        return True
    if depth < 50 and isinstance(v, (list, tuple)):
        return any(has_domain(i, depth + 1) for i in v)
    if depth < 50 and isinstance(v, dict):
        return any(has_domain(i, depth + 1) for i in v.values())
    return False


def _domain_hint(d: Domain) -> str:
    if d.kind == "choice":
        return "its values: " + show(list(d.choices), 300)[1:-1]
    return f"a value from {show(d.low)} to {show(d.high)}" + (f" in steps of {d.step}" if d.kind == "int" and
                                                             d.step != 1 else "") + ", both included"


class Elaborator(Naming, Joins, Evaluator):
    """Builds the IR of one network: :meth:`network` is the entry."""

    def __init__(self, limits: Limits, sources: dict):
        super().__init__(limits)
        self.sources = sources
        self.gid = 0

    # ------------------------------------------------------------------ entry
    def network(self, module: ModuleScope, net: A.BlockDef, params: dict, inputs: dict) -> ArchGraph:
        self.graph = ArchGraph(net.name, sources=self.sources)
        self.names: dict[str, Span] = {}
        self.taps: dict[str, tuple] = {}  # label -> (Tensor, train_only)
        self.internal: dict[str, int] = {}
        self.next_id = -1
        self.input_overrides = dict(inputs or {})
        self.graph.scopes[0] = Scope(0, "", "network", net.name, None, net.span)
        self.global_value(module, "")
        ctx = Ctx({}, module, in_network=True)
        known = [p.name for p in net.params]
        for key in params:
            if key not in known:
                raise ElaborationError("E012", f"network `{net.name}` has no parameter `{key}`", net.span,
                                       hint=did_you_mean(key, known) or
                                       (f"its parameters are: {', '.join(known)}" if known else "it takes none"))
        self.bind_params(net, params, ctx)
        self.outputs_stmt = None
        x = self.body(net.body, ctx, None)
        for name in self.input_overrides:
            raise ElaborationError("E013", f"network `{net.name}` has no input `{name}`", net.span,
                                   hint=did_you_mean(name, self.graph.inputs) or
                                   f"its inputs are: {', '.join(self.graph.inputs)}")
        if not self.graph.inputs:
            raise ElaborationError("E014", f"network `{net.name}` declares no input", net.span,
                                   hint="add `input image: [3, 224, 224]` as its first statement")
        self._outputs(ctx, x, net)
        return self.graph

    # ------------------------------------------------------------------ design spaces
    def bind_params(self, net: A.BlockDef, params: dict, ctx: Ctx) -> None:
        """Bind the network's parameters in ``ctx``: the overrides, else the defaults (a domain's own)."""
        self.graph.space, self.graph.design, self.graph.design_params = {}, {}, {}
        self.total_macs = 0
        self.defaults = {}
        for p in net.params:
            default = self.param_default(p, ctx, p.name in params)
            self.defaults[p.name] = default
            if p.name in params:
                ctx.env[p.name] = self.pick(p, default, params[p.name]) if has_domain(default) else params[p.name]
            elif p.default is not None:
                ctx.env[p.name] = default if not has_domain(default) else self.pick(p, default, None)
            else:
                raise ElaborationError("E023", f"network parameter `{p.name}` has no default and was not set",
                                       p.span, hint=f"set it: `--set {p.name}=...` or {p.name}=... in Python")
        self.graph.params = dict(ctx.env)

    def param_default(self, p: A.Param, ctx: Ctx, overridden: bool):
        """A network parameter's default, where domains may be declared; None when it has none (or,
        overridden, when it cannot be evaluated: an override never needed it before)."""
        if p.default is None:
            return None
        self.domains = True
        try:
            return self.ev(p.default, ctx, None)
        except ElaborationError:
            if overridden:
                return None
            raise
        finally:
            self.domains = False

    def pick(self, p: A.Param, default, given):
        """The value of a network parameter whose default holds domains: ``given`` (an override,
        checked against them: E121) or the domains' defaults. Records its dimensions in
        ``graph.space`` (name -> plain Domain: block and op choices by name), the values taken in
        ``graph.design`` and the parameter, blocks by name, in ``graph.design_params``."""
        if isinstance(default, Domain):
            dims = [(p.name, default, given if given is not None else default.default)]
        elif isinstance(default, (list, tuple)):
            if any(has_domain(v) for v in default if not isinstance(v, Domain)):
                raise ElaborationError("E120", f"a domain nested inside the default of `{p.name}`", p.span,
                                       hint="a list of domains gives one dimension each: "
                                            "`widths = [choice([16, 32]), choice([32, 64])]`")
            if given is not None and (not isinstance(given, (list, tuple)) or len(given) != len(default)):
                raise ElaborationError("E121", f"`{p.name}` = {show(given)} is outside its design space: it must "
                                       f"be a list of {len(default)} values", p.span,
                                       hint=f"its default is {show(default)}")
            items = list(given) if given is not None else [v.default if isinstance(v, Domain) else v for v in default]
            dims = [(f"{p.name}[{i}]", d, items[i]) for i, d in enumerate(default) if isinstance(d, Domain)]
        else:
            raise ElaborationError("E120", f"a domain nested inside the default of `{p.name}`", p.span,
                                   hint="a network parameter is a domain or a list of domains")
        chosen = {}
        for name, d, v in dims:
            if d.kind == "choice":
                i = d.index(v)
                if i is None and isinstance(v, (OpRef, BlockRef)):  # `--set act=relu` for choice(["relu", "gelu"])
                    i = d.index(choice_key(v))
                ok = i is not None
                v = d.choices[i] if ok else v
            else:
                ok = d.contains(v)
                v = float(v) if ok and d.kind == "float" else v
            if not ok:
                raise ElaborationError("E121", f"`{name}` = {show(v)} is outside its domain {d.text()}", p.span,
                                       hint=_domain_hint(d))
            chosen[name] = v
            self.graph.space[name] = d.plain()
            self.graph.design[name] = choice_key(v)
        if isinstance(default, Domain):
            value = chosen[p.name]
            self.graph.design_params[p.name] = choice_key(value)
            return value
        value = [chosen.get(f"{p.name}[{i}]", v) for i, v in enumerate(items)]
        value = tuple(value) if isinstance(default, tuple) else value
        self.graph.design_params[p.name] = type(value)(choice_key(v) for v in value)
        return value

    def _outputs(self, ctx: Ctx, x: Tensor | None, net: A.BlockDef) -> None:
        g = self.graph
        if self.outputs_stmt is None:
            if x is None:
                raise ElaborationError("E014", "the network produces no tensor", net.span)
            self._not_declared(x, "the network's result", net.span)
            g.outputs.append(OutputSpec("out", x.node))
            g.outputs += [OutputSpec(k, t.node, train) for k, (t, train) in self.taps.items()]
            return
        g.output_dict = self.outputs_stmt.as_dict
        for name, span in self.outputs_stmt.names:
            v = ctx.env.get(name)
            if not isinstance(v, Tensor):
                raise ElaborationError("E015", f"output `{name}` is not a named tensor or tap", span,
                                       hint=did_you_mean(name, [k for k, v in ctx.env.items() if isinstance(v, Tensor)])
                                       or "name a tensor with `name = chain` or a tap with `name: tap ...`")
            self._not_declared(v, f"output `{name}`", span)
            if any(o.name == name for o in g.outputs):
                raise ElaborationError("E015", f"output `{name}` is given twice", span, hint="name each output once")
            train = self.taps.get(name, (None, False))[1]
            g.outputs.append(OutputSpec(name, v.node, train))
        if all(o.train_only for o in g.outputs):
            raise ElaborationError("E015", "every output is training-only", self.outputs_stmt.span)

    # ------------------------------------------------------------------ statements
    def body(self, stmts: list, ctx: Ctx, x):
        for s in stmts:
            try:
                x = self.stmt(s, ctx, x)
            except RecursionError:
                raise _TooDeep(s, ctx) from None
            except _TooDeep as deep:  # on its way out: note what it passes through
                deep.path.append((s, ctx.stack))
                raise
        return x

    def stmt(self, s, ctx: Ctx, x):
        self.charge(1, s.span, ctx)
        kind = type(s)
        if kind is A.Chain:
            saved, ctx.inn = ctx.inn, x
            for item in s.items:
                x = self.item(item, ctx, x)
            ctx.inn = saved
            return x
        if kind is A.Let:
            ctx.env[s.name] = self.ev(s.value, ctx, x)
            return x
        if kind is A.Bind:
            y = self.stmt(s.chain, ctx, x)
            if y is None:
                raise ElaborationError("E016", f"`{s.name}` would name no tensor", s.span)
            ctx.env[s.name] = y
            return y
        if kind is A.For:
            return self.for_loop(s, ctx, x, lambda c, x: self.body(s.body, c, x))
        if kind is A.If:
            arm = self.choose(s, ctx, x)
            return x if arm is None else self.body(arm, ctx, x)
        if kind is A.Assert:
            self.check_assert(s, ctx, x)
            return x
        if kind is A.Require:
            self._network_only(s, ctx, "require")
            self.check_require(s, ctx, x)
            return x
        if kind is A.Input:
            return self.input(s, ctx)
        if kind is A.Output:
            self._network_only(s, ctx, "output")
            if self.outputs_stmt is not None:
                raise ElaborationError("E017", "`output` is given twice", s.span)
            self.outputs_stmt = s
            return x
        if kind is A.Meta:
            self.graph.meta[s.name] = self.ev(s.value, ctx, x)
            self.graph.meta_spans[s.name] = s.span
            return x
        if kind is A.TensorDecl:
            return self.tensor_decl(s, ctx, x)
        if kind is A.Init:
            self.init_rule(s, ctx, x)
            return x
        raise AssertionError(f"unknown statement {kind.__name__}")

    def _network_only(self, s, ctx, what):
        if not ctx.in_network:
            raise ElaborationError("E018", f"`{what}` belongs in a network, not in a block", s.span,
                                   stack=ctx.stack)

    def choose(self, s: A.If, ctx: Ctx, x):
        """The statements of the arm an if/else-if chain takes, or None."""
        while True:
            if self.truth(self.ev(s.cond, ctx, x), s.cond):
                return s.body
            if s.orelse is None:
                return None
            if len(s.orelse) == 1 and isinstance(s.orelse[0], A.If):
                s = s.orelse[0]
                continue
            return s.orelse

    def for_loop(self, s: A.For, ctx: Ctx, x, run):
        seq = self.ev(s.iterable, ctx, x)
        if not isinstance(seq, (list, tuple, range, str, dict)):
            raise ElaborationError("E051", f"cannot loop over {describe(seq)}", s.iterable.span,
                                   stack=ctx.stack)
        n = len(seq)
        if n > self.limits.repeat:
            raise LimitError("E084", f"loop of {n:,} iterations is over the repeat limit of {self.limits.repeat:,}",
                             s.iterable.span, stack=ctx.stack, hint="raise it with `--limit repeat=N`")
        self.gid += 1
        gid, saved = self.gid, ctx.repeat_tag
        for i, value in enumerate(seq):
            self.charge(1, s.span, ctx)
            self.bind_targets(s, value, ctx)
            ctx.repeat_tag = (gid, i, n)
            x = run(ctx, x)
        ctx.repeat_tag = saved
        return x

    def bind_targets(self, s: A.For, value, ctx: Ctx) -> None:
        if len(s.targets) == 1:
            ctx.env[s.targets[0]] = value
            return
        if not isinstance(value, (list, tuple)) or len(value) != len(s.targets):
            raise ElaborationError("E058", f"cannot unpack {show(value)} into {len(s.targets)} names", s.span,
                                   stack=ctx.stack)
        for name, v in zip(s.targets, value):
            ctx.env[name] = v

    def _comparison_notes(self, c, ctx: Ctx, x) -> list[str]:
        """For a failed `assert`/`require` of one comparison: the values of its two sides."""
        if isinstance(c, A.Compare) and len(c.ops) == 1:
            return [f"left: {show(self.ev(c.operands[0], ctx, x))}", f"right: {show(self.ev(c.operands[1], ctx, x))}"]
        return []

    def check_assert(self, s: A.Assert, ctx: Ctx, x) -> None:
        if self.truth(self.ev(s.cond, ctx, x), s.cond):
            return
        notes = self._comparison_notes(s.cond, ctx, x)
        msg = f"assertion failed: {s.text}"
        if s.message is not None:  # the user's text, escaped: it cannot fake lines or drive the terminal
            said = self.ev(s.message, ctx, x)
            msg += f" ({escape(said) if isinstance(said, str) else show(said, 500)})"
        raise AssertionFailed("E060", msg, s.cond.span, stack=ctx.stack, notes=notes)

    def check_require(self, s: A.Require, ctx: Ctx, x) -> None:
        """``require EXPR, "message"``: a constraint a design must meet (E122 when it does not), over
        the parameters and the figures so far (``params``, ``macs``, tensors' shapes)."""
        if self.truth(self.ev(s.cond, ctx, x), s.cond):
            return
        notes = self._comparison_notes(s.cond, ctx, x)
        if self.graph.design:
            notes.append("design: " + ", ".join(f"{k}={show(v)}" for k, v in self.graph.design.items()))
        msg = f"requirement not met: {s.text}"
        if s.message is not None:
            said = self.ev(s.message, ctx, x)
            msg += f" ({escape(said) if isinstance(said, str) else show(said, 500)})"
        raise RequirementFailed("E122", msg, s.cond.span, stack=ctx.stack, notes=notes,
                                hint="the design is outside the space's constraints; `archdsl sample` counts "
                                     "such designs apart from shape errors")

    def input(self, s: A.Input, ctx: Ctx) -> Tensor:
        self._network_only(s, ctx, "input")
        name = self.label_text(s.label, ctx, None)
        value = self.input_overrides.pop(name) if name in self.input_overrides else self.ev(s.shape, ctx, None)
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 4 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise ShapeError("E047", f"input shape must be a list of 1 to 4 positive integers, got {show(value)}",
                             s.shape.span, hint="channels first, batch implicit: `input image: [3, 224, 224]`")
        shape = tuple(value)
        self._check_numel(shape, s.span, ctx)
        node = self.add_node("input", {}, [], name, s.label.span, ctx, shape=shape)
        self.graph.inputs[name] = node.node
        ctx.env[name] = node
        return node

    def _not_declared(self, t: Tensor, what: str, span: Span) -> None:
        """E015 where an output would be a param or buffer (it has no batch dimension)."""
        d = self.graph.table[t.node]
        if is_tensor_decl(d):
            raise ElaborationError("E015", f"{what} is the {d['attrs']['kind']} `{d['name']}`, not an activation",
                                   span, hint="output what a join of it with the input computes: "
                                              "`add { {}; @pos }`, `concat { @token; {} }`")

    def tensor_decl(self, s: A.TensorDecl, ctx: Ctx, x):
        """``param NAME: [shape] = scheme(args)`` or ``buffer ...``: a node of op ``param`` at the
        scope's path (``encoder.pos_embedding``), bound in the scope as a tensor that joins take
        (``@pos_embedding``); ``shape`` is the registered tensor's, zeros when no scheme is named."""
        label = self.label_text(s.label, ctx, x)
        value = self.ev(s.shape, ctx, x)
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_DECL_RANK or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise ShapeError("E094", f"the shape of {s.kind} `{label}` must be a list of 1 to {MAX_DECL_RANK} "
                             f"positive integers, got {show(value)}", s.shape.span, stack=ctx.stack,
                             hint="the registered tensor's exact shape: [1, 1, 768] for a class "
                                  "token, [C, 1, 1] for a per-channel scale")
        shape = tuple(value)
        self._check_numel(shape, s.span, ctx)
        scheme = s.scheme or "zeros"
        if scheme not in SCHEMES or scheme == "default":
            schemes = [k for k in SCHEMES if k != "default"]
            raise ElaborationError("E026", f"unknown init scheme `{scheme}`" if scheme != "default" else
                                   f"a {s.kind} has no `default` initialisation of its own", s.span, stack=ctx.stack,
                                   hint=did_you_mean(scheme, schemes) or f"schemes: {', '.join(schemes)}")
        kwargs = self.scheme_kwargs(scheme, s.args, ctx, x, plain=True)
        if scheme.startswith(("kaiming", "xavier")) and len(shape) < 2:
            raise ElaborationError("E020", f"init `{scheme}` needs a tensor of 2 or more dims (it reads fan-in and "
                                   f"fan-out), and {s.kind} `{label}` is {list(shape)}", s.span, stack=ctx.stack,
                                   hint="use normal(std=...), trunc_normal(std=...) or uniform(a, b)")
        attrs = {"kind": s.kind, "shape": shape, "scheme": scheme, "kwargs": kwargs}
        t = self.add_node("param", attrs, [], ctx.prefix + label, s.span, ctx, shape=shape)
        self.graph.table[t.node]["batched"] = False
        ctx.env[label] = t
        return x

    def scheme_kwargs(self, scheme: str, args: list, ctx: Ctx, x, plain: bool = False) -> dict:
        """An init scheme's keyword arguments, defaults filled in; ``plain``: each a finite number,
        a bool or a string (what generated code can write)."""
        allowed = SCHEMES[scheme]
        kwargs = dict(allowed)
        for i, a in enumerate(args):
            v = self.ev(a.value, ctx, x)
            key = a.name if a.name is not None else (list(allowed)[i] if i < len(allowed) else None)
            if key not in allowed:
                raise ElaborationError("E022", f"init scheme `{scheme}` has no parameter "
                                       f"`{a.name if a.name else f'#{i + 1}'}`", a.span, stack=ctx.stack,
                                       hint=f"its parameters are: {', '.join(allowed) or 'none'}")
            if plain and not isinstance(v, (bool, int, float, str)):
                raise ElaborationError("E020", f"`{key}` of init `{scheme}` must be a number, got {describe(v)}",
                                       a.span, stack=ctx.stack)
            if plain and isinstance(v, float) and not math.isfinite(v):
                raise ElaborationError("E050", f"`{key}` of init `{scheme}` must be finite, got {show(v)}",
                                       a.span, stack=ctx.stack)
            kwargs[key] = v
        return kwargs

    def init_rule(self, s: A.Init, ctx: Ctx, x) -> None:
        if s.scheme not in SCHEMES:
            raise ElaborationError("E026", f"unknown init scheme `{s.scheme}`", s.span,
                                   hint=did_you_mean(s.scheme, SCHEMES) or f"schemes: {', '.join(SCHEMES)}")
        if not s.is_pattern and s.target not in OPS:
            raise ElaborationError("E011", f"unknown op `{s.target}` in init", s.span,
                                   hint=did_you_mean(s.target, user_ops()) or
                                   'to match op names, give a pattern in quotes: init "*.bn3" = zeros')
        kwargs = self.scheme_kwargs(s.scheme, s.args, ctx, x)
        self.graph.init.append(InitRule(s.target, s.is_pattern, s.scheme, kwargs, s.span))

    # ------------------------------------------------------------------ items
    def item(self, it: A.Item, ctx: Ctx, x):
        label = self.label_text(it.label, ctx, ctx.inn) if it.label is not None else None
        if it.tap is not None:
            return self.tap(it, label, ctx, x)
        if it.repeat is None:
            return self.atom(it.atom, ctx, x, label)
        n = self.ev(it.repeat, ctx, ctx.inn)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ElaborationError("E059", f"repetition count must be a non-negative integer, got {show(n)}",
                                   it.repeat.span, stack=ctx.stack)
        if n > self.limits.repeat:
            raise LimitError("E084", f"repetition of {_count(n)} is over the repeat limit of {self.limits.repeat:,}",
                             it.repeat.span, stack=ctx.stack, hint="raise it with `--limit repeat=N`")
        inner = ctx if label is None else self.open_scope(ctx, ctx.prefix + label, "repeat", None, it.span)
        self.gid += 1
        saved = inner.repeat_tag
        for i in range(n):
            inner.repeat_tag = (self.gid, i, n)
            x = self.atom(it.atom, inner, x, None)
        inner.repeat_tag = saved
        return x

    def tap(self, it: A.Item, label: str | None, ctx: Ctx, x):
        if label is None:
            raise ElaborationError("E019", "a tap needs a label: it names the extra output", it.span,
                                   stack=ctx.stack, hint="write `aux1: tap aux_head(classes)`")
        if x is None:
            raise ElaborationError("E016", "nothing flows into this tap", it.span, stack=ctx.stack)
        opts = self.kwargs_of(it.tap, ctx, ctx.inn, "tap", {"train_only": False})
        saved = ctx.tap
        ctx.tap = label
        y = self.atom(it.atom, ctx, x, label) if it.repeat is None else self.item(replace(it, tap=None), ctx, x)
        ctx.tap = saved
        if y is None or y == x:
            raise ElaborationError("E019", "a tap must compute something", it.span, stack=ctx.stack)
        if label in self.taps:
            raise ElaborationError("E030", f"tap `{label}` is declared twice", it.span, stack=ctx.stack)
        self.taps[label] = (y, bool(opts["train_only"]))
        ctx.env[label] = y
        return x

    def kwargs_of(self, args: list, ctx: Ctx, x, what: str, defaults: dict) -> dict:
        """Keyword-only arguments of a construct (``tap(train_only=true)``), checked against ``defaults``."""
        out = dict(defaults)
        for a in args:
            if a.name is None:
                raise ElaborationError("E021", f"`{what}` takes keyword arguments only", a.span, stack=ctx.stack,
                                       hint=f"its parameters are: {', '.join(defaults)}")
            if a.name not in defaults:
                raise ElaborationError("E022", f"`{what}` has no parameter `{a.name}`", a.span, stack=ctx.stack,
                                       hint=did_you_mean(a.name, defaults) or f"its parameters are: {', '.join(defaults)}")
            out[a.name] = self.ev(a.value, ctx, x)
        return out

    def atom(self, a, ctx: Ctx, x, label: str | None):
        self.charge(1, a.span, ctx)
        kind = type(a)
        try:
            if kind is A.Call:
                return self.call(a, ctx, x, label)
            if kind is A.Group:
                if label is None:
                    return self.body(a.body, ctx, x)
                return self.body(a.body, self.open_scope(ctx, ctx.prefix + label, "group", None, a.span), x)
            if kind is A.Join:
                inner = ctx if label is None else self.open_scope(ctx, ctx.prefix + label, "group", None, a.span)
                return self.join(a, inner, x)
        except RecursionError:
            raise _TooDeep(a, ctx) from None
        except _TooDeep as deep:
            deep.path.append((a, ctx.stack))
            raise
        if kind is A.Ref:
            v = self.lookup(a.name, ctx, a.span)
            if not isinstance(v, Tensor):
                raise ElaborationError("E016", f"`@{a.name}` is {describe(v)}, not a tensor", a.span,
                                       stack=ctx.stack)
            return v
        raise AssertionError(kind)

    def call(self, c: A.Call, ctx: Ctx, x, label: str | None):
        target = self.lookup(c.name, ctx, c.name_span, callable_only=True)
        args = [(a.name, self.ev(a.value, ctx, ctx.inn), a.span) for a in (c.args or [])]
        if isinstance(target, OpRef):
            return self.op_call(target, args, c, ctx, x, label)
        if isinstance(target, BlockRef):
            return self.block_call(target, args, c, ctx, x, label)
        if isinstance(target, Tensor):
            raise ElaborationError("E016", f"`{c.name}` is a tensor; continue from it with `@{c.name}`",
                                   c.name_span, stack=ctx.stack)
        shadowed = c.name in OPS or (ctx.module is not None and c.name in ctx.module.blocks)
        raise ElaborationError("E053", f"`{c.name}` is {describe(target)}, not an op or block",
                               c.name_span, stack=ctx.stack,
                               hint=f"a variable named `{c.name}` hides the {'op' if c.name in OPS else 'block'} "
                                    f"of that name; rename the variable" if shadowed else None)

    def op_call(self, ref: OpRef, args, c: A.Call, ctx: Ctx, x, label):
        op = OPS[ref.op]
        if op.arity == 0 or op.arity is None:
            raise ElaborationError("E011", f"`{ref.op}` cannot be called as an op", c.span, stack=ctx.stack,
                                   hint=None if op.arity == 0 else f"`{ref.op}` is a join: write `{ref.op} {{ a; b }}`")
        if x is None:
            raise ElaborationError("E016", f"nothing flows into `{c.name}`", c.span, stack=ctx.stack,
                                   hint="a network starts with `input name: [C, H, W]`")
        pos = list(ref.args) + [v for k, v, _ in args if k is None]
        kw = dict(ref.kwargs)
        for k, v, _ in args:
            if k is not None:
                kw[k] = v
        spans = {}
        for i, (_, _, s) in enumerate((a for a in args if a[0] is None), len(ref.args)):
            spans[i] = s  # by index (BadArgument's `where`) and by name (ShapeProblem's `arg`)
            if i < len(op.params):
                spans[op.params[i].name] = s
        given = [s for k, _, s in args if k is None]
        if isinstance(op, Variadic) and len(given) > 1 and not ref.args:  # `permute(1, 2, 0)`: one argument
            first, last = given[0], given[-1]
            spans[op.params[0].name] = Span(first.file, first.line, first.col, last.end_line, last.end_col)
        spans.update({k: s for k, _, s in args if k is not None})
        try:
            attrs = op.bind(pos, kw)
        except BadArgument as e:
            raise ElaborationError(e.code, e.message, spans.get(e.where, c.span), stack=ctx.stack,
                                   hint=e.hint) from None
        name = self.next_name(ctx, label)
        return self.add_node(op.name, attrs, [x], name, c.span, ctx, arg_spans=spans)

    def block_call(self, ref: BlockRef, args, c: A.Call, ctx: Ctx, x, label):
        block, module = ref.block, ref.module
        self.charge(4, c.span, ctx)  # a scope, a frame, the arguments bound: a few steps' work
        if ctx.depth + 1 > self.limits.depth:
            raise LimitError("E085", f"block calls nested deeper than {self.limits.depth} (in `{block.name}`)",
                             c.span, stack=ctx.stack[-6:], hint="a recursive block needs a base case; "
                             "raise the limit with `--limit depth=N` if this is intended")
        frame = Frame(block.name, c.span)
        spread = block.inline and label is None
        if spread:  # an inline block: own variables and a frame, but its items are named in the caller's scope
            inner = Ctx({}, module, ctx.prefix, ctx.counter, ctx.scope, ctx.stack + (frame,), ctx.depth + 1,
                        ctx.tap, ctx.repeat_tag)
        else:
            inner = self.open_scope(ctx, self.next_name(ctx, label), "block", block.name, c.span,
                                    module=module, frame=frame)
        pos = list(ref.args) + [(v, s) for k, v, s in args if k is None]
        kw = dict(ref.kwargs)
        kw_spans = {}
        for k, v, s in args:
            if k is not None:
                if k in kw and k not in dict(ref.kwargs):
                    raise ElaborationError("E021", f"`{k}` given twice", s, stack=ctx.stack)
                kw[k] = v
                kw_spans[k] = s
        pos = [p if isinstance(p, tuple) else (p, c.span) for p in pos]
        names = [p.name for p in block.params]
        if len(pos) > len(names):
            raise ElaborationError("E021", f"block `{block.name}` takes {len(names)} argument"
                                   f"{'s' if len(names) != 1 else ''}, got {len(pos)}",
                                   pos[len(names)][1], stack=ctx.stack)
        for k in kw:
            if k not in names:
                raise ElaborationError("E022", f"block `{block.name}` has no parameter `{k}`",
                                       kw_spans.get(k, c.span), stack=ctx.stack,
                                       hint=did_you_mean(k, names) or f"its parameters are: {', '.join(names)}")
        for i, p in enumerate(block.params):
            if i < len(pos):
                if p.name in kw:
                    raise ElaborationError("E021", f"`{p.name}` given twice", kw_spans.get(p.name, c.span),
                                           stack=ctx.stack)
                inner.env[p.name] = pos[i][0]
            elif p.name in kw:
                inner.env[p.name] = kw[p.name]
            elif p.default is not None:
                inner.env[p.name] = self.ev(p.default, inner, x)
            else:
                raise ElaborationError("E023", f"block `{block.name}` needs `{p.name}`", c.span, stack=ctx.stack,
                                       hint=f"signature: {block.name}({', '.join(names)})")
        if not spread:
            self.graph.scopes[inner.scope].args = {k: v for k, v in inner.env.items()
                                                   if isinstance(v, (int, float, str, bool))}
        if x is None:
            raise ElaborationError("E016", f"nothing flows into block `{block.name}`", c.span, stack=ctx.stack)
        y = self.body(block.body, inner, x)
        return x if y is None else y

    # ------------------------------------------------------------------ nodes
    def add_node(self, op_name: str, attrs: dict, inputs: list, name: str, span: Span, ctx: Ctx, *,
                 shape: tuple | None = None, arg_spans: dict | None = None, notes=None) -> Tensor:
        op = OPS[op_name]
        g = self.graph
        self.charge(4 + len(inputs) + len(name) // 8, span, ctx)
        shapes = [t.shape for t in inputs]
        if shape is None:
            try:
                decls = [g.table[t.node] if is_tensor_decl(g.table[t.node]) else None for t in inputs]
                if any(decls):   # params and buffers lined up with the activations they join
                    shapes = line_up(op, attrs, shapes, decls)
                shape = op.shape(attrs, shapes)
            except ShapeProblem as p:
                err = ShapeError(p.code, p.message, (arg_spans or {}).get(p.arg, span), stack=ctx.stack,
                                 notes=notes or [f"input shape: {list(s)}" for s in shapes], hint=p.hint)
                err.partial = (g, {"op": op_name, "name": name, "inputs": [t.node for t in inputs],
                                   "span": span, "message": p.message})
                raise err from None
            shape = tuple(shape)
            if any(s <= 0 for s in shape):
                raise ShapeError("E045", f"`{op_name}` would give the empty shape {list(shape)}", span,
                                 stack=ctx.stack, notes=[f"input shape: {list(s)}" for s in shapes])
            self._check_numel(shape, span, ctx)
        params, buffers = op.weights(attrs, shapes, shape)
        self.total_macs += op.macs(attrs, [t.shape for t in inputs], shape)
        if g.total_params + params > self.limits.params:
            raise LimitError("E082", f"the network would have over {self.limits.params:,} parameters "
                             f"(this `{op_name}` alone has {params:,})", span, stack=ctx.stack,
                             hint="raise it with `--limit params=N`")
        if len(g) >= self.limits.nodes:
            raise LimitError("E083", f"the network has more than {self.limits.nodes:,} ops", span, stack=ctx.stack,
                             hint="raise it with `--limit nodes=N`")
        if not name.rsplit(".", 1)[-1].count("#"):
            self.claim(name, span, ctx)
        self.next_id += 1
        g.add(self.next_id, [t.node for t in inputs],
              dict(op=op_name, attrs=attrs, name=name, shape=shape, params=params, buffers=buffers,
                   span=span, stack=ctx.stack, scope=ctx.scope, tap=ctx.tap))
        n = self.next_id
        g.total_params += params
        g.total_buffers += buffers
        return Tensor(n, shape)

    def _check_numel(self, shape, span, ctx):
        if math.prod(shape) > self.limits.tensor:
            raise LimitError("E081", f"a tensor of shape {list(shape)} has {math.prod(shape):,} elements per image, "
                             f"over the limit of {self.limits.tensor:,}", span, stack=ctx.stack,
                             hint="raise it with `--limit tensor=N`")


# ---------------------------------------------------------------------- E086: what nested too deeply

_STATEMENT_NESTING = (A.Group, A.Join, A.If, A.For)
_NESTING_WORDS = {
    A.Group: "groups `{ ... }`", A.Call: "block calls", A.If: "`if` blocks", A.For: "`for` loops",
    A.ListExpr: "lists", A.TupleExpr: "tuples", A.DictExpr: "dicts", A.Unary: "unary minuses (`-x`)",
    A.Not: "`not`s", A.BoolOp: "`and`s and `or`s", A.Ternary: "conditional expressions (`a if c else b`)",
    A.Compare: "comparisons", A.Binary: "arithmetic operators", A.CallExpr: "calls (`f(...)`)",
    A.Index: "indexings (`a[i]`)", A.Attr: "attribute reads (`a.c`)", A.Slice: "slices (`a[i:j]`)",
    A.Comprehension: "list comprehensions",
}


def _nested_kind(node) -> str | None:
    """What a node on the elaboration stack is, in words; None for what only passes the nesting on."""
    if isinstance(node, A.Join):
        return f"`{node.kind}` joins"
    return _NESTING_WORDS.get(type(node))


def _explain(deep: _TooDeep, limits: Limits) -> LimitError:
    """The diagnostic for a :class:`_TooDeep`: the construct open most often on the stack when it
    ran out (block calls when a hundred or more are: recursion carries the rest), at its outermost
    occurrence, with a hint for that construct. Counts are not shown: they depend on the caller's stack."""
    counts, outermost = {}, {}
    for node, stack in deep.path:
        what = _nested_kind(node)
        if what is not None:
            counts[what] = counts.get(what, 0) + 1
            outermost[what] = (node, stack)
    if not counts or max(counts.values()) < 50:  # a short path: a value, not the spec, is too deep
        node, stack = deep.path[0]
        return LimitError("E086", "a value nests too deeply to work with", node.span, stack=stack[-6:],
                          hint=f"the `nesting` limit ({limits.nesting:,}) lets values nest deeper than "
                               "elaboration can follow; lower it with `--limit nesting=N`")
    calls = counts.get("block calls", 0)
    what = "block calls" if calls >= 100 else max(counts, key=counts.get)
    node, stack = outermost[what]
    depth = getattr(node, "depth", None)  # an expression's, from the parser
    message = f"the spec nests too deeply to elaborate: {what} " + (
        f"in an expression nested {depth:,} levels deep" if isinstance(depth, int) and depth > 1
        else "nested deeper than elaboration can follow")
    inside = sorted(k for k in counts if k != what and counts[k] > 1)
    if inside and what != "block calls":
        message += ", inside " + ", ".join(inside)
    if what == "block calls":
        hint = (f"a recursive block needs a base case; the `depth` limit ({limits.depth:,}) lets block calls "
                "nest deeper than elaboration can follow: lower it with `--limit depth=N`")
    elif type(node) in _STATEMENT_NESTING:
        hint = "flatten them: a chain `a -> b -> c` needs no braces, and a loop or a repetition " \
               "(`f(...) * n`) replaces nested copies" + (
                   "; every block call open adds the nesting of its body" if calls else
                   f"; the `nesting` limit ({limits.nesting:,}) lets the parser accept more than "
                   "elaboration can follow")
    else:
        hint = ("split the expression with `let`; the `nesting` limit "
                f"({limits.nesting:,}) lets the parser accept more than elaboration can follow")
    return LimitError("E086", message, node.span, stack=stack[-6:], hint=hint)


# ---------------------------------------------------------------------- API

STACK_FRAMES = 10_000  # Python frames elaboration may use (about 2,500 nested groups, 5,000 nested `-`)


def _frames_below() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def design_space(module: ModuleScope, network: str | None, params: dict, limits: Limits, sources: dict):
    """The design space of a network (its parameters bound, its body not elaborated): ``(space,
    defaults)``, ``space`` as ``graph.space`` has it, ``defaults`` each parameter's default value as
    declared (domains in it). Raises what binding the parameters raises."""
    net = _network_of(module, network)
    el = Elaborator(limits, sources)
    el.graph = ArchGraph(net.name, sources=sources)
    el.bind_params(net, params, Ctx({}, module, in_network=True))
    return el.graph.space, el.defaults


def _network_of(module: ModuleScope, network: str | None) -> A.BlockDef:
    if not module.networks:
        raise ElaborationError("E014", f"{module.file} defines no network",
                               Span(module.file, 1, 1, 1, 1), hint="add `network name() { ... }`")
    if network is None:
        net = list(module.networks.values())[-1]
    elif network in module.networks:
        net = module.networks[network]
    else:
        raise ElaborationError("E010", f"no network `{network}` in {module.file}", None,
                               hint=did_you_mean(network, module.networks) or
                               f"networks: {', '.join(module.networks)}")
    return net


def elaborate(module: ModuleScope, network: str | None, params: dict, inputs: dict, limits: Limits,
              sources: dict) -> ArchGraph:
    """Elaborate one network of a loaded module into the IR."""
    net = _network_of(module, network)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_frames_below() + STACK_FRAMES)  # the same room whoever calls: E086 says the same
    try:
        return Elaborator(limits, sources).network(module, net, params, inputs)
    except _TooDeep as deep:
        raise _explain(deep, limits) from None
    except RecursionError:  # (every recursion goes through ev, body or atom, which name it)
        raise LimitError("E086", "the spec nests too deeply to elaborate", net.span,
                         hint="nest less deeply") from None
    finally:
        sys.setrecursionlimit(old)

