"""Evaluate: the language's own closed expression evaluator and its builtins.

Every expression of a spec (a `let`, an argument, a condition, a label's ``{i}``, a
``--set`` value) is evaluated here, never by Python: values are ints, floats, bools,
strings, none, lists, tuples, dicts, ranges, tensors (their shape), op and block values
and the builtins below. Each node kind has one handler (``_const``, ``_binary``, ...),
picked by the ``_EVAL`` table; a new kind of expression gets a handler and a row there
(and its words in ``elaborate._NESTING_WORDS``, for E086).

:class:`Evaluator` holds the limits and the step budget; the elaborator is one
(``Elaborator`` inherits it), so statements and expressions charge one counter.
Every check that refuses a value (too large, too long, nested too deeply) is here,
before the value is built.
"""
from __future__ import annotations

import inspect
import math
import operator
from dataclasses import dataclass, field, replace
from functools import lru_cache

from . import syntax as A
from .errors import ElaborationError, LimitError, Limits, Span, did_you_mean
from .loader import ModuleScope
from .ops import ALIASES, OPS
from .values import BlockRef, Domain, Equality, OpRef, Tensor, describe, order, show, type_name

_MISSING = object()
PLUGIN_HINT = "ops from Python plugins need `--plugin NAME` (`plugins=[...]` in Python)"


def user_ops() -> list[str]:
    """The ops a spec may call: the registry's, plugins loaded by then included."""
    return sorted(n for n in OPS if n not in ("input", "param"))


class _Oops(Exception):
    """A problem inside a builtin; the caller adds the span."""

    def __init__(self, code: str, message: str, hint: str | None = None, cls=ElaborationError):
        super().__init__(message)
        self.code, self.message, self.hint, self.cls = code, message, hint, cls


class _TooDeep(LimitError):
    """The Python stack ran out. Raised where it did; each elaboration frame it passes on its way
    out adds its node to ``path`` (innermost first), so ``elaborate`` can say what nested
    (``elaborate._explain``)."""

    def __init__(self, node, ctx):
        super().__init__("E086", "the spec nests too deeply to elaborate", node.span, stack=ctx.stack[-6:],
                         hint="nest less deeply")
        self.path = [(node, ctx.stack)]


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


