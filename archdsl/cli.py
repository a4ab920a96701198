"""The ``archdsl`` command: check, compile, render, summary, chart, compare, zoo, train, eval, bench.

Exit status: 0 success, 1 a diagnostic about the spec (on stderr), 2 a usage error.
Each command checks its spec with the front end and hands the IR to its stage (compile,
draw, analyze, zoo); the stages' work lives in their modules, never a spec's reading.
"""
from __future__ import annotations

import argparse
import re
import sys

from .errors import ArchError, LimitError, Limits

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_value(text: str, what: str):
    """A ``--limit`` value (and any value read without a spec): a constant expression of the
    language, where a bare word is a string."""
    from .evaluate import evaluate_constant
    from .syntax import parse_expr
    if _IDENT.fullmatch(text) and text not in ("true", "false", "none"):
        return text
    return evaluate_constant(parse_expr(text, f"<{what}>"))


def _notes():
    """A printer of notes on stderr for one command, each said once (two specs, one `--set`)."""
    said = set()

    def note(message: str) -> None:
        if message not in said:
            said.add(message)
            print(f"note: {message}", file=sys.stderr)
    return note


def _pairs(items, what: str, note=None) -> dict:
    """NAME=VALUE options as a dict. With ``note`` (a printer), the values are spec expressions
    (``--set``, ``--input``), passed as :class:`~archdsl.values.Expr` for the front end to read in
    the spec's scope; otherwise (``--limit``) constants read now."""
    from .values import Expr
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not _IDENT.fullmatch(key.strip()):
            raise SystemExit(_usage(f"{what} expects NAME=VALUE, got {item!r}"))
        key, value = key.strip(), value.strip()
        out[key] = Expr(value, f"--{what} {key}", note) if note else parse_value(value, f"--{what} {key}")
    return out


def _usage(message: str) -> int:
    print(f"archdsl: error: {message}", file=sys.stderr)
    return 2


def check_args(args) -> dict:
    """Keyword arguments for ``archdsl.check`` from the common options (FILE ``-`` reads stdin)."""
    extra = {"text": True} if getattr(args, "stdin", False) else {}
    note = _notes()  # `--set`/`--input` values are read in the spec's scope by the front end
    return {**extra, "network": args.network, "inputs": _pairs(args.input, "input", note) or None,
            "limits": _pairs(args.limit, "limit") or None, "roots": args.allow_import or None,
            **_pairs(args.set, "set", note)}


