"""The generator's own model of the language: fragments that know their text and their shapes.

Each fragment is a small tree with ``text()`` (its .arch source) and ``run(sim, x)`` (its
effect on a shape). ``in`` is the input of the innermost enclosing statement, as in the
language; the simulator (:class:`Sim`) tracks it, with the variables bound by blocks, loops
and lets. The rules (``RULES``: PyTorch's shape rules and parameter counts) are written here
independently of ``archdsl/ops``, so the tests can hold the elaborator to them as well as to
torch. Nothing here reads a spec: this is the generator's side of the comparison.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

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
