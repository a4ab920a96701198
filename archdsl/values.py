"""Run-time values of the language besides plain numbers, strings, lists and dicts, and the
three things done to every value in bounded time: comparing it, ordering it and showing it.

Op and block values share their arguments: ``let a = relu(a, a)`` doubled 60 times is 60
objects but 2**60 paths through them. Anything that walks paths (the equality, hash and
repr a dataclass generates) never ends, so equality here works on the objects (a union-find
over the pairs already matched), hashing is computed once per object, and showing a value
stops when its character budget is spent.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tensor:
    """A point in the graph: an IR node and its shape (batch excluded)."""

    node: int
    shape: tuple

    ATTRS = ("c", "h", "w", "l", "shape", "dims", "numel")

    def attr(self, name: str):
        """The closed set of tensor attributes; None when ``name`` is not one of them."""
        s = self.shape
        if name == "c":
            return s[0]
        if name == "h" and len(s) >= 3:
            return s[-2]
        if name == "w" and len(s) >= 3:
            return s[-1]
        if name == "l" and len(s) == 2:
            return s[1]
        if name == "shape":
            return list(s)
        if name == "dims":
            return len(s)
        if name == "numel":
            n = 1
            for v in s:
                n *= v
            return n
        return None


class _Ref:
    """Equality, hashing and repr of op and block values, all linear in the objects they hold."""

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return Equality().same(self, other)

    def __hash__(self):
        h = self.__dict__.get("_hash")
        if h is None:
            h = _hash_refs(self)
        return h

    def __repr__(self):  # for code that formats with !r (a list of a million of them): bounded, cached
        text = self.__dict__.get("_repr")
        if text is None:
            text = show(self, 60)
            object.__setattr__(self, "_repr", text)
        return text

    def __getstate__(self):  # a pickle or copy leaves the caches (str hashes differ from process to process)
        return {k: v for k, v in self.__dict__.items() if k not in ("_hash", "_repr")}


@dataclass(frozen=True, eq=False, repr=False)
class BlockRef(_Ref):
    """A block as a value (higher-order blocks), with arguments bound so far."""

    block: Any  # syntax.BlockDef
    args: tuple = ()
    kwargs: tuple = ()  # ((name, value), ...)
    module: Any = None  # the module scope it was defined in (not part of its value)
    depth: int = 1  # op and block values nested in its arguments, itself included (limited by `nesting`)


@dataclass(frozen=True, eq=False, repr=False)
class OpRef(_Ref):
    """An op as a value (``act = relu``), with arguments bound so far."""

    op: str
    args: tuple = ()
    kwargs: tuple = ()
    depth: int = 1


@dataclass(frozen=True)
class Expr:
    """A value still to be read: the text of a spec expression (``--set widths=[64, 128]``),
    evaluated by the front end in the scope of the spec's main file once it is loaded, so it
    may name the spec's blocks and top-level `let`s (``--set unit=bottleneck``). A bare word
    that names nothing there is the string it spells. ``what`` is the option it came from
    (``--set widths``), the file name its diagnostics show; ``note`` (a callable taking one
    message, or None) hears when a bare word was taken as a string."""

    text: str
    what: str = "--set"
    note: Any = None


@dataclass(frozen=True, eq=False, repr=False)
class Domain:
    """A design space's dimension, the default of a network parameter (``choice([16, 32])``,
    ``int_range(2, 8)``, ``float_range(0.25, 4, log=true)``): the values it may take and the one
    used when nothing picks another. ``kind`` is "choice", "int" or "float"; a choice holds its
    ``choices`` (any values of the language, blocks and ops too), a range its ``low`` and ``high``
    (both included), ``step`` (ints) and ``log`` (sampled uniformly in the logarithm).
    ``default`` is a value of the domain (the first choice, the low end, unless ``default=``)."""

    kind: str
    choices: tuple = ()
    low: Any = None
    high: Any = None
    step: Any = None
    log: bool = False
    default: Any = None

    value_kind = "domain"

    def __repr__(self):
        return self.text()

    @property
    def finite(self) -> bool:
        return self.kind != "float"

    def size(self) -> int | None:
        """How many values it holds (None for a float range)."""
        if self.kind == "choice":
            return len(self.choices)
        if self.kind == "int":
            return (self.high - self.low) // self.step + 1
        return None

    def values(self) -> list:
        """Every value of a finite domain, in order (a choice's, a range's from low to high)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(self.low, self.high + 1, self.step))
        raise ValueError("a float range has no list of values")

    def index(self, v, eq=None) -> int | None:
        """The position of ``v`` among a choice's values (by the language's equality, or by the
        name a block or op choice is recorded under), else None."""
        eq = eq or Equality()
        for i, c in enumerate(self.choices):
            if type(c) is type(v) and eq.same(c, v):
                return i
        if isinstance(v, str):
            for i, c in enumerate(self.choices):
                if isinstance(c, _Ref) and choice_key(c) == v:
                    return i
        return None

    def contains(self, v) -> bool:
        if self.kind == "choice":
            return self.index(v) is not None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.kind == "int":
            return isinstance(v, int) and self.low <= v <= self.high and (v - self.low) % self.step == 0
        return self.low <= v <= self.high

    def plain(self) -> "Domain":
        """The same domain with block and op choices replaced by their names (what records,
        CSV files and Optuna hold): ``choice([basic, bottleneck])`` -> ``("basic", "bottleneck")``."""
        if self.kind != "choice":
            return self
        return Domain(self.kind, tuple(choice_key(c) for c in self.choices), default=choice_key(self.default))

    def text(self, limit: int = 200) -> str:
        """The domain as the language writes it: ``choice([16, 32, 64])``, ``int_range(2, 8, step=2)``."""
        if self.kind == "choice":
            return "choice(" + show(list(self.choices), limit) + ")"
        name = "int_range" if self.kind == "int" else "float_range"
        extra = (f", step={self.step}" if self.kind == "int" and self.step != 1 else "") + (
            ", log=true" if self.log else "")
        return f"{name}({show(self.low)}, {show(self.high)}{extra})"