def _common(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("files", nargs="+", metavar="FILE", help=".arch spec files")
    else:
        p.add_argument("file", metavar="FILE", help="an .arch spec file (- reads standard input)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a network parameter")
    p.add_argument("--input", action="append", metavar="NAME=SHAPE", help="override an input shape, e.g. image=[3,64,64]")
    p.add_argument("--network", help="which network of the file (default: the last)")
    p.add_argument("--limit", action="append", metavar="NAME=N",
                   help=f"raise a resource limit ({', '.join(Limits.FIELDS)})")
    p.add_argument("--allow-import", action="append", metavar="DIR", help="another folder imports may read")
    _plugin_option(p)


def _plugin_option(p: argparse.ArgumentParser) -> None:
    """``--plugin NAME``, on every command: ops declared in Python (archdsl.extern), loaded only when named."""
    p.add_argument("--plugin", action="append", default=[], metavar="NAME",
                   help="load the ops of a Python plugin: a module, or an installed entry point (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archdsl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="parse, elaborate and shape-check a spec; print its layers")
    _common(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the totals")

    p = sub.add_parser("compile", help="write a standalone PyTorch module for a spec")
    _common(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.py", help="the file to write (- for standard output)")

    p = sub.add_parser("render", help="draw a spec with Graphviz")
    _common(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.{svg,png,pdf,dot}",
                   help="the file to write (- for standard output, with --format)")
    p.add_argument("--format", choices=("svg", "png", "pdf", "dot"), help="the output format (default: OUT's suffix)")
    p.add_argument("--max-nodes", type=int, default=None, metavar="N",
                   help="the most nodes the drawing may have (default 2,000)")
    p.add_argument("--max-edges", type=int, default=None, metavar="N",
                   help="the most edges the drawing may have, dense links bundled beyond it (default 5,000)")
    p.add_argument("--depth", type=int, default=None,
                   help="how many block levels to open (default: the most that fits in about 50 boxes)")
    p.add_argument("--expand", action="append", default=[], metavar="NAME",
                   help="open the instances matching NAME: a dotted path or block name, globs allowed (repeatable)")
    p.add_argument("--unroll", action="store_true", help="draw every copy of a repetition")
    p.add_argument("--rankdir", choices=("TB", "LR"), default="TB")
    p.add_argument("--layout", choices=("auto", "u", "column"), default="auto",
                   help="u: each encoder stage beside the decoder stage its long skip feeds; auto (default): u when "
                        "long skips pair stages of equal resolution; column: never")

    p = sub.add_parser("summary", help="per-layer parameters, MACs and memory")
    _common(p)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--depth", type=int, default=None, help="one row per block at this depth")
    p.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    p.add_argument("-o", "--output", metavar="FILE", help="write to a file instead of stdout (- is stdout)")

    p = sub.add_parser("chart", help="the complexity chart: accuracy (or params) against MACs")
    _common(p, many=True)
    p.add_argument("-o", "--output", required=True, metavar="chart.png")
    p.add_argument("--measure", action="store_true",
                   help="beside the chart, each spec's forward latency measured on this CPU (batch 1) against its MACs")

    p = sub.add_parser("compare", help="two specs' summaries side by side, two variants (--vs), or run folders")
    _common(p, many=True)
    from .comparison import add_compare_options
    add_compare_options(p)          # --vs, --format table|markdown|csv|json, --measure

    from .benchmark import add_parser as add_bench
    from .evaluation import add_parser as add_eval
    from .train import add_parser as add_train
    add_train(sub)
    add_eval(sub)
    add_bench(sub)

    p = sub.add_parser("zoo", help="table of every spec in a folder")
    p.add_argument("dir", nargs="?", default="specs", help="the folder of specs (default: specs)")
    p.add_argument("--format", choices=("table", "markdown"), default="table")
    p.add_argument("--parity", action="store_true", help="also run the reference parity checks (slow)")
    _plugin_option(p)
    return parser


# ----------------------------------------------------------------------------- the commands
# Each checks its spec with the front end and hands the IR to its stage.

def cmd_check(args) -> int:
    from .frontend import check
    from .report import print_check
    graph = check(args.file, **check_args(args))
    print_check(graph, quiet=args.quiet)
    return 0


def cmd_compile(args) -> int:
    """``archdsl compile FILE -o OUT.py``."""
    from .compile import class_name, run_compile
    from .files import output_name
    from .frontend import check
    kwargs = check_args(args)
    graph = check(args.file, **kwargs)
    run_compile(graph, args.output, kwargs.get("limits"))
    print(f"wrote {output_name(args.output)}: class {class_name(graph.network)}, {graph.total_params:,} parameters")
    return 0


def cmd_render(args) -> int:
    """``archdsl render FILE -o OUT [--format F]``: 0 drawn, 1 a spec error (drawn up to it if
    possible) or a drawing too large for Graphviz, 2 usage."""
    import shutil
    from pathlib import Path

    from . import render
    from .draw import FORMATS, INSTALL, OptionError
    out = Path(args.output)
    fmt = args.format or FORMATS.get(out.suffix.lower())
    if fmt is None:
        if args.output == "-":
            return _usage("-o - writes to standard output: name the format with --format svg|png|pdf|dot")
        return _usage(f"cannot tell the format of {args.output!r}: use one of {', '.join(FORMATS)} or --format")
    error = None
    try:
        drawing = render(args.file, depth=args.depth, expand=args.expand, unroll=args.unroll,
                         rankdir=args.rankdir, layout=args.layout, max_nodes=args.max_nodes, max_edges=args.max_edges,
                         **check_args(args))
    except ArchError as e:
        if getattr(e, "rendering", None) is None:
            raise
        drawing, error = e.rendering, e
    except OptionError as e:
        return _usage(str(e))
    if fmt != "dot" and shutil.which("dot") is None:
        if args.output == "-":
            return _usage(f"cannot draw {fmt} without Graphviz ({INSTALL}); --format dot writes the source")
        print(f"archdsl: wrote {drawing.save(out.with_suffix('.dot'))}, not {out}: {INSTALL}", file=sys.stderr)
    else:
        try:
            drawing.save(args.output, fmt)
        except RuntimeError as e:
            print(f"archdsl: error: Graphviz could not draw {args.output}: {e}", file=sys.stderr)
            return 1
        except LimitError as e:  # dot ran out of time or memory
            if error is None:
                raise
            print(e.render(), file=sys.stderr)
    if error is not None:
        print(error.render(), file=sys.stderr)
        return 1
    return 0


def cmd_summary(args) -> int:
    from . import summary
    from .analyze import FORMATS, write_summary
    try:
        s = summary(args.file, batch=args.batch, dtype=args.dtype, depth=args.depth, **check_args(args))
    except ValueError as e:
        return _usage(str(e))
    if args.format == "table" and not args.output:
        s.print()
    elif args.output:
        write_summary(s, args.format, args.output)
    else:
        print(FORMATS[args.format](s), end="")
    return 0


def _summaries(args) -> list:
    from . import summary
    kwargs = check_args(args)
    return [summary(f, **kwargs) for f in args.files]


def cmd_chart(args) -> int:
    from .analyze import chart
    from .files import output_name
    summaries = _summaries(args)
    if args.measure:
        from .benchmark import measured_chart
        left_out = measured_chart(summaries, args.output, note=lambda m: print(f"measured {m}", file=sys.stderr))
    else:
        left_out = chart(summaries, args.output)
    if left_out:
        print(f"not on the chart (no meta top1): {', '.join(left_out)}")
    print(f"wrote {output_name(args.output)}")
    return 0


def cmd_compare(args) -> int:
    from .comparison import run_compare
    return run_compare(args)


def cmd_train(args) -> int:
    from .train import run
    return run(args)


def cmd_eval(args) -> int:
    from .evaluation import run
    return run(args)


def cmd_bench(args) -> int:
    from .benchmark import run
    return run(args)


def cmd_zoo(args) -> int:
    from .frontend import check
    from .zoo import print_zoo
    print_zoo(args.dir, check=check, fmt=args.format, run_parity=args.parity)
    return 0


COMMANDS = {"check": cmd_check, "compile": cmd_compile, "render": cmd_render, "summary": cmd_summary,
            "chart": cmd_chart, "compare": cmd_compare, "zoo": cmd_zoo, "train": cmd_train, "eval": cmd_eval,
            "bench": cmd_bench}


def _read_stdin(args) -> str:
    """The spec on standard input: at most the source limit, UTF-8 (E006, E003 as for files)."""
    from .loader import decode_source
    limits = Limits.of(_pairs(args.limit, "limit"))
    return decode_source(sys.stdin.buffer.read(limits.source + 1), "<stdin>", limits)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.plugin:   # before anything reads a spec; a spec alone never loads Python
            from .extern import load_plugins
            load_plugins(args.plugin)
        if getattr(args, "file", None) == "-":
            args.file, args.stdin = _read_stdin(args), True
        elif getattr(args, "file", None) is not None or getattr(args, "files", None):
            from .frontend import resolve_spec  # a path, or a bare name of the packaged zoo (`check resnet50`)
            if getattr(args, "file", None) is not None:
                args.file = resolve_spec(args.file)
            else:
                args.files = [resolve_spec(f) for f in args.files]
        if getattr(args, "output", None) == "-":  # the data alone on stdout, messages on stderr
            from .files import data_on_stdout
            with data_on_stdout():
                return COMMANDS[args.command](args)
        return COMMANDS[args.command](args)
    except ArchError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    except (RecursionError, MemoryError) as e:
        print(f"error[E086]: the spec is too large or deep to process ({type(e).__name__})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # an output that cannot be written (unreadable inputs are diagnostics, E070)
        what = f"cannot write {e.filename}: " if e.filename else ""
        print(f"archdsl: error: {what}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
