"""Elaborate: AST -> IR. Expands every block call, loop, repetition and condition,
evaluates expressions with the language's own closed evaluator, infers every
shape as it goes (``in.c`` is known wherever a statement runs) and names every op.

Naming: a labelled item takes its label; an unlabelled op or block call takes its
position among the items of the enclosing scope (as ``nn.Sequential`` counts).
A block call, a labelled group, join or repetition opens a scope; unlabelled
groups, joins, loops, conditions and repetitions expand in place.
"""
from __future__ import annotations

import inspect
import math
import operator
import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache

from . import syntax as A
from .errors import (AssertionFailed, ElaborationError, Frame, LimitError, Limits, ShapeError, Span,
                     did_you_mean)
from .initializers import SCHEMES
from .ir import ArchGraph, InitRule, OutputSpec, Scope
from .loader import ModuleScope
from .ops import OPS, BadArgument, ShapeProblem
from .values import BlockRef, Equality, OpRef, Tensor, describe, escape, order, show, type_name

_MISSING = object()
USER_OPS = sorted(n for n in OPS if n != "input")


class _Oops(Exception):
    """A problem inside a builtin; the caller adds the span."""

    def __init__(self, code: str, message: str, hint: str | None = None, cls=ElaborationError):
        super().__init__(message)
        self.code, self.message, self.hint, self.cls = code, message, hint, cls


class _TooDeep(LimitError):
    """The Python stack ran out. Raised where it did; each elaboration frame it passes on its way
    out adds its node to ``path`` (innermost first), so :meth:`explain` can say what nested."""

    def __init__(self, node, ctx):
        super().__init__("E086", "the spec nests too deeply to elaborate", node.span, stack=ctx.stack[-6:],
                         hint="nest less deeply")
        self.path = [(node, ctx.stack)]

    def explain(self, limits: Limits) -> LimitError:
        """The diagnostic: the construct open most often on the stack when it ran out (block calls
        when a hundred or more are: recursion carries the rest), at its outermost occurrence, with
        a hint for that construct. Counts are not shown: they depend on the caller's stack."""
        counts, outermost = {}, {}
        for node, stack in self.path:
            what = _nested_kind(node)
            if what is not None:
                counts[what] = counts.get(what, 0) + 1
                outermost[what] = (node, stack)
        if not counts or max(counts.values()) < 50:  # a short path: a value, not the spec, is too deep
            node, stack = self.path[0]
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


@dataclass
class Ctx:
    """Where elaboration is: variables, naming scope, IR scope and call stack."""

    env: dict
    module: ModuleScope
    prefix: str = ""
    counter: list = field(default_factory=lambda: [0])
    scope: int = 0
    stack: tuple = ()
    depth: int = 0
    tap: str | None = None
    repeat_tag: tuple | None = None
    in_network: bool = False
    inn: Tensor | None = None  # `in`: the tensor flowing into the current statement


