"""``archdsl generate``: new random blocks from a grammar of ops and joins, under budgets.

The generator (:mod:`archdsl.generate.fuzz`, the one the fuzz tests use) draws a block on the
shape of ``--input``, statement by statement, from the ops of ``--ops`` and the joins of
``--joins``: every fragment is simulated on the shape flowing into it before it is kept, so a
block is shape-valid by construction. Around it goes a small network, as the specs of ``specs/``
are laid out: the input, the block, and a classifier head (``global_avgpool -> flatten ->
linear(classes)``, or ``linear(classes)`` on a vector). Each file is then checked with the
front end, and counted: a draw whose network has more parameters than ``--max-params`` or more
MACs than ``--max-macs`` is drawn again (the budgets are the whole network's, as ``archdsl
check`` prints them). The same ``--seed`` writes the same bytes.

Joins bring the ops they are made of, whatever ``--ops`` says: a branch brought to the channel
count of the others ends with a 1×1 ``conv``, a ``mul`` gate is ``global_avgpool -> conv -> relu
-> conv -> sigmoid``, a residual shortcut is ``conv -> bn``.

``--depth D`` is the number of statements (lines) of the block's body, each a chain of one to
four items; groups and joins nest at most two levels deep.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchError
from .fuzz import JOIN_OF, KIND_OPS, Gen, RandomSource
from .shapes import BlockDef, Call, Invalid, Labelled, Sim

#: the op names ``--ops`` may list (what the generator's model of the language covers)
OPS = sorted({"conv", "bn", "groupnorm", "layernorm", "lrn", "linear", "permute", "upsample", "pad", "slice",
              *(n for names in KIND_OPS.values() for n in names)})
JOINS = sorted({j for names in JOIN_OF.values() for j in names})
DEFAULT_OPS = ("conv", "bn", "relu", "maxpool", "avgpool")
DEFAULT_JOINS = ("add", "concat", "mul")
ATTEMPTS = 200           # draws per block before the budgets are said to be out of reach
MAX_ELEMENTS = 2 ** 20   # the largest input the generator's simulation takes (elements per image)


class GenerateError(ArchError):
    """``archdsl generate`` options that cannot be met (E130)."""


@dataclass
class Generated:
    """One generated spec: its name, text, file (once written), parameters and MACs."""

    name: str
    text: str
    params: int
    macs: int
    path: Path | None = None


def _bad(message: str, hint: str | None = None) -> GenerateError:
    return GenerateError("E130", message, hint=hint)


def _names(given, known: list, what: str) -> tuple:
    import difflib
    names = tuple(dict.fromkeys(n.strip() for n in given if n.strip()))
    for n in names:
        if n not in known:
            near = difflib.get_close_matches(n, known, n=1)
            raise _bad(f"--{what} names `{n}`, which the generator does not know",
                       hint=(f"did you mean `{near[0]}`? " if near else "") + f"the {what}: {', '.join(known)}")
    return names


def _shape(value) -> tuple:
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.strip("[]() ").split(",") if v.strip()]
        except ValueError:
            raise _bad(f"--input takes channels and sizes as integers, got {value!r}", hint="for example 3,32,32")
    shape = tuple(value)
    if not 2 <= len(shape) <= 4 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in shape):
        raise _bad(f"--input must be channels and one to three sizes, each a positive integer, got {list(shape)}",
                   hint="for example 3,32,32 (an image) or 1,64 (a sequence)")
    elements = 1
    for s in shape:
        elements *= s
    if elements > MAX_ELEMENTS:
        raise _bad(f"--input {list(shape)} has {elements:,} elements per image: the generator takes at most "
                   f"{MAX_ELEMENTS:,}", hint="generate on a smaller input, e.g. 3,32,32")
    return shape


def _count(name: str, value, least: int, most: int | None = None):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < least or (most is not None and value > most):
        raise _bad(f"--{name} must be an integer {f'from {least} to {most}' if most else f'>= {least}'}, "
                   f"got {value!r}")
    return value


def _draw(src: RandomSource, x: tuple, ops: tuple, joins: tuple, depth: int) -> tuple[BlockDef, tuple, int]:
    """One block on input ``x``: its definition, its output shape and its parameters (simulated)."""
    g = Gen(src, budget=4 * depth, ops=ops, joins=joins, nest=2, calls=False, statements=False)
    body = g.body(x, Sim(), {"labels": True, "depth": 0}, depth)
    if not body.stmts:
        raise Invalid("an empty block")
    block = BlockDef("unit", [], body)
    sim = Sim()
    y = Labelled(None, Call(block)).run(sim, x)
    return block, y, sim.params


def _layout(name: str, block: BlockDef, x: tuple, y: tuple, classes: int, about: str) -> str:
    head = "avgpool: global_avgpool -> flatten -> fc: linear(classes)" if len(y) >= 2 else "fc: linear(classes)"
    return (f"# {name}: a block drawn by `archdsl generate` ({about}).\n"
            f"\n{block.text()}\n\n"
            f"network {name}(classes = {classes}) {{\n"
            f"    input image: {list(x)}\n"
            f"    body: unit()\n"
            f"    {head}\n"
            "}\n")


def generate(n: int, *, ops=DEFAULT_OPS, joins=DEFAULT_JOINS, depth: int = 4, input=(3, 32, 32),
             max_params: int | None = None, max_macs: int | None = None, seed: int = 0, classes: int = 10,
             out=None) -> list[Generated]:
    """``n`` random blocks, each in a small network, checked and within the budgets (see the module
    docstring); written as ``out/block_000.arch``, ... when ``out`` is given."""
    from .. import check
    from ..analyze import summary
    n = _count("n", n, 1, 10_000)
    depth = _count("depth", depth, 1, 32)
    max_params, max_macs = _count("max-params", max_params, 1), _count("max-macs", max_macs, 1)
    seed = _count("seed", seed, 0)
    classes = _count("classes", classes, 1)
    ops = _names(ops.split(",") if isinstance(ops, str) else ops, OPS, "ops")
    joins = _names(joins.split(",") if isinstance(joins, str) else joins, JOINS, "joins")
    if not ops:
        raise _bad("--ops is empty: a block needs at least one op", hint=f"for example --ops {','.join(DEFAULT_OPS)}")
    x = _shape(input)
    about = f"seed {seed}; ops {', '.join(ops)}; joins {', '.join(joins) or 'none'}"
    src = RandomSource(seed)
    made: list[Generated] = []
    for i in range(n):
        name = f"block_{i:03d}"
        for _ in range(ATTEMPTS):
            try:
                block, y, params = _draw(src, x, ops, joins, depth)
            except (Invalid, KeyError, ZeroDivisionError, TypeError):
                continue
            head = y[0] * classes + classes    # linear(classes) on the pooled channels, or on the vector
            if max_params is not None and params + head > max_params:
                continue                       # (over the budget already by the generator's count)
            text = _layout(name, block, x, y, classes, about)
            totals = summary(check(text, text=True)).totals
            if (max_params is None or totals["params"] <= max_params) and \
                    (max_macs is None or totals["macs"] <= max_macs):
                made.append(Generated(name, text, totals["params"], totals["macs"]))
                break
        else:
            budgets = " and ".join(b for b in (f"--max-params {max_params:,}" if max_params else "",
                                               f"--max-macs {max_macs:,}" if max_macs else "") if b)
            raise _bad(f"no block within {budgets or 'the budgets'} in {ATTEMPTS} draws (block {i} of {n})",
                       hint="raise the budget, lower --depth, or give a smaller --input")
    if out is not None:
        from ..files import write_atomic
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for g in made:
            g.path = folder / f"{g.name}.arch"
            write_atomic(g.path, g.text)
    return made


# ----------------------------------------------------------------------------- the command

def add_parser(subparsers) -> argparse.ArgumentParser:
    """``archdsl generate``: the subcommand and its options."""
    p = subparsers.add_parser("generate", help="write random blocks from a grammar of ops and joins, within budgets",
                              description="Write N random blocks (each in a small network that checks and draws), "
                                          "shape-valid by construction, within parameter and MAC budgets.")
    a = p.add_argument
    a("-n", type=int, required=True, metavar="N", help="how many blocks")
    a("-o", "--out", required=True, metavar="DIR", help="the folder to write block_000.arch, ... into")
    a("--ops", default=",".join(DEFAULT_OPS), metavar="A,B,...",
      help=f"the ops blocks are made of (default {','.join(DEFAULT_OPS)}; any of {', '.join(OPS)})")
    a("--joins", default=",".join(DEFAULT_JOINS), metavar="A,B,...",
      help=f"the joins they may use (default {','.join(DEFAULT_JOINS)}; any of {', '.join(JOINS)}; '' for none)")
    a("--depth", type=int, default=4, metavar="D", help="statements in a block's body (default 4)")
    a("--input", default="3,32,32", metavar="C,H,W", help="the network's input shape (default 3,32,32)")
    a("--classes", type=int, default=10, metavar="N", help="the head's class count (default 10)")
    a("--max-params", type=int, metavar="P", help="the most parameters a network may have")
    a("--max-macs", type=int, metavar="M", help="the most MACs a network may have")
    a("--seed", type=int, default=0, metavar="S", help="random seed (default 0): the same seed writes the same files")
    return p


def run(args) -> int:
    """``archdsl generate``: 0 written, 1 a diagnostic."""
    made = generate(args.n, ops=args.ops, joins=args.joins, depth=args.depth, input=args.input,
                    max_params=args.max_params, max_macs=args.max_macs, seed=args.seed, classes=args.classes,
                    out=args.out)
    for g in made:
        print(f"{g.path}: {g.params:,} parameters, {g.macs:,} MACs")
    print(f"wrote {len(made)} block{'s' if len(made) != 1 else ''} into {args.out}", file=sys.stderr)
    return 0


__all__ = ["DEFAULT_JOINS", "DEFAULT_OPS", "GenerateError", "Generated", "JOINS", "OPS",
           "add_parser", "generate", "run"]