def choice_key(v):
    """How a choice's value is recorded: plain data as it is, a block or op value by its text
    (``bottleneck``, ``conv(3)``)."""
    if isinstance(v, _Ref):
        text = show(v, 200)
        kind = type_name(v) + " "
        return text[len(kind):] if text.startswith(kind) else text
    return v


def type_name(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if v is None:
        return "none"
    kind = getattr(type(v), "value_kind", None)  # a builtin function of the evaluator
    if isinstance(kind, str):
        return kind
    return {int: "int", float: "float", str: "string", list: "list", tuple: "tuple", dict: "dict",
            range: "range", Tensor: "tensor", BlockRef: "block", OpRef: "op"}.get(type(v), type(v).__name__)


# ---------------------------------------------------------------------- equality and order

_SCALARS = frozenset({int, float, bool, str, type(None)})  # compared by Python at C speed, no recursion
_NODES = (list, tuple, dict, OpRef, BlockRef, str)         # matched once per pair of objects


class Equality:
    """Python's ``==`` on values of the language, in time linear in the objects the two values
    are made of, however much they share. Pairs of objects found equal are merged in a
    union-find, so a pair is expanded at most once; merging optimistically (before the pair's
    items are compared) is sound because any mismatch ends the whole comparison with False.
    One instance can serve many comparisons of one operation (the items of a list ordering,
    of ``min``); after a False its merges are dropped. ``charge(n)`` is called with the steps
    the work costs (a quarter step a pair of values, an eighth an item compared in bulk)."""

    def __init__(self, charge=None):
        self.charge = charge
        self.rep: dict[int, int] = {}
        self.keep: list = []  # the merged objects, so their ids stay theirs while merged
        self.cost = 0  # in eighths of a step

    def same(self, a, b) -> bool:
        ok = self._walk([(a, b)])
        if not ok:
            self.rep, self.keep = {}, []
        self.pay()
        return ok

    def pay(self) -> None:
        """Charge the whole steps of the work done so far."""
        if self.charge is not None and self.cost >= 8:
            steps, self.cost = divmod(self.cost, 8)
            self.charge(steps)

    def _find(self, i: int) -> int:
        rep = self.rep
        root = i
        while root in rep:
            root = rep[root]
        while i != root:  # path compression
            nxt = rep[i]
            rep[i] = root
            i = nxt
        return root

    def _walk(self, stack: list) -> bool:
        while stack:
            top = stack[-1]
            if type(top) is tuple:
                stack.pop()
                x, y = top
            else:  # an iterator over the item pairs of two containers
                pair = next(top, None)
                if pair is None:
                    stack.pop()
                    continue
                x, y = pair
            self.cost += 2
            if self.cost >= 2048:
                self.pay()
            if x is y:
                continue
            t = type(x)
            if t not in _NODES:
                if type(y) in _NODES or x != y:
                    return False
                continue
            if type(y) is not t:
                return False
            rx, ry = self._find(id(x)), self._find(id(y))
            if rx == ry:
                continue
            if not self._expand(t, x, y, stack):
                return False
            self.rep[rx] = ry
            self.keep.append((x, y))
        return True

    def _expand(self, t, x, y, stack: list) -> bool:
        """Compare what can be compared of x and y at once; push the pairs of their items."""
        if t is str:
            self.cost += len(x) // 8
            return x == y
        if t is list or t is tuple:
            if len(x) != len(y):
                return False
            if _SCALARS.issuperset(map(type, x)) and _SCALARS.issuperset(map(type, y)):
                self.cost += 2 * len(x)
                return x == y  # flat: Python compares at C speed, without recursing
            stack.append(zip(x, y))
            return True
        if t is dict:
            if len(x) != len(y) or x.keys() != y.keys():  # keys are flat (strings, numbers, tuples of them)
                return False
            self.cost += len(x)
            stack.append((v, y[k]) for k, v in x.items())
            return True
        if t is OpRef:
            if x.op != y.op:
                return False
        elif not (x.block is y.block or (x.block.name == y.block.name and x.block.span == y.block.span)):
            return False
        if len(x.args) != len(y.args) or len(x.kwargs) != len(y.kwargs):
            return False
        ykw = dict(y.kwargs)
        if any(k not in ykw for k, _ in x.kwargs):
            return False
        stack.append(((v, ykw[k]) for k, v in x.kwargs))  # keywords match by name, in any order
        stack.append(zip(x.args, y.args))
        return True


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def order(op: str, a, b, eq: Equality) -> bool:
    """``a op b`` for ``<``, ``<=``, ``>``, ``>=`` as Python orders values (lists and tuples
    lexicographically: the first item that differs decides, else the lengths), with item
    equality done by ``eq`` (linear, charged) and without recursing. TypeError where Python
    raises it (op values, mixed types)."""
    while type(a) is type(b) and type(a) in (list, tuple):
        if _SCALARS.issuperset(map(type, a)) and _SCALARS.issuperset(map(type, b)):
            eq.cost += min(len(a), len(b))
            break  # flat: Python at C speed
        n = min(len(a), len(b))
        i = next((i for i in range(n) if not eq.same(a[i], b[i])), None)
        if i is None:
            return _ORDER[op](len(a), len(b))
        a, b = a[i], b[i]
    eq.pay()
    return _ORDER[op](a, b)


def _hash_refs(root: _Ref) -> int:
    """The hash of an op or block value, computed once for every op and block value under it,
    deepest first (never recursing through the values); cached on each."""
    stack = [root]
    while stack:
        ref = stack[-1]
        if "_hash" in ref.__dict__:
            stack.pop()
            continue
        missing = [r for r in _refs_in(ref.args + tuple(v for _, v in ref.kwargs)) if "_hash" not in r.__dict__]
        if missing:
            stack += missing
            continue
        ident = ref.op if type(ref) is OpRef else (ref.block.name, ref.block.span)
        h = hash((type(ref).__name__, ident, ref.args, frozenset(ref.kwargs)))  # TypeError for a list, as Python
        object.__setattr__(ref, "_hash", h)
        stack.pop()
    return root.__dict__["_hash"]


def _refs_in(items) -> list:
    """The op and block values in ``items`` and in the containers among them (not inside other refs)."""
    out, todo = [], [items]
    while todo:
        for v in todo.pop():
            if isinstance(v, _Ref):
                out.append(v)
            elif isinstance(v, (list, tuple)):
                todo.append(v)
            elif isinstance(v, dict):
                todo.append(list(v.values()))
    return out


# ---------------------------------------------------------------------- showing values

SHOW_DEPTH = 20  # levels of containers and arguments shown; deeper ones are "..."


def show(v, limit: int = 200) -> str:
    """A value as the language writes it, cut to about ``limit`` characters. The work is linear
    in ``limit`` whatever the value (a million items, op values sharing their arguments 2**60
    ways, nesting 10**5 deep): nothing is rendered past the budget, strings are escaped so
    no control character reaches a terminal, and op and block values show their arguments.
    At the top, op, block, builtin and tensor values carry their kind (``op conv(64, 3)``)."""
    out: list[str] = []
    room = limit + 1  # one character more than shown tells that the text was cut
    stack: list = [("v", v, 0)]
    while stack and room > 0:
        entry = stack.pop()
        kind = entry[0]
        if kind == "t":
            text = entry[1]
        elif kind == "v":
            text = _open(entry[1], entry[2], stack, room)
        else:  # "i": the remaining items of a container or an argument list
            _, items, depth, first = entry
            item = next(items, _END)
            if item is _END:
                continue
            stack.append(("i", items, depth, False))
            if isinstance(item, _Keyword):
                stack.append(("v", item.value, depth))
                text = ("" if first else ", ") + item.name + "="
            elif isinstance(item, _Pair):
                stack += [("v", item.value, depth), ("t", ": "), ("v", item.key, depth)]
                text = "" if first else ", "
            else:
                stack.append(("v", item, depth))
                text = "" if first else ", "
        out.append(text[:room])
        room -= len(text)
    text = "".join(out)
    return text if len(text) <= limit else text[:limit] + " ..."


_END = object()


@dataclass
class _Keyword:
    name: str
    value: Any


@dataclass
class _Pair:
    key: Any
    value: Any


def _open(v, depth: int, stack: list, room: int) -> str:
    """The text that starts ``v``; what follows it (items, closer) is pushed on ``stack``."""
    t = type(v)
    if t in (list, tuple, dict) or isinstance(v, _Ref):
        if depth >= SHOW_DEPTH:
            return "..."
        if isinstance(v, _Ref):
            head = v.op if t is OpRef else v.block.name
            if depth == 0:
                head = f"{type_name(v)} {head}"
            if not v.args and not v.kwargs:
                return head
            stack.append(("t", ")"))
            items = iter([*v.args, *(_Keyword(k, x) for k, x in v.kwargs)]) if len(v.args) + len(v.kwargs) < 64 \
                else _ref_items(v)
            stack.append(("i", items, depth + 1, True))
            return head + "("
        opener, closer = {list: ("[", "]"), tuple: ("(", ")"), dict: ("{", "}")}[t]
        stack.append(("t", "," + closer if t is tuple and len(v) == 1 else closer))
        items = (_Pair(k, x) for k, x in v.items()) if t is dict else iter(v)
        stack.append(("i", items, depth + 1, True))
        return opener
    return _scalar(v, depth, room)


def _ref_items(v):
    yield from v.args
    for k, x in v.kwargs:
        yield _Keyword(k, x)


def _scalar(v, depth: int, room: int) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return '"' + _escape(v[:room], _QUOTED) + '"'
    if isinstance(v, int):
        if abs(v) < 10**30:
            return str(v)
        return ("-" if v < 0 else "") + f"~10**{int(math.log10(abs(v)))}"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, Tensor):
        return f"tensor {list(v.shape)}"
    if isinstance(v, Domain):
        return v.text(max(room, 20))
    if isinstance(v, range):
        return f"range({_scalar(v.start, 1, room)}, {_scalar(v.stop, 1, room)}, {_scalar(v.step, 1, room)})"
    name = getattr(v, "name", None)
    if isinstance(name, str) and getattr(type(v), "value_kind", None) == "builtin":
        return f"builtin {name}" if depth == 0 else name
    return f"<{type_name(v)}>"  # never the repr of an unknown object


