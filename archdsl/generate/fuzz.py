"""The random-architecture generator: valid specs by construction, from a source of choices.

:class:`Gen` draws fragments (``archdsl.generate.shapes``) that fit the shape flowing into
them: chains of ops (conv with random kernel / stride / padding / dilation / groups dividing
the channels, pools with ceil modes, norms, activations, dropout, ...), joins (concat, add and
mean with matching shapes, mul gating, dense blocks, residuals, add with per-branch scale and
survival, mean with drop-path, sub, stack merged back by flatten, split joins whose branches
take parts of the input), layout ops, repetitions, for loops, if/else, lets and asserts, and
block calls. It emits a fragment only after simulating it on the shape that flows into it.

The choices come from a *source*: :class:`RandomSource` (a seeded ``random.Random``: the same
seed draws the same specs, what ``archdsl generate`` uses) or, in the tests, one that asks
Hypothesis (so failing examples shrink). :func:`random_spec` draws a whole file for the fuzz
tests; ``archdsl generate`` draws one block at a time with :class:`Gen` restricted (``ops``,
``joins``, ``nest``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .shapes import (ACTIVATIONS, IN_C, BlockDef, Bind, Body, Call, Chain, Expr, For, Frag, Group, If, Invalid,
                     Join, Labelled, Let, Assert, Op, Ref, Sim, Tap, div, each, lit, plus, times, var)


class RandomSource:
    """Choices from a seeded ``random.Random``."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def pick(self, options):
        options = list(options)
        return options[self.rng.randrange(len(options))]

    def coin(self, p: float = 0.5) -> bool:
        return self.rng.random() < p

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def cuts(self, size: int, n: int) -> list:
        """``n - 1`` distinct sorted cut points in ``[1, size - 1]`` (``size > n``)."""
        return sorted(self.rng.sample(range(1, size), n - 1))


MAX_C = 24      # channels stay small, so torch runs every drawn network in milliseconds

# the op names each kind of op of Gen.simple may emit (what --ops selects)
KIND_OPS = {"act": {a.name for a in ACTIVATIONS}, "pool": {"maxpool", "avgpool"}, "dropout": {"dropout", "droppath"},
            "shuffle": {"channel_shuffle"}, "adaptive": {"adaptive_avgpool", "adaptive_maxpool"}}
# the join each kind of join of Gen.join is written with (what --joins selects)
JOIN_OF = {"concat": {"concat"}, "add": {"add"}, "mean": {"mean"}, "mul": {"mul"}, "residual": {"add"},
           "dense": {"concat"}, "shortcut": {"add"}, "split": {"concat", "add", "mean"}, "sub": {"sub"},
           "stack": {"stack"}}


