"""A grammar-driven Hypothesis strategy for random VALID .arch specs (used by test_generated.py).

``specs()`` draws a whole file: blocks with parameters (called with different arguments and
input shapes), chains of ops (conv with random kernel / stride / padding / dilation / groups
dividing the channels, pools with ceil modes, norms, activations, dropout, ...), joins
(concat, add and mean with matching shapes, mul gating, dense blocks, residuals, add with
per-branch scale and survival, mean with drop-path, sub, stack merged back by flatten, split
joins whose branches take parts of the input, equal or of odd sizes, along the channels or
the last dim), layout ops (permute to channels-last and back, slices), repetitions, for loops,
if/else, lets and asserts, named tensors with long skips, taps (extra outputs) and `output`.

Valid by construction: the generator keeps its own model of every construct (PyTorch's
shape rules and parameter counts, written here independently of archdsl/ops.py) and
emits a fragment only after simulating it on the shape that flows into it. What it
predicts (every output's shape, the parameter count) is part of the drawn value, so a
test can check archdsl against it as well as against torch.

Each fragment is a small tree with ``text()`` (its .arch source) and ``run(sim, x)`` (its
effect on a shape). ``in`` is the input of the innermost enclosing statement, as in the
language; the simulator tracks it, with the variables bound by blocks, loops and lets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import reject
from hypothesis import strategies as st


class Invalid(Exception):
    """A fragment that does not fit where it was tried (the generator then tries another)."""


# ----------------------------------------------------------------------------- expressions

@dataclass(frozen=True)
class Expr:
    """An expression of the language: its text and its value in a simulation."""

    text: str
    fn: object  # (Sim) -> value

    def __call__(self, sim):
        return self.fn(sim)


def lit(v) -> Expr:
    text = "true" if v is True else "false" if v is False else repr(list(v)) if isinstance(v, tuple) else repr(v)
    return Expr(text, lambda sim: v)


def var(name: str) -> Expr:
    return Expr(name, lambda sim: sim.env[name])


IN_C = Expr("in.c", lambda sim: sim.inn[0])


def times(e: Expr, k: int) -> Expr:
    return Expr(f"{e.text} * {k}", lambda sim: e(sim) * k)


def div(e: Expr, k: int) -> Expr:
    return Expr(f"{e.text} // {k}", lambda sim: e(sim) // k)


def plus(e: Expr, f: Expr) -> Expr:
    return Expr(f"{e.text} + {f.text}", lambda sim: e(sim) + f(sim))


# ----------------------------------------------------------------------------- the simulator

@dataclass
class Sim:
    """Where a simulation is: variables, the statement's input, named tensors, totals."""

    env: dict = field(default_factory=dict)
    inn: tuple | None = None
    params: int = 0
    taps: list = field(default_factory=list)      # (name, shape, train_only)
    ops: int = 0

    def copy(self) -> "Sim":
        """A scratch copy for trying a fragment: its variables, nothing counted."""
        return Sim(dict(self.env), self.inn, 0, [], 0)


