"""Joins: a join's branches elaborated from one input (or, split, each from its part) and
combined by the join's op. A mixin of :class:`~archdsl.elaborate.Elaborator`, which gives it
``stmt``, ``body``, ``add_node`` and the step budget.

Every join takes ``when=`` (false: its first branch alone, for ``residual`` its body alone,
the other branches never elaborated) and, but ``dense`` and ``residual``, ``split=`` /
``split_dim=`` (each branch receives one part of the input, an internal ``narrow`` view). A join
written with one branch is an error: a ``for`` that gives one is fine.
"""
from __future__ import annotations

from . import syntax as A
from .errors import ElaborationError, LimitError, ShapeError, did_you_mean
from .evaluate import Ctx
from .ops import OPS, BadArgument, ShapeProblem
from .ops.base import dim_of
from .values import Tensor, describe, show

_JOIN_OPTIONS = ("when", "split", "split_dim")  # what every join takes besides its op's parameters


class Joins:
    def branches(self, body: list, ctx: Ctx, x):
        """Yield one function per branch of a join body: each statement is a branch,
        each iteration of a loop is one; bindings and asserts run in order."""
        for s in body:
            kind = type(s)
            if kind in (A.Let, A.Assert, A.Meta, A.Init, A.TensorDecl):
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

            def thunk(xx, i=i, value=value):
                ctx.repeat_tag = (gid, i, len(seq))
                self.bind_targets(s, value, ctx)  # again: a split join takes every thunk before it runs one
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
        when = kw.pop("when", None)
        split = {k: kw.pop(k) for k in ("split", "split_dim") if k in kw}
        self._join_rules(j, split, ctx)
        if split.get("split", (None,))[0] is False:
            split = {}
        if when is not None and not self._when(when, ctx):
            return self._first_branch(j, ctx, x)
        if j.kind == "dense":
            if kw:
                name = next(iter(kw))
                raise ElaborationError("E022", "`dense` takes no arguments but `when=`", kw[name][1],
                                       stack=ctx.stack)
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
            if split:
                outs, spans = self._split_branches(j, split, ctx, x)
            else:
                for thunk, span in self.branches(j.body, ctx, x):
                    y = thunk(x)
                    outs.append(x if y is None else y)
                    spans.append(span)
            if not outs:
                raise ElaborationError("E048", f"`{kind}` has no branches", j.span, stack=ctx.stack)
            self._one_branch(j, ctx)
        op = OPS[kind]
        try:
            attrs = op.bind([], {k: v for k, (v, _) in kw.items()})
        except BadArgument as e:
            hint = e.hint
            if e.code == "E022" and isinstance(e.where, str):
                hint = did_you_mean(e.where, [p.name for p in op.params] + list(_JOIN_OPTIONS)) or hint
            raise ElaborationError(e.code, e.message, kw.get(e.where, (None, j.span))[1], stack=ctx.stack,
                                   hint=hint) from None
        if kind == "mean":
            outs = self._merge_means(outs, attrs, start)
        notes = [f"branch {i} (line {s.line}) gives {list(t.shape)}" for i, (t, s) in enumerate(zip(outs, spans), 1)
                 if i <= 16] + ([f"... and {len(outs) - 16} more branches"] if len(outs) > 16 else [])
        return self.add_node(kind, attrs, outs, self.internal_name(ctx, kind), j.span, ctx, notes=notes,
                             arg_spans={k: s for k, (_, s) in kw.items()})

    def _join_rules(self, j: A.Join, split: dict, ctx: Ctx) -> None:
        """Where a split may be asked for, whatever ``when`` says."""
        if split and j.kind in ("dense", "residual"):
            what = "its body sees" if j.kind == "residual" else "every layer sees"
            raise ElaborationError("E022", f"`{j.kind}` cannot split its input: {what} all of it",
                                   next(iter(split.values()))[1], stack=ctx.stack,
                                   hint="the other joins split: `concat(split=true) { {}; conv(in.c, 3, pad=1) }`")
        if "split_dim" in split and "split" not in split:
            raise ElaborationError("E023", "`split_dim` is given without `split`", split["split_dim"][1],
                                   stack=ctx.stack, hint="add `split=true` (equal parts) or `split=[a, b, ...]`")

    def _one_branch(self, j: A.Join, ctx: Ctx) -> None:
        """E048 for a join of one branch written out (a loop that runs once is fine); checked once
        the branches are elaborated, so an error inside one comes first."""
        written = [s for s in j.body if not isinstance(s, (A.Let, A.Assert, A.Meta, A.Init))]
        if len(written) == 1 and not isinstance(written[0], A.For):
            raise ElaborationError("E048", f"`{j.kind}` has one branch", j.span, stack=ctx.stack,
                                   hint=f"a join combines two or more branches, one per statement (a `for` may "
                                        f"give one); `{{}}` is the identity branch (`{j.kind} {{ {{}}; ... }}`), and "
                                        "`residual { ... }` adds the input back to its body")

    def _when(self, when: tuple, ctx: Ctx) -> bool:
        v, span = when
        if not isinstance(v, bool):
            raise ElaborationError("E051", f"`when` must be true or false, got {describe(v)}", span,
                                   stack=ctx.stack, hint="compare: `when = in.c == c`, `when = stride == 1`")
        return v

    def _first_branch(self, j: A.Join, ctx: Ctx, x):
        """A join whose ``when`` is false: its first branch alone, on the whole input (a residual's
        body alone); the other branches are not elaborated."""
        if j.kind == "residual":
            y = self.body(j.body, ctx, x)
            return x if y is None else y
        for thunk, _ in self.branches(j.body, ctx, x):
            y = thunk(x)
            if j.kind != "dense":
                self._one_branch(j, ctx)
            return x if y is None else y
        raise ElaborationError("E048", f"`{j.kind}` has no {'layers' if j.kind == 'dense' else 'branches'}", j.span,
                               stack=ctx.stack)

    def _split_branches(self, j: A.Join, split: dict, ctx: Ctx, x: Tensor):
        """The branches of a split join, each run on its part of the input: a ``narrow`` view along
        ``split_dim``, as ``x.split(...)``."""
        thunks = list(self.branches(j.body, ctx, x))  # the count first: equal parts need it
        if not thunks:
            raise ElaborationError("E048", f"`{j.kind}` has no branches", j.span, stack=ctx.stack)
        value, span = split["split"]
        dim, dim_span = split.get("split_dim", (0, span))
        shape_notes = [f"input shape: {list(x.shape)}"]
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise ElaborationError("E020", f"`split_dim` must be an integer, got {describe(dim)}", dim_span,
                                   stack=ctx.stack)
        try:
            d = dim_of(dim, x.shape, "split_dim")
        except ShapeProblem as p:
            raise ShapeError(p.code, p.message, dim_span, stack=ctx.stack, notes=shape_notes, hint=p.hint) from None
        size, n = x.shape[d], len(thunks)
        if value is True:
            if size % n:
                raise ShapeError("E044", f"`split=true` cannot cut dim {dim} of size {size} into {n} equal parts",
                                 span, stack=ctx.stack, notes=shape_notes,
                                 hint=f"give the sizes, one per branch, adding up to {size}: `split=[...]`")
            sizes = [size // n] * n
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            sizes = list(value)
            if len(sizes) != n:
                raise ElaborationError("E046", f"`split` has {len(sizes)} size{'s' if len(sizes) != 1 else ''} "
                                       f"for {n} branch{'es' if n != 1 else ''}", span, stack=ctx.stack,
                                       hint="give one size per branch")
            if min(sizes) <= 0:
                raise ElaborationError("E024", f"split sizes must be positive, got {show(value)}", span,
                                       stack=ctx.stack)
            if sum(sizes) != size:
                raise ShapeError("E044", f"split sizes {show(value)} add up to {sum(sizes)}, but dim {dim} has size "
                                 f"{size}", span, stack=ctx.stack, notes=shape_notes,
                                 hint=f"the sizes must add up to {size}")
        else:
            raise ElaborationError("E020", f"`split` must be true or a list of sizes, got {describe(value)}", span,
                                   stack=ctx.stack, hint="`split=true` cuts equal parts; `split=[3, 4]` gives sizes")
        outs, spans, at = [], [], 0
        for (thunk, branch_span), k in zip(thunks, sizes):
            part = x if k == size else self.add_node(
                "narrow", OPS["narrow"].bind([], {"dim": dim, "start": at, "length": k}), [x],
                self.internal_name(ctx, "narrow"), span, ctx)
            at += k
            y = thunk(part)
            outs.append(part if y is None else y)
            spans.append(branch_span)
        return outs, spans

    def _residual_args(self, kw, ctx):
        out = {}
        for k, (v, span) in kw.items():
            if k not in ("scale", "survival"):
                raise ElaborationError("E022", f"`residual` has no parameter `{k}`", span, stack=ctx.stack,
                                       hint=did_you_mean(k, ["scale", "survival", "when"]) or
                                       "it takes scale=, survival= and when=")
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