class Gen:
    """Draws fragments that fit the shape flowing into them."""

    def __init__(self, source, budget: int, *, ops=None, joins=None, nest: int = 3, calls: bool = True,
                 statements: bool = True, max_c: int = MAX_C):
        self.source = source
        self.budget = budget      # ops still to emit (roughly)
        self.counter = 0
        self.blocks: list[BlockDef] = []
        self.ops = None if ops is None else frozenset(ops)        # op names allowed (None: every one)
        self.joins = None if joins is None else frozenset(joins)  # join kinds allowed (None: every one)
        self.nest = nest              # how deep groups and joins nest
        self.calls = calls            # block calls (and new blocks) inside
        self.statements = statements  # let, assert, if and for statements besides chains
        self.max_c = max_c

    # --- helpers
    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def pick(self, options):
        return self.source.pick(options)

    def coin(self, p: float = 0.5) -> bool:
        return self.source.coin(p)

    def int(self, lo: int, hi: int) -> int:
        return self.source.int(lo, hi)

    def allowed(self, kinds: list) -> list:
        """The kinds of op (of :meth:`simple`) the allowed ops leave; an activation when none."""
        if self.ops is None:
            return kinds
        return [k for k in kinds if self.ops & KIND_OPS.get(k, {k})] or ["act"]

    def fallback(self) -> Op:
        """What stands in for a fragment that does not fit: ``relu``, or an allowed activation."""
        return Op("relu", bare=True) if self.ops is None or "relu" in self.ops else self.activation()

    def activation(self) -> Op:
        """An activation among the allowed ops (``identity`` when none is)."""
        acts = [a for a in ACTIVATIONS if self.ops is None or a.name in self.ops]
        return self.pick(acts) if acts else Op("identity", bare=True)

    def fits(self, frag: Frag, sim: Sim, x):
        """The shape ``frag`` gives on ``x``, or None if it does not fit (sim left untouched)."""
        trial = sim.copy()
        try:
            y = frag.run(trial, x)
        except (Invalid, ZeroDivisionError, KeyError, TypeError):
            return None
        return y

    # --- channel expressions
    def channels(self, x, sim, loop: str | None = None) -> Expr:
        """An expression for a channel count: a literal, `in.c`, a multiple, a variable."""
        options = ["lit", "lit", "in", "double", "half"]
        if loop:
            options.append("loop")
        ints = [k for k, v in sim.env.items() if isinstance(v, int) and not isinstance(v, bool)
                and not k.startswith("@") and 1 <= v <= self.max_c]
        if ints:
            options.append("var")
        kind = self.pick(options)
        if kind == "in" and sim.inn is not None and len(sim.inn) >= 2:
            return IN_C
        if kind == "double" and sim.inn is not None and len(sim.inn) >= 2 and sim.inn[0] * 2 <= self.max_c:
            return times(IN_C, 2)
        if kind == "half" and sim.inn is not None and len(sim.inn) >= 2 and sim.inn[0] >= 2:
            return div(IN_C, 2)
        if kind == "loop":
            return plus(lit(self.int(1, 8)), times(var(loop), self.int(1, 4)))
        if kind == "var":
            return var(self.pick(sorted(ints)))
        return lit(self.int(1, 16))

    # --- single ops
    def conv(self, x, sim, loop=None, keep_spatial=False) -> Op:
        n = len(x) - 1
        out = self.channels(x, sim, loop)
        kernel = self.pick([1, 3, 3, 5]) if not (n == 2 and self.coin(0.1)) else (self.pick([1, 3]), self.pick([1, 3]))
        kw = []
        if keep_spatial:
            ks = each(kernel, n)
            if any(k % 2 == 0 for k in ks):
                kernel = 3
                ks = each(3, n)
            pad = tuple(k // 2 for k in ks)
            if len(set(pad)) == 1:
                pad = pad[0]
            if pad:
                kw.append(("pad", lit(pad)))
        else:
            if self.coin(0.4):
                kw.append(("stride", lit(self.pick([1, 2, 2, 3]))))
            ks = each(kernel, n)
            pad = self.pick([0, max(ks) // 2, min(ks) // 2])
            if pad:
                kw.append(("pad", lit(pad)))
            if self.coin(0.1):
                kw.append(("dilation", lit(2)))
        if self.coin(0.25):
            g = self.pick([2, 3, 4])
            kw.append(("groups", lit(g)))
        if self.coin(0.3):
            kw.append(("bias", lit(False)))
        return Op("conv", (out, lit(kernel)), tuple(kw))

    def pool(self, x, keep_spatial=False) -> Op:
        kind = self.pick([k for k in ("maxpool", "avgpool") if self.ops is None or k in self.ops])
        n = len(x) - 1
        if keep_spatial:
            return Op(kind, (lit(3),), (("stride", lit(1)), ("pad", lit(1))))
        k = self.pick([2, 2, 3])
        kw = []
        if self.coin(0.5):
            kw.append(("stride", lit(self.pick([1, 2]))))
        if self.coin(0.4):
            kw.append(("pad", lit(self.int(0, k // 2))))
        if self.coin(0.4):
            kw.append(("ceil", lit(True)))
        if kind == "maxpool" and self.coin(0.1):
            kw.append(("dilation", lit(2)))
        if kind == "avgpool" and self.coin(0.3):
            kw.append(("count_include_pad", lit(False)))
        return Op(kind, (lit(k),), tuple(kw))

    def simple(self, x, sim, loop=None, keep_spatial=False, keep_channels=False) -> Frag:
        """One op that fits ``x``."""
        if len(x) == 1:  # a vector
            kind = self.pick(self.allowed(["linear", "act", "dropout", "bn", "layernorm"]))
            if kind == "linear" and not keep_channels:
                return Op("linear", (lit(self.int(1, 32)),), (("bias", lit(False)),) if self.coin(0.2) else ())
            if kind == "dropout":
                return Op("dropout", (lit(0.25),))
            if kind == "bn":
                return Op("bn", bare=True)
            if kind == "layernorm":
                return Op("layernorm", bare=True)
            return self.activation()
        kinds = ["conv", "conv", "conv", "bn", "act", "act", "pool", "groupnorm", "dropout", "shuffle", "permute"]
        if not keep_spatial:
            kinds += ["adaptive", "upsample", "pad"]
        if not keep_channels and x[0] >= 2:
            kinds.append("slice")
        if x[0] <= self.max_c:
            kinds.append("lrn")
        kind = self.pick(self.allowed(kinds))
        if kind == "conv":
            if keep_channels:
                return Op("conv", (IN_C if sim.inn == x else lit(x[0]), lit(3)), (("pad", lit(1)),))
            return self.conv(x, sim, loop, keep_spatial)
        if kind == "bn":
            return Op("bn", bare=True)
        if kind == "pool":
            return self.pool(x, keep_spatial)
        if kind == "groupnorm":
            g = self.pick([d for d in (1, 2, 3, 4) if x[0] % d == 0])
            return Op("groupnorm", (lit(g),))
        if kind == "dropout":
            return Op("dropout", (lit(0.1),)) if self.coin() else Op("droppath", (lit(0.8),))
        if kind == "shuffle":
            g = self.pick([d for d in (1, 2, 3) if x[0] % d == 0])
            return Op("channel_shuffle", (lit(g),))
        if kind == "lrn":
            return Op("lrn", (lit(self.pick([2, 3, 5])),))
        if kind == "permute":  # channels last and back, maybe a layernorm over them between
            r = len(x)
            there = Op("permute", tuple(lit(d) for d in (*range(1, r), 0)))
            back = Op("permute", tuple(lit(d) for d in (r - 1, *range(r - 1))))
            return Group(Body([Chain([there, *([Op("layernorm", bare=True)] if self.coin() else []), back])]))
        if kind == "slice":
            d = 0 if keep_spatial or self.coin(0.7) else self.int(1, len(x) - 1)
            if x[d] < 2:
                return self.fallback()
            start = self.int(0, x[d] - 2)
            kw = (("dim", lit(d)),) if d else ()
            if self.coin(0.3):
                kw += (("step", lit(2)),)
            return Op("slice", (lit(start), lit(self.int(start + 1, x[d]))), kw)
        if kind == "adaptive":
            return Op(self.pick(["adaptive_avgpool", "adaptive_maxpool"]), (lit(self.pick([1, 2, 3])),))
        if kind == "upsample":
            return Op("upsample", (), (("scale", lit(2)),)) if max(x[1:]) <= 8 else self.activation()
        if kind == "pad" and len(x) <= 3:  # pad takes inputs of up to 3 dims (torch has no ConstantPad4d)
            return Op("pad", (), (("channels", lit(1)), ("spatial", lit(1))))
        return self.activation()

    # --- items and chains
    def item(self, x, sim, ctx: dict) -> Frag:
        """An item (op, block call, group or join), maybe labelled or repeated, that fits ``x``."""
        for _ in range(8):
            frag = self._item(x, sim, ctx)
            if self.fits(frag, sim, x) is not None:
                return frag
        return self.fallback()

    def _item(self, x, sim, ctx) -> Frag:
        depth = ctx.get("depth", 0)
        keep_spatial, keep_channels = ctx.get("keep_spatial", False), ctx.get("keep_channels", False)
        kinds = ["op"] * 6
        if len(x) >= 2 and depth < self.nest and self.budget > 4:
            kinds += ["group"] + (["join"] if self.joins is None or self.joins else [])
            kinds += ["call", "repeat"] if self.calls else []
        kind = self.pick(kinds)
        self.budget -= 1
        label = self.fresh("l") if ctx.get("labels") and self.coin(0.3) else None
        if kind == "op" or (keep_channels and kind == "group"):
            return Labelled(label, self.simple(x, sim, ctx.get("loop"), keep_spatial, keep_channels))
        inner = dict(ctx, depth=depth + 1)
        if kind == "group":
            return Labelled(label, Group(self.body(x, sim, inner, self.int(1, 3))))
        if kind == "join":
            return Labelled(label, self.join(x, sim, inner))
        if kind == "call":
            return Labelled(label, self.call(x, sim, inner))
        # a repetition of something that keeps the shape (a fixed point)
        n = self.int(0, 3)
        atom = self.pick([Op("conv", (IN_C, lit(3)), (("pad", lit(1)),)), Op("bn", bare=True),
                          self.pick(ACTIVATIONS), Join("residual", Body([Chain([Op("conv", (IN_C, lit(1)))])]))])
        if label and self.coin():
            return Labelled(label, Group(Body([Chain([atom])])), lit(n))  # a labelled repetition: name.0, name.1
        return Labelled(None, atom, lit(n))

    def chain(self, x, sim, ctx, length: int | None = None) -> Chain:
        items = []
        saved, sim.inn = sim.inn, x
        for _ in range(length or self.int(1, 4)):
            if self.budget <= 0 and items:
                break
            frag = self.item(x, sim, ctx)
            y = frag.run(sim, x)
            items.append(frag)
            x = y
        sim.inn = saved
        return Chain(items)

    def statement(self, x, sim, ctx) -> Frag:
        kinds = ["chain"] * 6 + (["let", "assert", "if", "for"] if self.statements else [])
        kind = self.pick(kinds)
        if kind == "let" and len(x) >= 2:
            name = self.fresh("v")
            return Let(name, self.pick([IN_C, lit(self.int(1, 12)), times(IN_C, 2), div(IN_C, 2)]))
        if kind == "assert" and len(x) >= 2:
            return Assert(Expr(f"in.c == {x[0]}", lambda s: s.inn[0] == x[0]))
        if kind == "if" and len(x) >= 2:
            limit = self.int(1, 16)
            cond = Expr(f"in.c > {limit}", lambda s, limit=limit: s.inn[0] > limit)
            then = self.body(x, sim, dict(ctx, depth=ctx.get("depth", 0) + 1), 1)
            other = self.body(x, sim, dict(ctx, depth=ctx.get("depth", 0) + 1), 1) if self.coin() else None
            frag = If(cond, then, other)
            if self.fits(frag, sim, x) is not None:
                return frag
        if kind == "for" and len(x) >= 2 and ctx.get("depth", 0) < 3:
            target = self.fresh("i")
            values = self.pick([Expr(f"range({n})", lambda s, n=n: range(n)) for n in (1, 2, 3)] +
                               [Expr("[1, 2]", lambda s: [1, 2])])
            inner = dict(ctx, labels=False, loop=target, depth=ctx.get("depth", 0) + 1, keep_spatial=True)
            trial = Sim(dict(sim.env, **{target: 0}), x, 0, [], 0)
            frag = For(target, values, Body([self.chain(x, trial, inner, self.int(1, 2))]))
            if ctx.get("labels") and self.coin(0.3):  # a loop of named layers: L1x0, L1x1, ...
                frag.body.stmts[0].items.insert(0, Labelled(f"{self.fresh('L')}x{{{target}}}", Op("identity", bare=True)))
            if self.fits(frag, sim, x) is not None:
                return frag
        return self.chain(x, sim, ctx)

    def body(self, x, sim, ctx, n: int) -> Body:
        stmts = []
        trial = sim.copy()
        for _ in range(n):
            s = self.statement(x, trial.copy(), ctx)
            y = self.fits(s, trial, x)
            if y is None:
                continue
            s.run(trial, x)
            stmts.append(s)
            x = y
        return Body(stmts)

    # --- joins
    def branch_to(self, x, sim, ctx, target: tuple | None) -> Frag:
        """A branch statement keeping the spatial size, ending with `target` channels when given."""
        inner = dict(ctx, keep_spatial=True, labels=ctx.get("labels"))
        for _ in range(6):
            if target == x and self.coin(0.3):
                return Group(Body([]))  # the identity, `{}`
            ch = self.chain(x, Sim(dict(sim.env), x), inner, self.int(1, 3))
            y = self.fits(ch, sim, x)
            if y is None:
                continue
            if target is not None and y != target:
                if y[1:] != target[1:]:
                    continue
                ch.items.append(Op("conv", (lit(target[0]), lit(1))))
            if self.fits(ch, sim, x) is not None:
                return ch
        return Chain([Op("conv", (lit(target[0] if target else x[0]), lit(1)))])

    def join(self, x, sim, ctx) -> Frag:
        kind = self.pick([k for k in ["concat", "add", "add", "mean", "mul", "residual", "dense", "shortcut", "split",
                                      "split", "split", "sub", "stack"] if self.joins is None or self.joins & JOIN_OF[k]])
        n = self.int(1, 3)
        if kind == "split":
            return self.split_join(x, sim, ctx)
        if kind == "sub":  # the input minus a branch of its shape (or a pooled one: it broadcasts)
            other = self.branch_to(x, sim, ctx, x) if self.coin(0.7) else Chain([Op("global_avgpool", bare=True)])
            return Join("sub", Body([Group(Body([])), other]))
        if kind == "stack":  # stacked along a new dim, merged back into the channels
            d = self.pick([0, 1])
            branches = [self.branch_to(x, sim, ctx, x) for _ in range(2)]
            return Group(Body([Chain([Join("stack", Body(branches), dim=d), Op("flatten", (lit(0), lit(1)))])]))
        if kind == "concat":
            loop = self.coin(0.3)
            branches = [self.branch_to(x, sim, ctx, None) for _ in range(n if loop else max(n, 2))]
            if loop:  # a loop of branches
                target = self.fresh("j")
                branches.append(For(target, Expr("range(2)", lambda s: range(2)),
                                    Body([Chain([Op("conv", (plus(lit(2), var(target)), lit(1)))])])))
            return Join("concat", Body(branches))
        if kind in ("add", "mean"):
            target = x if self.coin() else (self.int(1, self.max_c), *x[1:])
            branches = [self.branch_to(x, sim, ctx, target) for _ in range(n + 1)]
            kw = ()
            if kind == "add" and self.coin(0.3):
                kw = (("scale", lit(tuple(round(0.5 + 0.25 * i, 2) for i in range(len(branches))))),)
            elif kind == "add" and self.coin(0.2):
                kw = (("survival", lit(tuple(1.0 if i == 0 else 0.8 for i in range(len(branches))))),)
            elif kind == "mean" and self.coin(0.3):
                kw = (("drop_path", lit(0.25)),)
            return Join(kind, Body(branches), kw)
        if kind == "mul":
            gate = Chain([Op("global_avgpool", bare=True), Op("conv", (lit(max(1, x[0] // 2)), lit(1))),
                          Op("relu", bare=True), Op("conv", (IN_C, lit(1))), Op("sigmoid", bare=True)])
            other = self.branch_to(x, sim, ctx, x) if self.coin(0.3) else Group(Body([]))
            return Join("mul", Body([other, Group(Body([gate]))]))
        if kind == "residual":
            body = self.branch_to(x, sim, dict(ctx, labels=False), x)
            kw = (("survival", lit(0.7)),) if self.coin(0.3) else ()
            return Join("residual", Body([body] if not isinstance(body, Group) else body.body.stmts), kw)
        if kind == "dense":
            target = self.fresh("j")
            growth = self.int(1, 6)
            layer = Chain([Op("bn", bare=True), Op("relu", bare=True),
                           Op("conv", (lit(growth), lit(3)), (("pad", lit(1)), ("bias", lit(False))))])
            label = None
            if ctx.get("labels") and self.coin():
                label = f"{self.fresh('dl')}x{{{target} + 1}}"
            return Join("dense", Body([For(target, Expr(f"range({n})", lambda s, n=n: range(n)),
                                           Body([Chain([Labelled(label, Group(Body([layer])))])]))]))
        # a ResNet unit: a main path and an `if` shortcut that is the identity when shapes agree
        stride = self.pick([1, 2])
        c = self.pick([x[0], self.int(1, self.max_c)])
        main = Chain([Op("conv", (lit(c), lit(3)), (("stride", lit(stride)), ("pad", lit(1)), ("bias", lit(False)))),
                      Op("bn", bare=True), Op("relu", bare=True)])
        cond = Expr(f"{stride} != 1 or in.c != {c}", lambda s: stride != 1 or s.inn[0] != c)
        short = If(cond, Body([Chain([Op("conv", (lit(c), lit(1)), (("stride", lit(stride)),)), Op("bn", bare=True)])]),
                   None)
        return Join("add", Body([main, short]))

    def split_join(self, x, sim, ctx) -> Frag:
        """A join whose branches each take one part of the input: a cross-stage-partial concat
        (an identity part and a worked part), or equal parts along the channels or the last dim."""
        n = self.int(2, 3)
        along = -1 if self.coin(0.25) or x[0] < n else 0
        size = x[along]
        if size < n:
            return self.fallback()
        kind = self.pick([k for k in ["concat", "concat", "add", "mean"] if self.joins is None or k in self.joins]
                         or ["concat"])
        if along == 0 and kind == "concat" and (size % n or self.coin(0.5)):  # explicit sizes, odd ones too
            cuts = self.source.cuts(size, n) if size > n else list(range(1, n))
            sizes = tuple(b - a for a, b in zip([0] + cuts, cuts + [size]))
        elif size % n == 0:
            sizes = True
        else:
            return self.fallback()
        parts = Join(kind, Body([Group(Body([]))] * n), split=sizes, split_dim=along).parts(x, n)
        if kind == "concat" and along == 0:
            branches = [Group(Body([]))] + [self.branch_to(p, sim, ctx, None) for p in parts[1:]]
        else:  # the same shape out of every branch (a last-dim split keeps every channel count)
            target = parts[0] if along or self.coin() else (self.int(1, self.max_c), *parts[0][1:])
            branches = [self.branch_to(p, sim, ctx, target) for p in parts]
        return Join(kind, Body(branches), split=sizes, split_dim=along, dim=-1 if along and kind == "concat" else None)

    # --- blocks
    def call(self, x, sim, ctx) -> Frag:
        """A call of an existing block that fits here, or of a new one."""
        for b in self.blocks:
            if self.coin(0.6):
                frag = Call(b, (lit(self.int(1, self.max_c)),), (("stride", lit(self.pick([1, 2]))),)
                            if self.coin(0.5) else ())
                if self.fits(frag, sim, x) is not None:
                    return frag
        name = self.fresh("blk")
        params = [("c", None), ("stride", lit(1))]
        if self.coin(0.4):
            params.append(("width", Expr("in.c", lambda s: s.inn[0])))  # a default computed from the input
        c = self.int(1, self.max_c)
        env = {"c": c, "stride": 1, **({"width": x[0]} if len(params) == 3 else {})}
        inner = Sim(env, x)
        first = Chain([Op("conv", (var("c"), lit(3)), (("stride", var("stride")), ("pad", lit(1))))])
        after = self.fits(first, Sim(dict(env), x), x)
        if after is None:  # too big a tensor here
            return self.fallback()
        rest = self.body(after, inner,
                         {"labels": True, "depth": ctx.get("depth", 0) + 1}, self.int(0, 2))
        block = BlockDef(name, params, Body([first] + rest.stmts))
        self.blocks.append(block)
        return Call(block, (lit(c),))


# ----------------------------------------------------------------------------- whole specs

@dataclass
class GenSpec:
    text: str
    input: tuple
    outputs: list      # [(name, shape, train_only)] in the network's output order
    params: int
    ops: int

    def __repr__(self) -> str:  # Hypothesis prints the failing example: show the spec itself
        return f"GenSpec(input={self.input}, outputs={self.outputs}, params={self.params})\n{self.text}"


def random_spec(source, max_ops: int = 40) -> GenSpec:
    """A random valid spec: input, stem, body statements (with binds, skips and taps), head."""
    g = Gen(source, max_ops)
    rank = g.pick([1, 2, 2, 2, 2, 3])
    size = {1: (4, 24), 2: (4, 20), 3: (3, 6)}[rank]
    x = (g.int(1, 6), *(g.int(*size) for _ in range(rank)))
    if rank == 2 and g.coin():
        x = (x[0], x[1], x[1])
    sim = Sim()
    stmts: list[Frag] = []
    names: list[tuple[str, tuple]] = []  # named tensors, for long skips and outputs
    taps: list[str] = []
    ctx = {"labels": True, "depth": 0}
    cur = x
    for _ in range(g.int(1, 6)):
        if g.budget <= 0:
            break
        choice = g.pick(["stmt", "stmt", "stmt", "bind", "skip", "tap", "split"])
        frag = None
        if choice == "split" and len(cur) >= 2:  # a split join at the top, where the budget allows one
            frag = Chain([g.split_join(cur, sim, ctx)])
        elif choice == "bind":
            name = g.fresh("t")
            frag = Bind(name, g.chain(cur, Sim(dict(sim.env), cur), ctx))
            names.append(name)
        elif choice == "skip" and names:
            name = g.pick(names)
            kind = g.pick(["concat", "add", "continue"])
            if kind == "continue":
                frag = Chain([Ref(name)] + ([g.item(sim.env["@" + name], sim, ctx)] if g.coin() else []))
            else:
                frag = Chain([Join(kind, Body([Group(Body([])), Chain([Ref(name)])]))])
        elif choice == "tap" and len(cur) >= 2:
            label = g.fresh("aux")
            frag = Tap(label, g.coin(), Chain([Op("global_avgpool", bare=True), Op("flatten", bare=True),
                                                          Op("linear", (lit(g.int(1, 5)),))]))
            taps.append(label)
        if frag is None or g.fits(frag, sim, cur) is None:
            frag = g.statement(cur, sim.copy(), ctx)
            if g.fits(frag, sim, cur) is None:
                continue
        cur = frag.run(sim, cur)
        stmts.append(frag)
    if len(cur) >= 2 and g.coin():  # a classifier head
        head = Chain([Op(g.pick(["global_avgpool", "global_maxpool"]), bare=True),
                      Op("flatten", bare=True), Op("linear", (lit(g.int(1, 10)),))])
        cur = head.run(sim, cur)
        stmts.append(head)
    out_stmt = None
    if (names or taps) and g.coin():  # an explicit `output` statement
        final = g.fresh("final")
        last = stmts.pop() if stmts and isinstance(stmts[-1], Chain) else None
        bind = Bind(final, last if last is not None else Chain([Op("identity", bare=True)]))
        stmts.append(bind)
        out_stmt = [final] + [n for n in names + taps if g.coin()]

    # blocks first, then the network; one final simulation from scratch gives the predictions
    body = Body(stmts + ([_Output(out_stmt)] if out_stmt else []))
    text = "".join(b.text() + "\n\n" for b in g.blocks)
    text += f"network gen() {{\n    input image: {list(x)}\n"
    text += "".join(f"    {s.text('    ')}\n" for s in body.stmts) + "}\n"

    final_sim = Sim()
    try:
        y = body.run(final_sim, x)
    except (Invalid, KeyError) as e:  # a variable from a fragment that was tried and dropped: rare
        raise Invalid(f"a dropped fragment's variable: {e}") from e
    taps_seen = {name: (shape, train) for name, shape, train in final_sim.taps}
    if out_stmt:
        outputs = [(n, final_sim.env["@" + n], taps_seen.get(n, (None, False))[1]) for n in out_stmt]
    else:
        outputs = [("out", y, False)] + [(n, s, t) for n, (s, t) in taps_seen.items()]
    return GenSpec(text, x, outputs, final_sim.params, final_sim.ops)


@dataclass
class _Output(Frag):
    names: list

    def text(self, ind):
        return "output " + ", ".join(self.names)

    def run(self, sim, x):
        return x
