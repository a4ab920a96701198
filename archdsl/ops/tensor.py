"""Tensors a scope owns: ``param NAME: [shape] = scheme`` and ``buffer NAME: ...`` (a class
token, a position embedding, a per-channel layer scale, a fixed mask).

A declared tensor is a node of arity 0, like an input, but not an activation: it has no batch
dimension, its node's ``shape`` is the registered tensor's exact shape and its node is marked
``batched=False``. Joins take it as a branch (``mul { ...; @layer_scale }``); the elaborator
lines its shape up with the activations' and the compiler reads it as ``self.<path>``.
"""
from __future__ import annotations

from .base import Op, ShapeProblem, numel, register

JOINS = ("add", "mul", "sub", "matmul", "concat", "stack")   # the joins a declared tensor may enter
EXPANDED = ("concat", "stack")                               # ... and those that expand it over the batch


@register
class Param(Op):
    """A learnable parameter (``kind="param"``) or a buffer (``kind="buffer"``) of a scope:
    attributes ``kind``, ``shape`` (the registered shape), ``scheme`` and ``kwargs`` (its
    initialisation, a name of ``initializers.SCHEMES``)."""

    name, arity, category = "param", 0, "param"

    def weights(self, a, xs, y):
        n = numel(a["shape"])
        return (n, 0) if a["kind"] == "param" else (0, n)

    def forward(self, a, args, mod, inplace):
        return mod   # the tensor itself: the compiler passes its reference (``self.class_token``)

    def label(self, a):
        return f"{a['kind']} {a['scheme']}"


def line_up(op, attrs: dict, xs: list, decls: list) -> list:
    """The input shapes a join's shape rule sees when some of its inputs are declared tensors
    (``decls[i]``: that input's node data, None for an activation): each declared shape lined up
    with the activations' rank (batch excluded). ``[1, *dims]`` drops its leading 1 (the batch it
    broadcasts over); a shorter shape is padded with leading 1s, as torch broadcasts; ``concat``
    and ``stack`` expand a tensor over the batch, so they take the first form only. ``add`` needs
    one shape: a declared tensor that broadcasts to the activations' takes their shape. Raises
    ShapeProblem: E095 where no activation is there to join, E044 where a shape does not fit."""
    name = op.name
    first = next(d for d in decls if d is not None)
    if name not in JOINS:
        what = f"{first['attrs']['kind']} `{_label(first)}` {list(first['shape'])}"
        if op.arity is not None:
            raise ShapeProblem(f"the {what} is not an activation: `{name}` cannot take it", code="E095",
                               hint="use it in a join with an activation: `add { {}; @pos }`, "
                                    "`mul { ...; @scale }` or `concat { @token; {} }`")
        raise ShapeProblem(f"`{name}` cannot take the {what}", code="E095",
                           hint=f"params and buffers join activations in {', '.join(JOINS[:-1])} and {JOINS[-1]}")
    acts = [x for x, d in zip(xs, decls) if d is None]
    if not acts:
        raise ShapeProblem(f"`{name}` joins only declared tensors ({', '.join(f'`{_label(d)}`' for d in decls)}): "
                           "one of its branches must be an activation", code="E095",
                           hint="a join of params has no batch dimension; join them with the tensor flowing in")
    act = acts[0]
    out = []
    for i, (x, d) in enumerate(zip(xs, decls)):
        if d is None:
            out.append(x)
            continue
        survival = attrs.get("survival") if name == "add" else None
        if survival is not None and survival[i] != 1:
            raise ShapeProblem(f"drop-path (`survival`) applies to activations, not to the {d['attrs']['kind']} "
                               f"`{_label(d)}`", arg="survival", code="E095", hint="give it survival 1")
        if len(x) == len(act) + 1 and x[0] == 1:
            y = x[1:]
        elif len(x) <= len(act) and name not in EXPANDED:
            y = (1,) * (len(act) - len(x)) + tuple(x)
        else:
            form = f"[1, {', '.join(map(str, act))}]"
            raise ShapeProblem(
                f"the {d['attrs']['kind']} `{_label(d)}` {list(x)} does not line up with the activation "
                f"{list(act)} (batch excluded) in `{name}`", code="E044",
                hint=f"`{name}` expands a declared tensor over the batch: declare it as {form}" if name in EXPANDED
                else f"a declared shape is the registered tensor's: {form} or fewer dims, aligned right as torch "
                     "broadcasts")
        if name == "add" and len(y) == len(act) and all(p in (q, 1) for p, q in zip(y, act)):
            y = tuple(act)
        out.append(y)
    return out


def _label(d: dict) -> str:
    return d["name"].rsplit(".", 1)[-1]