class Evaluator:
    """Evaluates expressions within the limits, charging ``steps``: one counter for everything
    done with it (an ``Elaborator`` is an Evaluator, so its statements charge the same one)."""

    domains = False  # may `choice`, `int_range`, `float_range` make a domain here (a network parameter's default)?

    def __init__(self, limits: Limits):
        self.limits = limits
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

    # ------------------------------------------------------------------ names: variables, module lets, ops, builtins
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
        if name in OPS and name not in ("input", "param"):
            return OpRef(name)
        if not callable_only:
            if name in BUILTINS:
                return BUILTINS[name]
            if name == "params" and hasattr(self, "graph"):  # (no graph for a `--set` value)
                return self.graph.total_params
            if name == "macs" and hasattr(self, "graph"):
                return self.total_macs
        pool = list(ctx.env) + (list(module.blocks) + list(module.values or ()) if module else []) + user_ops()
        if not callable_only:
            pool += list(BUILTINS)
        what = "op or block" if callable_only else "name"
        hint = ALIASES.get(name) if callable_only else None
        hint = hint or did_you_mean(name, pool) or (PLUGIN_HINT if callable_only else None)
        if module is not None and name in module.networks:
            hint = f"`{name}` is a network; only blocks can be called"
        raise ElaborationError("E010", f"unknown {what} `{name}`", span, stack=ctx.stack, hint=hint)

    # ------------------------------------------------------------------ expressions
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

    def _slice(self, e, ctx, x):
        """``t[start:stop:step]`` on a list, tuple, string or range, as Python slices (negative
        bounds count from the end, a missing one is none); paid for in proportion to the result."""
        t = self.ev(e.target, ctx, x)
        bounds = []
        for what, node in (("start", e.start), ("stop", e.stop), ("step", e.step)):
            v = None if node is None else self.ev(node, ctx, x)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ElaborationError("E054", f"a slice's {what} must be an integer or none, got {describe(v)}",
                                       node.span, stack=ctx.stack)
            bounds.append(v)
        if bounds[2] == 0:
            raise ElaborationError("E052", "a slice step must not be zero", e.step.span, stack=ctx.stack,
                                   hint="a step of 1 takes every item, -1 every item backwards")
        if not isinstance(t, (list, tuple, str, range)):
            raise _Oops("E054", f"{describe(t)} cannot be sliced",
                        "lists, tuples, strings and ranges can be sliced (`xs[1:]`, `in.shape[-2:]`)")
        if not isinstance(t, range):  # (a range's slice is a range: nothing is copied)
            n = len(range(len(t))[slice(*bounds)])  # the result's length, before building it
            self.check_len(range(n))
            self.charge(n // 8)
        return t[slice(*bounds)]

    def _comprehension(self, e, ctx, x):
        """``[elem for a, b in seq if cond]``: a new list, one step per item of ``seq``. The loop
        names live in a scope of their own: they shadow outer names inside and vanish after."""
        seq = self.ev(e.iterable, ctx, x)
        if not isinstance(seq, (list, tuple, range, str, dict)):
            raise ElaborationError("E051", f"cannot loop over {describe(seq)}", e.iterable.span, stack=ctx.stack,
                                   hint="a comprehension loops over a list, tuple, string, dict or range")
        if len(seq) > self.limits.repeat:
            raise LimitError("E084", f"a comprehension of {len(seq):,} iterations is over the repeat limit of "
                             f"{self.limits.repeat:,}", e.iterable.span, stack=ctx.stack,
                             hint="raise it with `--limit repeat=N`")
        self.charge(len(ctx.env) // 8)
        inner = replace(ctx, env=dict(ctx.env))
        env, targets, out = inner.env, e.targets, []
        for value in seq:
            self.charge(1)
            if len(targets) == 1:
                env[targets[0]] = value
            elif isinstance(value, (list, tuple)) and len(value) == len(targets):
                env.update(zip(targets, value))
            else:
                raise ElaborationError("E058", f"cannot unpack {show(value)} into {len(targets)} names "
                                       f"({', '.join(targets)})", e.iterable.span, stack=ctx.stack)
            if e.cond is None or self.truth(self.ev(e.cond, inner, x), e.cond):
                out.append(self.ev(e.elem, inner, x))
        self.measure(out)
        return out

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
    A.Const: Evaluator._const, A.Var: Evaluator._var, A.InTensor: Evaluator._in,
    A.TensorRef: Evaluator._tensor_ref, A.ListExpr: Evaluator._list, A.TupleExpr: Evaluator._tuple,
    A.DictExpr: Evaluator._dict, A.Unary: Evaluator._unary, A.Not: Evaluator._not,
    A.BoolOp: Evaluator._boolop, A.Ternary: Evaluator._ternary, A.Compare: Evaluator._compare,
    A.Binary: Evaluator._binary, A.CallExpr: Evaluator._call, A.Index: Evaluator._index,
    A.Attr: Evaluator._attr, A.Slice: Evaluator._slice, A.Comprehension: Evaluator._comprehension,
}

_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "//": operator.floordiv, "%": operator.mod, "**": operator.pow}


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


# ---------------------------------------------------------------------- domains (design spaces)

def _domain_args(name: str, kw: dict, allowed: dict) -> dict:
    """The keyword arguments of a domain builtin, defaults filled in; an unknown one is E119."""
    for k in kw:
        if k not in allowed:
            raise _Oops("E119", f"`{name}` has no parameter `{k}`",
                        did_you_mean(k, allowed) or f"its keyword parameters are: {', '.join(allowed)}")
    return {**allowed, **kw}


def _domain_made(ev, d: Domain, name: str, default) -> Domain:
    if not ev.domains:
        raise _Oops("E120", f"`{name}` declares a domain, and domains belong on network parameters only",
                    "declare it as a network parameter's default (`network n(width = choice([16, 32]))`) "
                    "and pass the parameter down to the block")
    if default is not _MISSING:
        if not d.contains(default):
            raise _Oops("E119", f"the default {show(default)} is not in {d.text()}")
        if d.kind == "choice":
            default = d.choices[d.index(default)]
        elif d.kind == "float":
            default = float(default)
        d = replace(d, default=default)
    return d


