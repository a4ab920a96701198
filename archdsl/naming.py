"""Naming: the name of every op and scope of the IR, and the labels that give them.

A labelled item takes its label; an unlabelled op or block call takes its position
among the items of the enclosing scope (as ``nn.Sequential`` counts). A block call, a
labelled group, join or repetition opens a scope, whose items are named after it
(``stage2.0.conv1``); unlabelled groups, joins, loops, conditions and repetitions expand
in place, their items counted in the enclosing scope, and so does an unlabelled call of an
``inline block`` (its items take the caller's positions, its labels the caller's scope). Ops
the language adds itself (a join's, a dense layer's concat, the parts of a split join) are
named ``op#k`` (``add#1``, ``narrow#2``) and take no position. Every name is used once (E030).

A label is written bare (letters, digits and ``_``: ``conv1:``, ``0:``), or quoted for
any other characters (``"block{i}-{j}":``); ``{expr}`` parts interpolate integers and
strings. Whatever the spelling, the final text must be a name torch takes for a module
(``nn.Module.add_module``) and the language has not kept for itself: :func:`check_label`
alone says which texts are labels (:data:`LABEL_RULE`). A name that collides with an
attribute of ``nn.Module`` (``training``) is a valid label, refused only by ``compile``,
which alone knows which names become modules.
"""
from __future__ import annotations

from dataclasses import replace

from . import syntax as A
from .errors import ElaborationError, Frame, Span
from .evaluate import Ctx
from .ir import Scope
from .loader import ModuleScope
from .values import describe, show


LABEL_RULE = ("a label is any printable text but `.` and `#`, not empty, no space at either end; quote one "
              "with other characters than letters, digits and `_`: `\"block{i}-{j}\":` (`conv1:`, `0:`, `{i}:` "
              "need none)")


def label_problem(text: str) -> str | None:
    """Why ``text`` cannot be a label, or None when it can (the one naming rule: see LABEL_RULE).

    torch refuses an empty name and one with `.` (the separator of module paths:
    ``stage2.0.conv1``); `#` is kept for the names the language gives its own ops
    (``add#1``); unprintable characters and spaces at either end would make names that
    read alike differ."""
    if not text:
        return "it is empty"
    if "." in text:
        return "it contains `.`, which separates the scopes of a module path (`stage2.0.conv1`)"
    if "#" in text:
        return "it contains `#`, which names the ops archdsl adds itself (`add#1`)"
    if not text.isprintable():
        ch = next(c for c in text if not c.isprintable())
        return f"it contains the unprintable character U+{ord(ch):04X}"
    if text != text.strip():
        return "it starts or ends with a space"
    return None


def check_label(text: str, span: Span, ctx: Ctx) -> str:
    """``text`` if it is a valid label, else E032 at ``span``."""
    why = label_problem(text)
    if why is not None:
        raise ElaborationError("E032", f"label {show(text)} is not a valid name: {why}", span, stack=ctx.stack,
                               hint=LABEL_RULE)
    return text


class Naming:
    """The naming rule, for the elaborator (it mixes this in): needs ``ev`` and ``charge`` (an
    :class:`~archdsl.evaluate.Evaluator`), ``graph`` (scopes are added to it), ``names`` (name ->
    the span that claimed it) and ``internal`` (scope prefix + op -> the last ``#k`` given)."""

    def label_text(self, label: A.Label, ctx: Ctx, x) -> str:
        """A label's text, its ``{expr}`` parts evaluated (integers and strings only), checked."""
        out = []
        for part in label.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                v = self.ev(part, ctx, x)
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise ElaborationError("E032", f"a label can interpolate integers and strings, not "
                                           f"{describe(v)}", part.span, stack=ctx.stack)
                out.append(str(v))
        text = "".join(out)
        self.charge(len(text) // 8, label.span, ctx)
        return check_label(text, label.span, ctx)

    def next_name(self, ctx: Ctx, label: str | None) -> str:
        """The name of the next item of the scope: its label, or its position among the items."""
        index = ctx.counter[0]
        ctx.counter[0] += 1
        return ctx.prefix + (label if label is not None else str(index))

    def internal_name(self, ctx: Ctx, op: str) -> str:
        """The name of an op the language makes itself (a join's, a dense layer's concat): ``op#k``,
        counted per scope and op; it takes no position among the items and is never claimed."""
        key = ctx.prefix + op
        k = self.internal.get(key, 0) + 1
        self.internal[key] = k
        return f"{key}#{k}"

    def claim(self, name: str, span: Span, ctx: Ctx) -> None:
        """Take ``name`` for the op or scope at ``span``: E030 when it is taken already."""
        if name in self.names:
            first = self.names[name]
            raise ElaborationError("E030", f"the name `{name}` is used twice", span, stack=ctx.stack,
                                   notes=[f"first used at {first}"],
                                   hint="labels must be unique within their scope")
        self.names[name] = span

    def open_scope(self, ctx: Ctx, name: str, kind: str, block: str | None, span: Span,
                   module: ModuleScope | None = None, frame: Frame | None = None) -> Ctx:
        """Open the scope ``name`` (its items are named ``name.label``, ``name.0``, ...) in the IR and
        return the context inside it: a block's has its own variables and one more frame."""
        self.claim(name, span, ctx)
        sid = len(self.graph.scopes)
        self.graph.scopes[sid] = Scope(sid, name, kind, block, ctx.scope, span, ctx.repeat_tag)
        if kind == "block":
            return Ctx({}, module, name + ".", [0], sid, ctx.stack + (frame,), ctx.depth + 1, ctx.tap)
        return replace(ctx, prefix=name + ".", counter=[0], scope=sid, repeat_tag=None)