def conv_out(size: int, k: int, s: int, p: int, d: int, ceil: bool = False) -> int:
    """PyTorch's output length of a sliding window (Conv2d / MaxPool2d documentation)."""
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    if not ceil:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def each(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


# ----------------------------------------------------------------------------- fragments

class Frag:
    def text(self, ind: str) -> str:
        raise NotImplementedError

    def run(self, sim: Sim, x):
        raise NotImplementedError


@dataclass
class Op(Frag):
    """An op call. ``args`` / ``kwargs`` are Exprs; the shape rule is ``RULES[name]``."""

    name: str
    args: tuple = ()
    kwargs: tuple = ()  # ((key, Expr), ...)
    bare: bool = False

    def text(self, ind):
        if self.bare:
            return self.name
        parts = [a.text for a in self.args] + [f"{k}={v.text}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"

    def run(self, sim, x):
        if x is None:
            raise Invalid("nothing flows in")
        args = [a(sim) for a in self.args]
        kwargs = {k: v(sim) for k, v in self.kwargs}
        shape, params = RULES[self.name](x, *args, **kwargs)
        if any(not isinstance(s, int) or s < 1 for s in shape) or math.prod(shape) > 2**20:
            raise Invalid(f"{self.name} gives {shape}")
        sim.params += params
        sim.ops += 1
        return tuple(shape)


@dataclass
class Labelled(Frag):
    label: str | None
    atom: Frag
    repeat: Expr | None = None

    def text(self, ind):
        t = self.atom.text(ind)
        if self.label:
            t = f"{self.label}: {t}"
        if self.repeat is not None:
            t += f" * {self.repeat.text}"
        return t

    def run(self, sim, x):
        if self.repeat is None:
            return self.atom.run(sim, x)
        n = self.repeat(sim)
        if not isinstance(n, int) or n < 0:
            raise Invalid("repeat count")
        for _ in range(n):
            x = self.atom.run(sim, x)
        return x


@dataclass
class Chain(Frag):
    """A statement: items joined by `->`; `in` is its input."""

    items: list

    def text(self, ind):
        return " -> ".join(i.text(ind) for i in self.items)

    def run(self, sim, x):
        saved, sim.inn = sim.inn, x
        for item in self.items:
            x = item.run(sim, x)
        sim.inn = saved
        return x


@dataclass
class Body(Frag):
    """Statements, one a line (a group's, a block's, a loop's or a join's body)."""

    stmts: list

    def text(self, ind):
        if not self.stmts:
            return "{}"
        inner = ind + "    "
        return "{\n" + "".join(f"{inner}{s.text(inner)}\n" for s in self.stmts) + ind + "}"

    def run(self, sim, x):
        for s in self.stmts:
            x = s.run(sim, x)
        return x


@dataclass
class Let(Frag):
    name: str
    value: Expr

    def text(self, ind):
        return f"let {self.name} = {self.value.text}"

    def run(self, sim, x):
        saved, sim.inn = sim.inn, x
        sim.env[self.name] = self.value(sim)
        sim.inn = saved
        return x


@dataclass
class Assert(Frag):
    cond: Expr

    def text(self, ind):
        return f'assert {self.cond.text}, "generated"'

    def run(self, sim, x):
        saved, sim.inn = sim.inn, x
        ok = self.cond(sim)
        sim.inn = saved
        if not ok:
            raise Invalid("assertion")
        return x


@dataclass
class If(Frag):
    cond: Expr
    then: Body
    other: Body | None

    def text(self, ind):
        t = f"if {self.cond.text} {self.then.text(ind)}"
        return t + (f" else {self.other.text(ind)}" if self.other is not None else "")

    def run(self, sim, x):
        saved, sim.inn = sim.inn, x
        take = self.cond(sim)
        sim.inn = saved
        arm = self.then if take else self.other
        return x if arm is None else arm.run(sim, x)


@dataclass
class For(Frag):
    target: str
    values: Expr
    body: Body

    def text(self, ind):
        return f"for {self.target} in {self.values.text} {self.body.text(ind)}"

    def run(self, sim, x):
        saved, sim.inn = sim.inn, x
        values = list(self.values(sim))
        sim.inn = saved
        for v in values:
            sim.env[self.target] = v
            x = self.body.run(sim, x)
        return x


@dataclass
class Join(Frag):
    """concat / add / mean / mul / residual / dense; each statement of the body is a branch
    (each iteration of a loop in it too), `{}` is the identity."""

    kind: str
    body: Body
    kwargs: tuple = ()      # per-branch lists (scale, survival, drop_path)
    split: object = None    # None, True (equal parts) or a tuple of sizes along `split_dim`
    split_dim: int = 0
    dim: int | None = None  # concat's and stack's

    def text(self, ind):
        kw = [f"{k}={v.text}" for k, v in self.kwargs]
        if self.split is not None:
            kw.append(f"split={lit(self.split).text}")
            if self.split_dim:
                kw.append(f"split_dim={self.split_dim}")
        if self.dim is not None:
            kw.append(f"dim={self.dim}")
        args = f"({', '.join(kw)})" if kw else ""
        return f"{self.kind}{args} {self.body.text(ind)}"

    def branches(self, sim, x):
        """Each branch's output; a split join gives branch i the i-th part of ``x`` (the branches
        are counted first, as the language does)."""
        work = []  # (statement, loop target, value) in order
        for s in self.body.stmts:
            if isinstance(s, For):
                saved, sim.inn = sim.inn, x
                values = list(s.values(sim))
                sim.inn = saved
                work += [(s, v) for v in values]
            elif isinstance(s, (Let, Assert)):
                s.run(sim, x)
            else:
                work.append((s, None))
        parts = self.parts(x, len(work))
        outs = []
        for (s, v), part in zip(work, parts):
            if isinstance(s, For):
                sim.env[s.target] = v
                outs.append(yield_run(s.body, sim, part))
            else:
                outs.append(yield_run(s, sim, part))
        return outs

    def parts(self, x, n: int) -> list:
        if self.split is None:
            return [x] * n
        d = self.split_dim % len(x)
        sizes = [x[d] // n] * n if self.split is True else list(self.split)
        if n == 0 or len(sizes) != n or sum(sizes) != x[d] or min(sizes) < 1 or (
                self.split is True and x[d] % n):
            raise Invalid("split does not fit")
        return [(*x[:d], k, *x[d + 1:]) for k in sizes]

    def run(self, sim, x):
        if self.kind == "residual":
            y = self.body.run(sim, x)
            if y != x:
                raise Invalid("residual body changes the shape")
            return x
        if self.kind == "dense":
            feats = [x]
            for s in self.body.stmts:
                assert isinstance(s, For)
                saved, sim.inn = sim.inn, x
                values = list(s.values(sim))
                sim.inn = saved
                for v in values:
                    sim.env[s.target] = v
                    inp = concat_shape(feats)
                    y = s.body.run(sim, inp)
                    if y[1:] != x[1:]:
                        raise Invalid("dense layer changes the spatial size")
                    feats.append(y)
            if len(feats) == 1:
                raise Invalid("empty dense")
            return concat_shape(feats)
        written = [s for s in self.body.stmts if not isinstance(s, (Let, Assert))]
        if len(written) == 1 and not isinstance(written[0], For):
            raise Invalid("a join of one branch")
        outs = self.branches(sim, x)
        if not outs:
            raise Invalid("no branches")
        for k, v in self.kwargs:
            if len(v(sim)) != len(outs):
                raise Invalid("per-branch list of the wrong length")
        if self.kind == "concat":
            return concat_shape(outs, self.dim or 0)
        if self.kind in ("mul", "sub"):
            if self.kind == "sub" and len(outs) != 2:
                raise Invalid("sub of other than two branches")
            out = outs[0]
            for o in outs[1:]:
                if len(o) != len(out) or any(p != q and 1 not in (p, q) for p, q in zip(o, out)):
                    raise Invalid(f"{self.kind} does not broadcast")
                out = tuple(q if p == 1 else p for p, q in zip(o, out))
            return out
        if any(o != outs[0] for o in outs):
            raise Invalid(f"{self.kind} inputs differ")
        if self.kind == "stack":
            d = (self.dim or 0) % (len(outs[0]) + 1)
            return (*outs[0][:d], len(outs), *outs[0][d:])
        return outs[0]


def yield_run(stmt, sim, x):
    y = stmt.run(sim, x)
    return x if y is None else y


def concat_shape(shapes, dim: int = 0):
    first = shapes[0]
    d = dim % len(first)
    if any(len(s) != len(first) or s[:d] + s[d + 1:] != first[:d] + first[d + 1:] for s in shapes):
        raise Invalid("concat sizes differ outside its dim")
    return (*first[:d], sum(s[d] for s in shapes), *first[d + 1:])


@dataclass
class Group(Frag):
    body: Body

    def text(self, ind):
        return self.body.text(ind)

    def run(self, sim, x):
        return self.body.run(sim, x)


@dataclass
class Bind(Frag):
    name: str
    chain: Chain

    def text(self, ind):
        return f"{self.name} = {self.chain.text(ind)}"

    def run(self, sim, x):
        y = self.chain.run(sim, x)
        sim.env["@" + self.name] = y
        return y


@dataclass
class Ref(Frag):
    name: str

    def text(self, ind):
        return f"@{self.name}"

    def run(self, sim, x):
        return sim.env["@" + self.name]


@dataclass
class Tap(Frag):
    label: str
    train_only: bool
    chain: Chain

    def text(self, ind):
        opt = "(train_only=true)" if self.train_only else ""
        return f"{self.label}: tap{opt} {{ {self.chain.text(ind)} }}"

    def run(self, sim, x):
        y = Body([self.chain]).run(sim, x)
        sim.taps.append((self.label, y, self.train_only))
        sim.env["@" + self.label] = y
        return x


@dataclass
class BlockDef:
    name: str
    params: list            # [(name, default Expr | None)]
    body: Body

    def text(self) -> str:
        ps = ", ".join(n if d is None else f"{n} = {d.text}" for n, d in self.params)
        return f"block {self.name}({ps}) {self.body.text('')}"


@dataclass
class Call(Frag):
    block: BlockDef
    args: tuple = ()      # positional Exprs
    kwargs: tuple = ()    # ((name, Expr), ...)

    def text(self, ind):
        parts = [a.text for a in self.args] + [f"{k}={v.text}" for k, v in self.kwargs]
        return f"{self.block.name}({', '.join(parts)})"

    def run(self, sim, x):
        if x is None or len(self.args) > len(self.block.params):
            raise Invalid("block call")
        values = {}
        for (name, _), a in zip(self.block.params, self.args):
            values[name] = a(sim)
        for k, v in self.kwargs:
            values[k] = v(sim)
        inner = Sim({}, x, sim.params, sim.taps, sim.ops)  # a block sees its parameters only
        for name, default in self.block.params:
            if name not in values:
                values[name] = default(inner)
            inner.env[name] = values[name]
        inner.inn = None
        y = self.block.body.run(inner, x)
        sim.params, sim.ops = inner.params, inner.ops
        return x if y is None else y


# ----------------------------------------------------------------------------- shape and parameter rules

def _conv(x, out, kernel, stride=1, pad=0, dilation=1, groups=1, bias=True):
    c, sizes = x[0], x[1:]
    n = len(sizes)
    if n < 1 or c % groups or out % groups:
        raise Invalid("conv groups / rank")
    k, s, p, d = each(kernel, n), each(stride, n), each(pad, n), each(dilation, n)
    if not (len(k) == len(s) == len(p) == len(d) == n):
        raise Invalid("conv tuple lengths")
    shape = (out, *(conv_out(*t) for t in zip(sizes, k, s, p, d)))
    return shape, out * (c // groups) * math.prod(k) + (out if bias else 0)


def _pool(x, kernel, stride=None, pad=0, dilation=1, ceil=False, count_include_pad=True, avg=False):
    c, sizes = x[0], x[1:]
    n = len(sizes)
    if n < 1:
        raise Invalid("pool on a vector")
    k = each(kernel, n)
    s = k if stride is None else each(stride, n)
    p, d = each(pad, n), each(dilation, n)
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        raise Invalid("pool padding over half the kernel")
    if avg and n == 3 and any(i < kk for i, kk in zip(sizes, k)):
        raise Invalid("avg_pool3d input smaller than the kernel")
    return (c, *(conv_out(*t, ceil) for t in zip(sizes, k, s, p, d))), 0


def _same(x, *a, **k):
    return x, 0


def _bn(x, **k):
    return x, 2 * x[0]


def _groupnorm(x, groups):
    if x[0] % groups:
        raise Invalid("groupnorm groups")
    return x, 2 * x[0]


def _layernorm(x):
    return x, 2 * x[-1]


def _linear(x, out, bias=True):
    if len(x) != 1:
        raise Invalid("linear needs a vector")
    return (out,), x[0] * out + (out if bias else 0)


def _adaptive(x, size):
    if len(x) < 2:
        raise Invalid("adaptive pool on a vector")
    return (x[0], *each(size, len(x) - 1)), 0


def _global(x):
    if len(x) < 2:
        raise Invalid("global pool on a vector")
    return (x[0], *(1,) * (len(x) - 1)), 0


def _flatten(x, start=0, end=-1):
    s, e = start % len(x), end % len(x)
    if s > e:
        raise Invalid("flatten backwards")
    return (*x[:s], math.prod(x[s:e + 1]), *x[e + 1:]), 0


def _permute(x, *dims):
    if sorted(d % len(x) for d in dims) != list(range(len(x))):
        raise Invalid("permute dims")
    return tuple(x[d] for d in dims), 0


def _slice(x, start, end=None, dim=0, step=1):
    d = dim % len(x)
    n = len(range(*slice(start, end, step).indices(x[d])))
    return (*x[:d], n, *x[d + 1:]), 0


def _upsample(x, scale):
    if len(x) < 2:
        raise Invalid("upsample on a vector")
    return (x[0], *(int(math.floor(s * scale)) for s in x[1:])), 0


def _shuffle(x, groups):
    if len(x) < 2 or x[0] % groups:
        raise Invalid("channel_shuffle groups")
    return x, 0


def _pad(x, channels=0, spatial=0):
    if len(x) < 2:
        raise Invalid("pad on a vector")
    return (x[0] + 2 * channels, *(s + 2 * spatial for s in x[1:])), 0


def _lrn(x, size):
    if len(x) < 2:
        raise Invalid("lrn on a vector")
    return x, 0


RULES = {
    "conv": _conv, "maxpool": _pool, "avgpool": lambda x, *a, **k: _pool(x, *a, avg=True, **k),
    "bn": _bn, "groupnorm": _groupnorm, "layernorm": _layernorm, "linear": _linear, "lrn": _lrn,
    "adaptive_avgpool": _adaptive, "adaptive_maxpool": _adaptive, "global_avgpool": _global,
    "global_maxpool": _global, "flatten": _flatten, "upsample": _upsample, "channel_shuffle": _shuffle,
    "pad": _pad, "relu": _same, "relu6": _same, "leaky_relu": _same, "gelu": _same, "silu": _same,
    "sigmoid": _same, "tanh": _same, "hardswish": _same, "softmax": _same, "dropout": _same, "droppath": _same,
    "identity": _same, "permute": _permute, "slice": _slice,
}

ACTIVATIONS = [Op("relu", bare=True), Op("relu6", bare=True), Op("gelu", bare=True), Op("silu", bare=True),
               Op("sigmoid", bare=True), Op("tanh", bare=True), Op("hardswish", bare=True),
               Op("leaky_relu", kwargs=(("slope", lit(0.2)),)), Op("softmax", kwargs=(("dim", lit(0)),)),
               Op("identity", bare=True)]


# ----------------------------------------------------------------------------- the generator

MAX_C = 24      # channels stay small, so torch runs every drawn network in milliseconds


class Gen:
    """Draws fragments that fit the shape flowing into them."""

    def __init__(self, draw, budget: int):
        self.draw = draw
        self.budget = budget      # ops still to emit (roughly)
        self.counter = 0
        self.blocks: list[BlockDef] = []

    # --- helpers
    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def coin(self, p: float = 0.5) -> bool:
        return self.draw(st.floats(0, 1)) < p

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

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
                and not k.startswith("@") and 1 <= v <= MAX_C]
        if ints:
            options.append("var")
        kind = self.pick(options)
        if kind == "in" and sim.inn is not None and len(sim.inn) >= 2:
            return IN_C
        if kind == "double" and sim.inn is not None and len(sim.inn) >= 2 and sim.inn[0] * 2 <= MAX_C:
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
        kind = self.pick(["maxpool", "avgpool"])
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
            kind = self.pick(["linear", "act", "dropout", "bn", "layernorm"])
            if kind == "linear" and not keep_channels:
                return Op("linear", (lit(self.int(1, 32)),), (("bias", lit(False)),) if self.coin(0.2) else ())
            if kind == "dropout":
                return Op("dropout", (lit(0.25),))
            if kind == "bn":
                return Op("bn", bare=True)
            if kind == "layernorm":
                return Op("layernorm", bare=True)
            return self.pick(ACTIVATIONS)
        kinds = ["conv", "conv", "conv", "bn", "act", "act", "pool", "groupnorm", "dropout", "shuffle", "permute"]
        if not keep_spatial:
            kinds += ["adaptive", "upsample", "pad"]
        if not keep_channels and x[0] >= 2:
            kinds.append("slice")
        if x[0] <= MAX_C:
            kinds.append("lrn")
        kind = self.pick(kinds)
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
                return Op("relu", bare=True)
            start = self.int(0, x[d] - 2)
            kw = (("dim", lit(d)),) if d else ()
            if self.coin(0.3):
                kw += (("step", lit(2)),)
            return Op("slice", (lit(start), lit(self.int(start + 1, x[d]))), kw)
        if kind == "adaptive":
            return Op(self.pick(["adaptive_avgpool", "adaptive_maxpool"]), (lit(self.pick([1, 2, 3])),))
        if kind == "upsample":
            return Op("upsample", (), (("scale", lit(2)),)) if max(x[1:]) <= 8 else Op("relu", bare=True)
        if kind == "pad" and len(x) <= 3:  # pad takes inputs of up to 3 dims (torch has no ConstantPad4d)
            return Op("pad", (), (("channels", lit(1)), ("spatial", lit(1))))
        return self.pick(ACTIVATIONS)

    # --- items and chains
    def item(self, x, sim, ctx: dict) -> Frag:
        """An item (op, block call, group or join), maybe labelled or repeated, that fits ``x``."""
        for _ in range(8):
            frag = self._item(x, sim, ctx)
            if self.fits(frag, sim, x) is not None:
                return frag
        return Op("relu", bare=True)

    def _item(self, x, sim, ctx) -> Frag:
        depth = ctx.get("depth", 0)
        keep_spatial, keep_channels = ctx.get("keep_spatial", False), ctx.get("keep_channels", False)
        kinds = ["op"] * 6
        if len(x) >= 2 and depth < 3 and self.budget > 4:
            kinds += ["join", "group", "call", "repeat"]
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
        kinds = ["chain"] * 6 + ["let", "assert", "if", "for"]
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
        kind = self.pick(["concat", "add", "add", "mean", "mul", "residual", "dense", "shortcut", "split", "split",
                          "split", "sub", "stack"])
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
            target = x if self.coin() else (self.int(1, MAX_C), *x[1:])
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
        c = self.pick([x[0], self.int(1, MAX_C)])
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
            return Op("relu", bare=True)
        kind = self.pick(["concat", "concat", "add", "mean"])
        if along == 0 and kind == "concat" and (size % n or self.coin(0.5)):  # explicit sizes, odd ones too
            cuts = sorted(self.draw(st.lists(st.integers(1, size - 1), min_size=n - 1, max_size=n - 1,
                                             unique=True))) if size > n else list(range(1, n))
            sizes = tuple(b - a for a, b in zip([0] + cuts, cuts + [size]))
        elif size % n == 0:
            sizes = True
        else:
            return Op("relu", bare=True)
        parts = Join(kind, Body([Group(Body([]))] * n), split=sizes, split_dim=along).parts(x, n)
        if kind == "concat" and along == 0:
            branches = [Group(Body([]))] + [self.branch_to(p, sim, ctx, None) for p in parts[1:]]
        else:  # the same shape out of every branch (a last-dim split keeps every channel count)
            target = parts[0] if along or self.coin() else (self.int(1, MAX_C), *parts[0][1:])
            branches = [self.branch_to(p, sim, ctx, target) for p in parts]
        return Join(kind, Body(branches), split=sizes, split_dim=along, dim=-1 if along and kind == "concat" else None)

    # --- blocks
    def call(self, x, sim, ctx) -> Frag:
        """A call of an existing block that fits here, or of a new one."""
        for b in self.blocks:
            if self.coin(0.6):
                frag = Call(b, (lit(self.int(1, MAX_C)),), (("stride", lit(self.pick([1, 2]))),)
                            if self.coin(0.5) else ())
                if self.fits(frag, sim, x) is not None:
                    return frag
        name = self.fresh("blk")
        params = [("c", None), ("stride", lit(1))]
        if self.coin(0.4):
            params.append(("width", Expr("in.c", lambda s: s.inn[0])))  # a default computed from the input
        c = self.int(1, MAX_C)
        env = {"c": c, "stride": 1, **({"width": x[0]} if len(params) == 3 else {})}
        inner = Sim(env, x)
        first = Chain([Op("conv", (var("c"), lit(3)), (("stride", var("stride")), ("pad", lit(1))))])
        after = self.fits(first, Sim(dict(env), x), x)
        if after is None:  # too big a tensor here
            return Op("relu", bare=True)
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


@st.composite
def specs(draw, max_ops: int = 40) -> GenSpec:
    """A random valid spec: input, stem, body statements (with binds, skips and taps), head."""
    g = Gen(draw, max_ops)
    rank = draw(st.sampled_from([1, 2, 2, 2, 2, 3]))
    size = {1: (4, 24), 2: (4, 20), 3: (3, 6)}[rank]
    x = (draw(st.integers(1, 6)), *(draw(st.integers(*size)) for _ in range(rank)))
    if rank == 2 and draw(st.booleans()):
        x = (x[0], x[1], x[1])
    sim = Sim()
    stmts: list[Frag] = []
    names: list[tuple[str, tuple]] = []  # named tensors, for long skips and outputs
    taps: list[str] = []
    ctx = {"labels": True, "depth": 0}
    cur = x
    for _ in range(draw(st.integers(1, 6))):
        if g.budget <= 0:
            break
        choice = draw(st.sampled_from(["stmt", "stmt", "stmt", "bind", "skip", "tap", "split"]))
        frag = None
        if choice == "split" and len(cur) >= 2:  # a split join at the top, where the budget allows one
            frag = Chain([g.split_join(cur, sim, ctx)])
        elif choice == "bind":
            name = g.fresh("t")
            frag = Bind(name, g.chain(cur, Sim(dict(sim.env), cur), ctx))
            names.append(name)
        elif choice == "skip" and names:
            name = draw(st.sampled_from(names))
            kind = draw(st.sampled_from(["concat", "add", "continue"]))
            if kind == "continue":
                frag = Chain([Ref(name)] + ([g.item(sim.env["@" + name], sim, ctx)] if draw(st.booleans()) else []))
            else:
                frag = Chain([Join(kind, Body([Group(Body([])), Chain([Ref(name)])]))])
        elif choice == "tap" and len(cur) >= 2:
            label = g.fresh("aux")
            frag = Tap(label, draw(st.booleans()), Chain([Op("global_avgpool", bare=True), Op("flatten", bare=True),
                                                          Op("linear", (lit(draw(st.integers(1, 5))),))]))
            taps.append(label)
        if frag is None or g.fits(frag, sim, cur) is None:
            frag = g.statement(cur, sim.copy(), ctx)
            if g.fits(frag, sim, cur) is None:
                continue
        cur = frag.run(sim, cur)
        stmts.append(frag)
    if len(cur) >= 2 and draw(st.booleans()):  # a classifier head
        head = Chain([Op(draw(st.sampled_from(["global_avgpool", "global_maxpool"])), bare=True),
                      Op("flatten", bare=True), Op("linear", (lit(draw(st.integers(1, 10))),))])
        cur = head.run(sim, cur)
        stmts.append(head)
    out_stmt = None
    if (names or taps) and draw(st.booleans()):  # an explicit `output` statement
        final = g.fresh("final")
        last = stmts.pop() if stmts and isinstance(stmts[-1], Chain) else None
        bind = Bind(final, last if last is not None else Chain([Op("identity", bare=True)]))
        stmts.append(bind)
        out_stmt = [final] + [n for n in names + taps if draw(st.booleans())]

    # blocks first, then the network; one final simulation from scratch gives the predictions
    body = Body(stmts + ([_Output(out_stmt)] if out_stmt else []))
    text = "".join(b.text() + "\n\n" for b in g.blocks)
    text += f"network gen() {{\n    input image: {list(x)}\n"
    text += "".join(f"    {s.text('    ')}\n" for s in body.stmts) + "}\n"

    final_sim = Sim()
    try:
        y = body.run(final_sim, x)
    except (Invalid, KeyError) as e:  # a variable from a fragment that was tried and dropped: rare
        reject()
        raise AssertionError from e
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