def describe(v, limit: int = 200) -> str:
    """A value with its kind in front, bounded: ``int 3``, ``list [1, 2]``, ``op relu``, ``tensor [3, 8, 8]``
    (values that show with their kind are not given it twice)."""
    text = show(v, limit)
    kind = type_name(v)
    return text if text.startswith(kind + " ") or text.startswith(kind + "(") else f"{kind} {text}"


# ---------------------------------------------------------------------- escaping text

# C0 and C1 controls, DEL, line and paragraph separators, bidi marks, overrides and isolates,
# the byte order mark and lone surrogates: none of them reaches an output unescaped
_CONTROL = "\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff"
_PLAIN = re.compile(f"[{_CONTROL}]")
_QUOTED = re.compile(f'[{_CONTROL}"\\\\]')
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


def _one(m: re.Match) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def _escape(text: str, pattern: re.Pattern) -> str:
    return pattern.sub(_one, text)


def escape(text: str, limit: int = 500) -> str:
    """User text (an assert message) as one line with every control character written as an
    escape (``\\n``, ``\\r``, ``\\x1b``), so it cannot fake output lines or drive the terminal;
    cut to about ``limit`` characters."""
    cut = len(text) > limit
    text = _escape(text[:limit], _PLAIN)
    return text + " ..." if cut else text