def _choice(ev, *args, **kw):
    if len(args) != 1:
        raise _Oops("E119", f"`choice` takes one list of values, got {len(args)} arguments",
                    "write `choice([16, 32, 64])`")
    opts = _domain_args("choice", kw, {"default": _MISSING})
    values = args[0]
    if not isinstance(values, (list, tuple)) or not values:
        raise _Oops("E119", f"`choice` needs a non-empty list of values, got {describe(values)}",
                    "write `choice([16, 32, 64])` or `choice([basic, bottleneck])`")
    ev.measure(values)
    eq = Equality(ev.charge)
    for i, v in enumerate(values):
        if isinstance(v, (Tensor, Domain)) or isinstance(v, Builtin):
            raise _Oops("E119", f"a choice cannot be {describe(v)}")
        if any(type(v) is type(w) and eq.same(v, w) for w in values[:i]):
            raise _Oops("E119", f"`choice` lists {show(v)} twice", "list each value once")
    return _domain_made(ev, Domain("choice", tuple(values), default=values[0]), "choice", opts["default"])


def _int_range(ev, low, high, **kw):
    opts = _domain_args("int_range", kw, {"step": 1, "log": False, "default": _MISSING})
    low, high = _int_arg(low, "`int_range`'s low end"), _int_arg(high, "`int_range`'s high end")
    step, log = _int_arg(opts["step"], "`int_range`'s step"), opts["log"]
    if not isinstance(log, bool):
        raise _Oops("E119", f"`log` must be true or false, got {describe(log)}")
    if low > high:
        raise _Oops("E119", f"`int_range({low}, {high})` is empty: its low end is above its high end")
    if step < 1 or (high - low) % step:
        raise _Oops("E119", f"`int_range({low}, {high}, step={step})`: the step must be a positive divisor "
                    f"of high - low ({high - low})", "both ends are included: `int_range(2, 8, step=2)` is 2, 4, 6, 8")
    if log and (low < 1 or step != 1):
        raise _Oops("E119", "a log `int_range` needs a low end of at least 1 and a step of 1")
    return _domain_made(ev, Domain("int", low=low, high=high, step=step, log=log, default=low), "int_range",
                        opts["default"])


def _float_range(ev, low, high, **kw):
    opts = _domain_args("float_range", kw, {"log": False, "default": _MISSING})
    low, high = float(_num_arg(low, "`float_range`'s low end")), float(_num_arg(high, "`float_range`'s high end"))
    log = opts["log"]
    if not isinstance(log, bool):
        raise _Oops("E119", f"`log` must be true or false, got {describe(log)}")
    if not low < high:
        raise _Oops("E119", f"`float_range({show(low)}, {show(high)})` is empty: its low end must be below its "
                    "high end", "a single value needs no domain")
    if log and low <= 0:
        raise _Oops("E119", f"a log `float_range` needs a positive low end, got {show(low)}")
    return _domain_made(ev, Domain("float", low=low, high=high, log=log, default=low), "float_range",
                        opts["default"])


BUILTINS = {b.name: b for b in (
    Builtin("range", _range), Builtin("enumerate", _enumerate, kw=True), Builtin("zip", _zip),
    Builtin("len", _len), Builtin("min", _minmax(min)), Builtin("max", _minmax(max)),
    Builtin("sum", _sum, kw=True), Builtin("abs", _abs), Builtin("int", _int), Builtin("float", _float),
    Builtin("round", _round, kw=True), Builtin("list", _list),
    Builtin("choice", _choice, kw=True), Builtin("int_range", _int_range, kw=True),
    Builtin("float_range", _float_range, kw=True),
)}



# ---------------------------------------------------------------------- API

def evaluate_constant(node, limits: Limits | None = None):
    """The value of an expression outside any network (a ``--set`` value): no variable is
    bound, names are ops and builtins. Raises an ``ArchError`` (ElaborationError, LimitError)
    for a bad one, as in a spec."""
    return Evaluator(limits if limits is not None else Limits()).ev(node, Ctx({}, None), None)