class Elaborator:
    def __init__(self, limits: Limits, sources: dict):
        self.limits = limits
        self.sources = sources
        self.gid = 0
        self.steps = 0

    # ------------------------------------------------------------------ the work budget
    # Every statement, expression, item, loop iteration and block call costs a step, and so
    # does every 8 items of work done in bulk (values copied, walked or compared, names built,
    # join inputs checked): no spec makes elaboration run or allocate beyond `limits.steps`.
    def charge(self, n: int, span: Span | None = None, ctx: Ctx | None = None) -> None:
        self.steps += n
        if self.steps > self.limits.steps:
            message = f"elaboration needs over {self.limits.steps:,} steps"
            hint = "a loop, repetition or recursion does too much work; raise the limit with `--limit steps=N`"
            if span is None:
                raise _Oops("E087", message, hint, LimitError)
            raise LimitError("E087", message, span, stack=ctx.stack if ctx else (), hint=hint)

    def measure(self, v) -> int:
        """The size of a value: its items and those of every container in it, a string counting its
        characters. Refuses (E057) a value over the sequence limit or nested deeper than the nesting
        limit, before anything walks it (==, show) or hashes it. Costs steps in proportion."""
        return self.walk(v)[0]

    def walk(self, v) -> tuple[int, int]:
        """(size, depth) of a value, refused as :meth:`measure` says. An op or block value counts as
        one item (its arguments are shared, not copied) and as as many levels as it holds."""
        total, depth, walked, stack = 0, 0, 0, [(v, 1)]
        limit, nesting = self.limits.sequence, self.limits.nesting
        while stack:
            x, d = stack.pop()
            if isinstance(x, (str, range)):
                total += len(x)
            elif isinstance(x, (list, tuple, dict)):
                walked += 1  # (containers and op values are walked at Python speed, flat items at C speed)
                if d > nesting:
                    raise _Oops("E057", f"a value nested deeper than {nesting} levels",
                                "raise the limit with `--limit nesting=N`")
                depth = max(depth, d)
                items = list(x.values()) if isinstance(x, dict) else x
                total += len(items)
                if total <= limit and not _LEAVES.issuperset(map(type, items)):  # C speed when flat
                    stack += [(i, d + 1) for i in items if type(i) not in _LEAVES]
            elif isinstance(x, (OpRef, BlockRef)):
                walked += 1
                depth = max(depth, d - 1 + x.depth)
                if depth > nesting:
                    raise _Oops("E057", f"op and block values nested deeper than {nesting} levels (an op or "
                                "block value given as an argument of another, over and over)",
                                "raise the limit with `--limit nesting=N`")
            if total > limit:
                raise _Oops("E057", f"a value of over {limit:,} items (nested ones counted) is over the limit",
                            "raise it with `--limit sequence=N`")
        self.charge((total + 4 * walked) // 8)
        return total, depth

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
        for p in net.params:
            if p.name in params:
                ctx.env[p.name] = params[p.name]
            elif p.default is not None:
                ctx.env[p.name] = self.ev(p.default, ctx, None)
            else:
                raise ElaborationError("E023", f"network parameter `{p.name}` has no default and was not set",
                                       p.span, hint=f"set it: `--set {p.name}=...` or {p.name}=... in Python")
        self.graph.params = dict(ctx.env)
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

    def global_value(self, module: ModuleScope, name: str, seen: set | None = None):
        """A top-level `let` of ``module`` or of a file it imports (evaluated on first use), or _MISSING."""
        seen = set() if seen is None else seen
        if id(module) in seen:  # a file imported twice (a diamond) is searched once
            return _MISSING
        seen.add(id(module))
        self.charge(1)
        if module.values is None:
            module.values = {}
            ctx = Ctx(module.values, module)
            for let in module.lets:
                module.values[let.name] = self.ev(let.value, ctx, None)
        if name in module.values:
            return module.values[name]
        for imported in module.imports:
            v = self.global_value(imported, name, seen)
            if v is not _MISSING:
                return v
        return _MISSING

    def _outputs(self, ctx: Ctx, x: Tensor | None, net: A.BlockDef) -> None:
        g = self.graph
        if self.outputs_stmt is None:
            if x is None:
                raise ElaborationError("E014", "the network produces no tensor", net.span)
            g.outputs.append(OutputSpec("out", x.node))
            g.outputs += [OutputSpec(k, t.node, train) for k, (t, train) in self.taps.items()]
            return
        for name, span in self.outputs_stmt.names:
            v = ctx.env.get(name)
            if not isinstance(v, Tensor):
                raise ElaborationError("E015", f"output `{name}` is not a named tensor or tap", span,
                                       hint=did_you_mean(name, [k for k, v in ctx.env.items() if isinstance(v, Tensor)])
                                       or "name a tensor with `name = chain` or a tap with `name: tap ...`")
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
            return x
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

    def check_assert(self, s: A.Assert, ctx: Ctx, x) -> None:
        if self.truth(self.ev(s.cond, ctx, x), s.cond):
            return
        notes = []
        c = s.cond
        if isinstance(c, A.Compare) and len(c.ops) == 1:
            notes = [f"left: {show(self.ev(c.operands[0], ctx, x))}", f"right: {show(self.ev(c.operands[1], ctx, x))}"]
        msg = f"assertion failed: {s.text}"
        if s.message is not None:  # the user's text, escaped: it cannot fake lines or drive the terminal
            said = self.ev(s.message, ctx, x)
            msg += f" ({escape(said) if isinstance(said, str) else show(said, 500)})"
        raise AssertionFailed("E060", msg, s.cond.span, stack=ctx.stack, notes=notes)

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

    def init_rule(self, s: A.Init, ctx: Ctx, x) -> None:
        if s.scheme not in SCHEMES:
            raise ElaborationError("E026", f"unknown init scheme `{s.scheme}`", s.span,
                                   hint=did_you_mean(s.scheme, SCHEMES) or f"schemes: {', '.join(SCHEMES)}")
        if not s.is_pattern and s.target not in OPS:
            raise ElaborationError("E011", f"unknown op `{s.target}` in init", s.span,
                                   hint=did_you_mean(s.target, USER_OPS) or
                                   'to match op names, give a pattern in quotes: init "*.bn3" = zeros')
        allowed = SCHEMES[s.scheme]
        kwargs = dict(allowed)
        for i, a in enumerate(s.args):
            v = self.ev(a.value, ctx, x)
            key = a.name if a.name is not None else (list(allowed)[i] if i < len(allowed) else None)
            if key not in allowed:
                raise ElaborationError("E022", f"init scheme `{s.scheme}` has no parameter "
                                       f"`{a.name if a.name else f'#{i + 1}'}`", a.span,
                                       hint=f"its parameters are: {', '.join(allowed) or 'none'}")
            kwargs[key] = v
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
                                   hint="joins take branches: `concat { a; b }`" if op.arity is None else None)
        if x is None:
            raise ElaborationError("E016", f"nothing flows into `{c.name}`", c.span, stack=ctx.stack,
                                   hint="a network starts with `input name: [C, H, W]`")
        pos = list(ref.args) + [v for k, v, _ in args if k is None]
        kw = dict(ref.kwargs)
        for k, v, _ in args:
            if k is not None:
                kw[k] = v
        spans = {**{i: s for i, (k, _, s) in enumerate((a for a in args if a[0] is None), len(ref.args))},
                 **{k: s for k, _, s in args if k is not None}}
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
        name = self.next_name(ctx, label)
        frame = Frame(block.name, c.span)
        inner = self.open_scope(ctx, name, "block", block.name, c.span, module=module, frame=frame)
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
        self.graph.scopes[inner.scope].args = {k: v for k, v in inner.env.items()
                                               if isinstance(v, (int, float, str, bool))}
        if x is None:
            raise ElaborationError("E016", f"nothing flows into block `{block.name}`", c.span, stack=ctx.stack)
        y = self.body(block.body, inner, x)
        return x if y is None else y

    # ------------------------------------------------------------------ joins
    def branches(self, body: list, ctx: Ctx, x):
        """Yield one function per branch of a join body: each statement is a branch,
        each iteration of a loop is one; bindings and asserts run in order."""
        for s in body:
            kind = type(s)
            if kind in (A.Let, A.Assert, A.Meta, A.Init):
                self.stmt(s, ctx, x)
            elif kind is A.For:
                for thunk in self._loop_thunks(s, ctx, x):
                    yield thunk, s.span
            else:
                yield (lambda xx, s=s: self.stmt(s, ctx, xx)), s.span

    def _loop_thunks(self, s: A.For, ctx: Ctx, x):
        seq = self.ev(s.iterable, ctx, x)
        if not isinstance(seq, (list, tuple, range, str, dict)):
            raise ElaborationError("E051", f"cannot loop over {describe(seq)}", s.iterable.span,
                                   stack=ctx.stack)
        if len(seq) > self.limits.repeat:
            raise LimitError("E084", f"loop of {len(seq):,} iterations is over the repeat limit of "
                             f"{self.limits.repeat:,}", s.iterable.span, stack=ctx.stack)
        self.gid += 1
        gid = self.gid
        for i, value in enumerate(seq):
            self.charge(1, s.span, ctx)
            self.bind_targets(s, value, ctx)
            saved = ctx.repeat_tag

            def thunk(xx, i=i):
                ctx.repeat_tag = (gid, i, len(seq))
                try:
                    return self.body(s.body, ctx, xx)
                finally:
                    ctx.repeat_tag = saved
            yield thunk

    def join(self, j: A.Join, ctx: Ctx, x):
        self.charge(2, j.span, ctx)
        if x is None:
            raise ElaborationError("E016", f"nothing flows into `{j.kind}`", j.span, stack=ctx.stack)
        kw = {}
        for a in j.args:
            if a.name is None:
                raise ElaborationError("E021", f"`{j.kind}` takes keyword arguments only", a.span, stack=ctx.stack,
                                       hint="e.g. `add(scale=[1, 0.17]) { ... }`")
            kw[a.name] = (self.ev(a.value, ctx, ctx.inn), a.span)
        if j.kind == "dense":
            if kw:
                name = next(iter(kw))
                raise ElaborationError("E022", "`dense` takes no arguments", kw[name][1], stack=ctx.stack)
            return self.dense(j, ctx, x)
        start = self.next_id  # every node made inside this join has a larger id
        outs, spans = [], []
        if j.kind == "residual":
            body = self.body(j.body, ctx, x)
            outs, spans = [body if body is not None else x, x], [j.span, j.span]
            kind = "add"
            kw = self._residual_args(kw, ctx)
        else:
            kind = j.kind
            for thunk, span in self.branches(j.body, ctx, x):
                y = thunk(x)
                outs.append(x if y is None else y)
                spans.append(span)
            if not outs:
                raise ElaborationError("E048", f"`{kind}` has no branches", j.span, stack=ctx.stack)
        op = OPS[kind]
        try:
            attrs = op.bind([], {k: v for k, (v, _) in kw.items()})
        except BadArgument as e:
            raise ElaborationError(e.code, e.message, kw.get(e.where, (None, j.span))[1], stack=ctx.stack,
                                   hint=e.hint) from None
        if kind == "mean":
            outs = self._merge_means(outs, attrs, start)
        notes = [f"branch {i} (line {s.line}) gives {list(t.shape)}" for i, (t, s) in enumerate(zip(outs, spans), 1)
                 if i <= 16] + ([f"... and {len(outs) - 16} more branches"] if len(outs) > 16 else [])
        return self.add_node(kind, attrs, outs, self.internal_name(ctx, kind), j.span, ctx, notes=notes)

    def _residual_args(self, kw, ctx):
        out = {}
        for k, (v, span) in kw.items():
            if k not in ("scale", "survival"):
                raise ElaborationError("E022", f"`residual` has no parameter `{k}`", span, stack=ctx.stack,
                                       hint=did_you_mean(k, ["scale", "survival"]) or "it takes scale= and survival=")
            out[k] = ([v, 1.0], span)
        return out

    def _merge_means(self, outs, attrs, start):
        """FractalNet: a mean join whose branch ends in a mean join made inside it merges with it."""
        g = self.graph
        flat = []
        for t in outs:
            d = g.node(t.node)
            if d["op"] == "mean" and t.node > start and not self._used(t.node) and d["attrs"] == attrs \
                    and not any(o.node == t.node for o in g.outputs):
                flat += [Tensor(u, g.node(u)["shape"]) for u in g.args(t.node)]
                g.remove(t.node)
            else:
                flat.append(t)
        return flat

    def _used(self, n: int) -> bool:
        """Whether a node has users: only nodes made after it can use it (not ``graph.users``, a scan
        of the whole graph per call, quadratic over a fractal of mean joins)."""
        preds = self.graph.preds
        self.charge((self.next_id - n) // 8)
        return any(n in preds[u] for u in range(n + 1, self.next_id + 1) if u in preds)

    def dense(self, j: A.Join, ctx: Ctx, x):
        feats = [x]
        for thunk, span in self.branches(j.body, ctx, x):
            inp = feats[0] if len(feats) == 1 else self.add_node(
                "concat", {}, feats, self.internal_name(ctx, "concat"), span, ctx)
            y = thunk(inp)
            if y is None or y == inp:
                raise ElaborationError("E048", "a dense layer must compute something", span, stack=ctx.stack)
            feats.append(y)
        if len(feats) == 1:
            raise ElaborationError("E048", "`dense` has no layers", j.span, stack=ctx.stack)
        return self.add_node("concat", {}, feats, self.internal_name(ctx, "concat"), j.span, ctx)

    # ------------------------------------------------------------------ names and scopes
    def label_text(self, label: A.Label, ctx: Ctx, x) -> str:
        out = []
        for part in label.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                v = self.ev(part, ctx, x)
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise ElaborationError("E032", f"a label can interpolate integers and names, not "
                                           f"{describe(v)}", part.span, stack=ctx.stack)
                out.append(str(v))
        text = "".join(out)
        self.charge(len(text) // 8, label.span, ctx)
        if not text or not all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in text):
            raise ElaborationError("E032", f"label {show(text)} is not a valid name", label.span, stack=ctx.stack,
                                   hint="labels use letters, digits and `_`")
        return text

    def next_name(self, ctx: Ctx, label: str | None) -> str:
        index = ctx.counter[0]
        ctx.counter[0] += 1
        return ctx.prefix + (label if label is not None else str(index))

    def internal_name(self, ctx: Ctx, op: str) -> str:
        key = ctx.prefix + op
        k = self.internal.get(key, 0) + 1
        self.internal[key] = k
        return f"{key}#{k}"

    def claim(self, name: str, span: Span, ctx: Ctx) -> None:
        if name in self.names:
            first = self.names[name]
            raise ElaborationError("E030", f"the name `{name}` is used twice", span, stack=ctx.stack,
                                   notes=[f"first used at {first}"],
                                   hint="labels must be unique within their scope")
        self.names[name] = span

    def open_scope(self, ctx: Ctx, name: str, kind: str, block: str | None, span: Span,
                   module: ModuleScope | None = None, frame: Frame | None = None) -> Ctx:
        self.claim(name, span, ctx)
        sid = len(self.graph.scopes)
        self.graph.scopes[sid] = Scope(sid, name, kind, block, ctx.scope, span, ctx.repeat_tag)
        if kind == "block":
            return Ctx({}, module, name + ".", [0], sid, ctx.stack + (frame,), ctx.depth + 1, ctx.tap)
        return replace(ctx, prefix=name + ".", counter=[0], scope=sid, repeat_tag=None)

    # ------------------------------------------------------------------ nodes
    def add_node(self, op_name: str, attrs: dict, inputs: list, name: str, span: Span, ctx: Ctx, *,
                 shape: tuple | None = None, arg_spans: dict | None = None, notes=None) -> Tensor:
        op = OPS[op_name]
        g = self.graph
        self.charge(4 + len(inputs) + len(name) // 8, span, ctx)
        shapes = [t.shape for t in inputs]
        if shape is None:
            try:
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

    # ------------------------------------------------------------------ expressions
    def lookup(self, name: str, ctx: Ctx, span: Span, callable_only: bool = False):
        if name in ctx.env:
            return ctx.env[name]
        module = ctx.module
        if module is not None:
            v = self.global_value(module, name)
            if v is not _MISSING:
                return v
            if name in module.blocks:
                block, home = module.blocks[name]
                return BlockRef(block, module=home)
        if name in OPS and name != "input":
            return OpRef(name)
        if not callable_only:
            if name in BUILTINS:
                return BUILTINS[name]
            if name == "params" and hasattr(self, "graph"):  # (no graph for a `--set` value)
                return self.graph.total_params
        pool = list(ctx.env) + (list(module.blocks) + list(module.values or ()) if module else []) + USER_OPS
        if not callable_only:
            pool += list(BUILTINS)
        what = "op or block" if callable_only else "name"
        hint = did_you_mean(name, pool)
        if module is not None and name in module.networks:
            hint = f"`{name}` is a network; only blocks can be called"
        raise ElaborationError("E010", f"unknown {what} `{name}`", span, stack=ctx.stack, hint=hint)

    def truth(self, v, node) -> bool:
        if isinstance(v, (Tensor, BlockRef, OpRef)):
            raise ElaborationError("E051", f"{describe(v)} is neither true nor false", node.span)
        return bool(v)

    def ev(self, e, ctx: Ctx, x):
        try:
            self.charge(1)
            return _EVAL[type(e)](self, e, ctx, x)
        except _Oops as o:
            raise o.cls(o.code, o.message, e.span, stack=ctx.stack, hint=o.hint) from None
        except RecursionError:
            raise _TooDeep(e, ctx) from None
        except _TooDeep as deep:
            deep.path.append((e, ctx.stack))
            raise

    def _const(self, e, ctx, x):
        v = e.value
        if isinstance(v, float) and not math.isfinite(v):
            raise _Oops("E050", "this number is too large to be finite")
        if isinstance(v, int) and not isinstance(v, bool):
            self.check_int(v)
        return v

    def _var(self, e, ctx, x):
        return self.lookup(e.name, ctx, e.span)

    def _in(self, e, ctx, x):
        if x is None:
            raise _Oops("E016", "`in` has no tensor here: nothing flows into this statement")
        return x

    def _tensor_ref(self, e, ctx, x):
        v = self.lookup(e.name, ctx, e.span)
        if not isinstance(v, Tensor):
            raise _Oops("E016", f"`@{e.name}` is {type_name(v)}, not a tensor")
        return v

    def _list(self, e, ctx, x):
        v = [self.ev(i, ctx, x) for i in e.items]
        self.measure(v)
        return v

    def _tuple(self, e, ctx, x):
        v = tuple(self.ev(i, ctx, x) for i in e.items)
        self.measure(v)
        return v

    def _dict(self, e, ctx, x):
        out = {}
        for k, v in e.pairs:
            key = self.ev(k, ctx, x)
            if not _is_key(key):
                raise ElaborationError("E051", f"a dict key must be a string, a number or a tuple of them, "
                                       f"not {type_name(key)}", k.span, stack=ctx.stack)
            out[key] = self.ev(v, ctx, x)
        self.measure(out)
        return out

    def _unary(self, e, ctx, x):
        v = self.ev(e.operand, ctx, x)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise _Oops("E051", f"cannot apply `{e.op}` to {describe(v)}")
        return -v if e.op == "-" else +v

    def _not(self, e, ctx, x):
        return not self.truth(self.ev(e.operand, ctx, x), e.operand)

    def _boolop(self, e, ctx, x):
        a = self.ev(e.left, ctx, x)
        if (e.op == "and") != self.truth(a, e.left):
            return a
        return self.ev(e.right, ctx, x)

    def _ternary(self, e, ctx, x):
        return self.ev(e.then if self.truth(self.ev(e.cond, ctx, x), e.cond) else e.other, ctx, x)

    def _compare(self, e, ctx, x):
        left = self.ev(e.operands[0], ctx, x)
        for op, node in zip(e.ops, e.operands[1:]):
            right = self.ev(node, ctx, x)
            try:
                ok = self.compare(op, left, right)
            except TypeError:
                raise _Oops("E051", f"cannot compare {describe(left)} with "
                            f"{describe(right)} using `{op}`") from None
            if not ok:
                return False
            left = right
        return True

    def compare(self, op: str, a, b) -> bool:
        """``a op b`` on values of the language, in time linear in the objects they are made of
        (op values share their arguments: Python's own == would walk every path) and paid for."""
        eq = Equality(self.charge)
        if op in ("==", "!="):
            return eq.same(a, b) == (op == "==")
        return order(op, a, b, eq)

    def _binary(self, e, ctx, x):
        a = self.ev(e.left, ctx, x)
        b = self.ev(e.right, ctx, x)
        return self.arith(e.op, a, b)

    def arith(self, op, a, b):
        num = (int, float)
        an = isinstance(a, num) and not isinstance(a, bool)
        bn = isinstance(b, num) and not isinstance(b, bool)
        if an and bn:
            if op in ("/", "//", "%") and b == 0:
                raise _Oops("E052", f"division by zero: {show(a)} {op} {show(b)}")
            if op == "**":
                if isinstance(a, int) and isinstance(b, int):
                    if b < 0:
                        if a == 0:
                            raise _Oops("E052", "division by zero: 0 ** negative")
                        return float(a) ** b
                    if a not in (0, 1, -1) and b * math.log2(abs(a)) > math.log2(self.limits.size) + 1:
                        raise _Oops("E056", f"{show(a)} ** {show(b)} is too large",
                                    f"integers are limited to {self.limits.size:,}; raise with `--limit size=N`")
                elif isinstance(a, (int, float)) and a < 0 and not float(b).is_integer():
                    raise _Oops("E051", f"{show(a)} ** {show(b)} is not a real number")
            try:
                r = _ARITH[op](a, b)
            except OverflowError:
                raise _Oops("E056", f"{show(a)} {op} {show(b)} is too large") from None
            return self.check_num(r)
        if op == "+" and type(a) is type(b) and isinstance(a, (str, list, tuple)):
            if len(a) + len(b) > self.limits.sequence:
                raise _Oops("E057", f"a sequence of {len(a) + len(b):,} items is over the limit of "
                            f"{self.limits.sequence:,}", _RAISE_SEQUENCE)
            if self.measure(a) + self.measure(b) > self.limits.sequence:  # before allocating
                raise _Oops("E057", f"a value of over {self.limits.sequence:,} items (nested ones counted) "
                            "is over the limit", "raise it with `--limit sequence=N`")
            return a + b
        if op == "*" and (isinstance(a, (str, list, tuple)) and isinstance(b, int) and not isinstance(b, bool)):
            if len(a) * max(b, 0) > self.limits.sequence:
                raise _Oops("E057", f"a sequence of {_count(len(a) * b)} items is over the limit of "
                            f"{self.limits.sequence:,}", _RAISE_SEQUENCE)
            if self.measure(a) * max(b, 0) > self.limits.sequence:  # before allocating
                raise _Oops("E057", f"a value of over {self.limits.sequence:,} items (nested ones counted) "
                            "is over the limit", "raise it with `--limit sequence=N`")
            self.charge(len(a) * max(b, 0) // 8)
            return a * b
        if op == "*" and (isinstance(b, (str, list, tuple)) and isinstance(a, int) and not isinstance(a, bool)):
            return self.arith(op, b, a)
        raise _Oops("E051", f"cannot apply `{op}` to {describe(a)} and {describe(b)}")

    def check_num(self, v):
        if isinstance(v, float):
            if not math.isfinite(v):
                raise _Oops("E050", f"the result {v} is not a finite number")
            return v
        return self.check_int(v)

    def check_int(self, v):
        if abs(v) > self.limits.size:
            raise _Oops("E056", f"the integer {show(v)} is too large",
                        f"integers are limited to {self.limits.size:,}; raise with `--limit size=N`")
        return v

    def check_len(self, seq):
        if len(seq) > self.limits.sequence:
            raise _Oops("E057", f"a sequence of {len(seq):,} items is over the limit of {self.limits.sequence:,}",
                        _RAISE_SEQUENCE)
        return seq

    def _call(self, e, ctx, x):
        f = self.ev(e.func, ctx, x)
        pos, kw = [], {}
        for a in e.args:
            v = self.ev(a.value, ctx, x)
            if a.name is None:
                pos.append(v)
            elif a.name in kw:
                raise ElaborationError("E021", f"`{a.name}` given twice", a.span, stack=ctx.stack)
            else:
                kw[a.name] = v
        if isinstance(f, Builtin):
            if kw and not f.kw:
                self._no_kw(f)
            try:
                f.signature.bind(self, *pos, **kw)
            except TypeError as e:  # the wrong number of arguments, an unknown keyword
                raise _Oops("E021", f"`{f.name}`: {e}") from None
            return f.fn(self, *pos, **kw)
        if isinstance(f, (BlockRef, OpRef)):
            self.charge((len(f.args) + len(f.kwargs)) // 8)  # partial application copies what is bound
            # the new value is one level deeper than what it is given: refused past `nesting`, so
            # nothing that walks values (==, show, JSON) meets an op value nested 10**5 deep
            depth = max(f.depth, self.walk(pos + list(kw.values()))[1])
            return replace(f, args=f.args + tuple(pos), kwargs=tuple({**dict(f.kwargs), **kw}.items()),
                           depth=depth)
        raise _Oops("E053", f"{describe(f)} cannot be called")

    def _no_kw(self, f):
        raise _Oops("E022", f"`{f.name}` takes no keyword arguments")

    def _index(self, e, ctx, x):
        t = self.ev(e.target, ctx, x)
        i = self.ev(e.index, ctx, x)
        if isinstance(t, dict):
            if not _is_key(i) or i not in t:
                raise _Oops("E054", f"key {show(i)} is not in the dict",
                            did_you_mean(i, [k for k in t if isinstance(k, str)]) if isinstance(i, str) else None)
            return t[i]
        if isinstance(t, (list, tuple, str, range)):
            if not isinstance(i, int) or isinstance(i, bool):
                raise _Oops("E054", f"an index must be an integer, got {describe(i)}")
            if not -len(t) <= i < len(t):
                raise _Oops("E054", f"index {show(i)} is out of range for a {type_name(t)} of length {len(t)}")
            return t[i]
        raise _Oops("E054", f"{describe(t)} cannot be indexed")

    def _attr(self, e, ctx, x):
        t = self.ev(e.target, ctx, x)
        if isinstance(t, Tensor):
            v = t.attr(e.name)
            if v is None:
                raise _Oops("E055", f"a tensor of shape {list(t.shape)} has no attribute `{e.name}`",
                            did_you_mean(e.name, Tensor.ATTRS) or f"tensor attributes: {', '.join(Tensor.ATTRS)}")
            return v
        raise _Oops("E055", f"{describe(t)} has no attribute `{e.name}`",
                    "only tensors have attributes (`in.c`, `in.h`, `in.w`, `in.shape`)")


_EVAL = {
    A.Const: Elaborator._const, A.Var: Elaborator._var, A.InTensor: Elaborator._in,
    A.TensorRef: Elaborator._tensor_ref, A.ListExpr: Elaborator._list, A.TupleExpr: Elaborator._tuple,
    A.DictExpr: Elaborator._dict, A.Unary: Elaborator._unary, A.Not: Elaborator._not,
    A.BoolOp: Elaborator._boolop, A.Ternary: Elaborator._ternary, A.Compare: Elaborator._compare,
    A.Binary: Elaborator._binary, A.CallExpr: Elaborator._call, A.Index: Elaborator._index,
    A.Attr: Elaborator._attr,
}

_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "//": operator.floordiv, "%": operator.mod, "**": operator.pow}


_STATEMENT_NESTING = (A.Group, A.Join, A.If, A.For)
_NESTING_WORDS = {
    A.Group: "groups `{ ... }`", A.Call: "block calls", A.If: "`if` blocks", A.For: "`for` loops",
    A.ListExpr: "lists", A.TupleExpr: "tuples", A.DictExpr: "dicts", A.Unary: "unary minuses (`-x`)",
    A.Not: "`not`s", A.BoolOp: "`and`s and `or`s", A.Ternary: "conditional expressions (`a if c else b`)",
    A.Compare: "comparisons", A.Binary: "arithmetic operators", A.CallExpr: "calls (`f(...)`)",
    A.Index: "indexings (`a[i]`)", A.Attr: "attribute reads (`a.c`)",
}


def _nested_kind(node) -> str | None:
    """What a node on the elaboration stack is, in words; None for what only passes the nesting on."""
    if isinstance(node, A.Join):
        return f"`{node.kind}` joins"
    return _NESTING_WORDS.get(type(node))


_RAISE_SEQUENCE = "raise it with `--limit sequence=N`"
_LEAVES = frozenset({int, float, bool, type(None), Tensor})  # values with no items


def _is_key(v) -> bool:
    """A dict key: a string, number or bool, or a tuple of them (flat, so hashing it is cheap)."""
    scalar = (str, int, float, bool)
    return isinstance(v, scalar) or (isinstance(v, tuple) and all(isinstance(i, scalar) for i in v))


def _count(n: int) -> str:
    """A count a user computed, with thousands separators; a huge one approximately (Python refuses
    to write integers of over 4,300 digits, and a message has no use for them)."""
    return f"{n:,}" if abs(n) < 10**30 else show(n)


# ---------------------------------------------------------------------- builtins

@dataclass(frozen=True)
class Builtin:
    name: str
    fn: object
    kw: bool = False

    value_kind = "builtin"  # how values.type_name and values.show call it

    @property
    def signature(self) -> inspect.Signature:
        return _signature(self.fn)


@lru_cache(maxsize=None)
def _signature(fn) -> inspect.Signature:
    return inspect.signature(fn)


def _int_arg(v, what):
    if not isinstance(v, int) or isinstance(v, bool):
        raise _Oops("E051", f"{what} must be an integer, got {describe(v)}")
    return v


def _seq_arg(v, what):
    if not isinstance(v, (list, tuple, range, str, dict)):
        raise _Oops("E051", f"{what} must be a list, tuple or range, got {describe(v)}")
    return v


def _num_arg(v, what):
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise _Oops("E051", f"{what} must be a number, got {describe(v)}")
    return v


def _range(ev, *args):
    if not 1 <= len(args) <= 3:
        raise _Oops("E021", f"range takes 1 to 3 arguments, got {len(args)}")
    args = [_int_arg(a, "a range bound") for a in args]
    if len(args) == 3 and args[2] == 0:
        raise _Oops("E052", "range step must not be zero")
    r = range(*args)
    if len(r) > ev.limits.sequence:
        raise _Oops("E057", f"a range of {len(r):,} items is over the limit of {ev.limits.sequence:,}",
                    _RAISE_SEQUENCE)
    return r


def _room(ev, size: int, what: str) -> None:
    """Refuse, before building it, a value of ``size`` items (nested ones counted); pay for building it."""
    if size > ev.limits.sequence:
        raise _Oops("E057", f"{what} of {size:,} items (nested ones counted) is over the limit of "
                    f"{ev.limits.sequence:,}", "raise it with `--limit sequence=N`")
    ev.charge(size // 8)


def _enumerate(ev, seq, start=0):
    start = _int_arg(start, "start")
    ev.check_int(start + len(_seq_arg(seq, "enumerate's argument")))
    _room(ev, ev.measure(seq) + 2 * len(seq), "enumerate's list")
    return [(i + start, v) for i, v in enumerate(seq)]


def _zip(ev, *seqs):
    seqs = [_seq_arg(s, "zip's arguments") for s in seqs]
    n = min((len(s) for s in seqs), default=0)
    _room(ev, n * (len(seqs) + 1) + sum(ev.measure(s) for s in seqs), "zip's list")
    return [tuple(t) for t in zip(*seqs)]


def _len(ev, seq):
    if isinstance(seq, Tensor):
        return len(seq.shape)
    return len(_seq_arg(seq, "len's argument"))


def _minmax(pick):
    def fn(ev, *args):
        items = list(_seq_arg(args[0], "its argument")) if len(args) == 1 else list(args)
        if not items:
            raise _Oops("E051", f"{pick.__name__} of an empty sequence")
        ev.measure(items)
        eq = Equality(ev.charge)  # one union-find for every comparison: equal items are matched once
        best = items[0]
        try:
            for item in items[1:]:  # the first of the smallest (largest), as Python picks
                if order("<" if pick is min else ">", item, best, eq):
                    best = item
            return best
        except TypeError:
            raise _Oops("E051", f"cannot compare the items of {show(items)}") from None
    return fn


def _sum(ev, seq, start=0):
    total = _num_arg(start, "start")
    ev.charge(len(_seq_arg(seq, "sum's argument")))
    for v in seq:
        total = ev.arith("+", total, _num_arg(v, "every item"))
    return total


def _abs(ev, v):
    return abs(_num_arg(v, "abs's argument"))


def _int(ev, v):
    if isinstance(v, bool):
        return int(v)
    v = _num_arg(v, "int's argument")
    return ev.check_int(int(v))


def _float(ev, v):
    return float(_num_arg(v, "float's argument"))


def _round(ev, v, digits=None):
    v = _num_arg(v, "round's argument")
    if digits is None:
        return ev.check_int(round(v))
    digits = _int_arg(digits, "digits")
    if isinstance(v, int) and digits < -(abs(v).bit_length() * 31 // 100 + 2):  # past all its digits
        return 0  # (Python would first compute 10 ** -digits)
    return round(v, digits)


def _list(ev, seq=()):
    _seq_arg(seq, "list's argument")
    _room(ev, ev.measure(seq) + (len(seq) if isinstance(seq, str) else 0), "a list")
    return list(seq)


BUILTINS = {b.name: b for b in (
    Builtin("range", _range), Builtin("enumerate", _enumerate, kw=True), Builtin("zip", _zip),
    Builtin("len", _len), Builtin("min", _minmax(min)), Builtin("max", _minmax(max)),
    Builtin("sum", _sum, kw=True), Builtin("abs", _abs), Builtin("int", _int), Builtin("float", _float),
    Builtin("round", _round, kw=True), Builtin("list", _list),
)}


# ---------------------------------------------------------------------- API

STACK_FRAMES = 10_000  # Python frames elaboration may use (about 2,500 nested groups, 5,000 nested `-`)


def _frames_below() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def elaborate(module: ModuleScope, network: str | None, params: dict, inputs: dict, limits: Limits,
              sources: dict) -> ArchGraph:
    """Elaborate one network of a loaded module into the IR."""
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
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_frames_below() + STACK_FRAMES)  # the same room whoever calls: E086 says the same
    try:
        return Elaborator(limits, sources).network(module, net, params, inputs)
    except _TooDeep as deep:
        raise deep.explain(limits) from None
    except RecursionError:  # (every recursion goes through ev, body or atom, which name it)
        raise LimitError("E086", "the spec nests too deeply to elaborate", net.span,
                         hint="nest less deeply") from None
    finally:
        sys.setrecursionlimit(old)
