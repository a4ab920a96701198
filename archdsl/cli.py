"""The ``archdsl`` command: check, compile, render, summary, chart, compare, zoo, train, eval, bench, fmt, ...

Exit status: 0 success, 1 a diagnostic about the spec (on stderr), 2 a usage error.
Each command checks its spec with the front end and hands the IR to its stage (compile,
draw, analyze, zoo); the stages' work lives in their modules, never a spec's reading.

The conventions every command keeps: ``-o -`` is standard output (messages then go to stderr);
where ``-o`` is left out, compile and render write ``SPEC.py`` / ``SPEC.svg`` in the current
folder and chart ``chart.png``; diagnostics are coloured on a terminal (``report.use_color``:
``NO_COLOR`` turns it off, ``FORCE_COLOR`` on); ``archdsl completion bash|zsh|fish`` prints a
completion script generated from this parser, so it knows every command and option.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import __version__
from .errors import ArchError, LimitError, Limits
from .report import use_color

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


def _list_form(text: str) -> str:
    """An ``--input`` shape without its brackets (``3,64,64``) as the list it means; a comma
    inside brackets, parentheses or braces (``[3, s, s]``, ``f(a, b)``) leaves it as written."""
    depth = 0
    for ch in text:
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "," and depth == 0:
            return f"[{text}]"
    return text


def _pairs(items, what: str, note=None) -> dict:
    """NAME=VALUE options as a dict. With ``note`` (a printer), the values are spec expressions
    (``--set``, ``--input``), passed as :class:`~archdsl.values.Expr` for the front end to read in
    the spec's scope; otherwise (``--limit``) constants read now. An ``--input`` shape may leave
    out its brackets: ``image=3,64,64`` is ``image=[3,64,64]``."""
    from .values import Expr
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not _IDENT.fullmatch(key.strip()):
            raise SystemExit(_usage(f"{what} expects NAME=VALUE, got {item!r}"))
        key, value = key.strip(), value.strip()
        if what == "input":
            value = _list_form(value)
        out[key] = Expr(value, f"--{what} {key}", note) if note else parse_value(value, f"--{what} {key}")
    return out


def _error(message: str) -> None:
    """``archdsl: error: MESSAGE`` on stderr (``error`` in red where stderr is a terminal)."""
    error = "\x1b[1;31merror\x1b[0m" if use_color(sys.stderr) else "error"
    print(f"archdsl: {error}: {message}", file=sys.stderr)


def _usage(message: str) -> int:
    """A usage error's message; returns 2, its exit status."""
    _error(message)
    return 2


def _diagnostic(e: ArchError) -> None:
    """A diagnostic on stderr, coloured where stderr is a terminal (report.use_color)."""
    print(e.render(color=use_color(sys.stderr)), file=sys.stderr)


def default_output(args, suffix: str) -> str:
    """The output a command writes when ``-o`` is left out: named after the spec, in the current
    folder (``resnet50.svg``), or after the network ``--network`` picks. Never the spec itself."""
    if getattr(args, "stdin", False) and not args.network:
        raise SystemExit(_usage("the spec comes from standard input: name the output with -o FILE "
                                "(- is standard output)"))
    out = Path((args.network or Path(args.file).stem) + suffix)
    if not getattr(args, "stdin", False) and out.resolve() == Path(args.file).resolve():
        raise SystemExit(_usage(f"the default output {out} is the spec itself: name the output with -o FILE"))
    return str(out)


_CHECK_OPTIONS = ("text", "network", "inputs", "limits", "roots")


def split_params(kwargs: dict) -> tuple[dict, dict]:
    """``check_args`` as (check options, network parameters): a stage whose own options share a
    parameter's name (``render --depth`` and ``--set depth=3``) takes the parameters apart."""
    return ({k: v for k, v in kwargs.items() if k in _CHECK_OPTIONS},
            {k: v for k, v in kwargs.items() if k not in _CHECK_OPTIONS})


def check_args(args) -> dict:
    """Keyword arguments for ``archdsl.check`` from the common options (FILE ``-`` reads stdin)."""
    extra = {"text": True} if getattr(args, "stdin", False) else {}
    note = _notes()  # `--set`/`--input` values are read in the spec's scope by the front end
    return {**extra, "network": args.network, "inputs": _pairs(args.input, "input", note) or None,
            "limits": _pairs(args.limit, "limit") or None, "roots": args.allow_import or None,
            **_pairs(args.set, "set", note)}


def _common(p: argparse.ArgumentParser, many: bool = False, optional: str | None = None) -> None:
    """The options of every command that reads a spec; ``optional``: FILE may be left out, for
    the reason given (appended to its help)."""
    if many:
        p.add_argument("files", nargs="+", metavar="FILE", help=".arch spec files or zoo names")
    else:
        p.add_argument("file", metavar="FILE", nargs="?" if optional else None,
                       help="an .arch spec file, a zoo name (resnet50) or - (standard input)"
                            + (f"; {optional}" if optional else ""))
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a network parameter")
    p.add_argument("--input", action="append", metavar="NAME=SHAPE",
                   help="override an input shape, e.g. image=[3,64,64] or image=3,64,64")
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
    parser = argparse.ArgumentParser(prog="archdsl", description="Check, compile, draw, analyze and train networks "
                                     "written as .arch specs; `archdsl COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"archdsl {__version__}",
                        help="print the version of archdsl and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="parse, elaborate and shape-check a spec; print its layers")
    _common(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the totals")
    p.add_argument("--wide", action="store_true",
                   help="show every name whole on a terminal too (a pipe or a file always gets them whole)")

    p = sub.add_parser("compile", help="write a standalone PyTorch module for a spec")
    _common(p)
    p.add_argument("-o", "--output", metavar="OUT.py",
                   help="the file to write (default: SPEC.py in the current folder; - for standard output)")

    p = sub.add_parser("render", help="draw a spec with Graphviz")
    _common(p)
    p.add_argument("-o", "--output", metavar="OUT.{svg,png,pdf,dot}",
                   help="the file to write (default: SPEC.svg in the current folder, or SPEC.FORMAT with --format; "
                        "- for standard output, with --format)")
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
    p.add_argument("--rankdir", choices=("TB", "LR"), default="TB",
                   help="TB: the data flows top to bottom (default); LR: left to right")
    p.add_argument("--layout", choices=("auto", "u", "column"), default="auto",
                   help="u: each encoder stage beside the decoder stage its long skip feeds; auto (default): u when "
                        "long skips pair stages of equal resolution; column: never")

    p = sub.add_parser("summary", help="per-layer parameters, MACs and memory")
    _common(p)
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="images per batch the memory is counted for (default 1)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="the number format the memory is counted in (default fp32)")
    p.add_argument("--depth", type=int, default=None, help="one row per block at this depth")
    p.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table",
                   help="the output format (default: table)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to a file instead of stdout (- is stdout)")

    p = sub.add_parser("chart", help="the complexity chart: accuracy (or params) against MACs")
    _common(p, many=True)
    p.add_argument("-o", "--output", metavar="chart.png",
                   help="the PNG to write (default: chart.png in the current folder; - for standard output)")
    p.add_argument("--measure", action="store_true",
                   help="beside the chart, each spec's forward latency measured on this CPU (batch 1) against its MACs")

    p = sub.add_parser("compare", help="two specs' summaries side by side, two variants (--vs), or run folders")
    _common(p, many=True)
    from .comparison import add_compare_options
    add_compare_options(p)          # --vs, --format table|markdown|csv|json, --measure

    from .benchmark import add_parser as add_bench
    from .evaluation import add_parser as add_eval
    from .training import add_parser as add_train
    add_train(sub)
    add_eval(sub)
    add_bench(sub)
    from .sampling import add_parser as add_sample
    add_sample(sub)
    from .generate import add_parser as add_generate
    from .search import add_parser as add_search
    add_search(sub)
    add_generate(sub)

    from .fmt import add_parser as add_fmt
    add_fmt(sub)
    p = sub.add_parser("lsp", help="the language server: LSP over stdio, for editors (docs/editors.md)",
                       description="Serve the Language Server Protocol on standard input and output: "
                       "diagnostics, hover, go to definition, completion and formatting of .arch files.")
    _plugin_option(p)

    p = sub.add_parser("zoo", help="table of every spec in a folder")
    p.add_argument("dir", nargs="?", default=None,
                   help="the folder of specs (default: ./specs when there is one, else the packaged zoo)")
    p.add_argument("--format", choices=("table", "markdown"), default="table",
                   help="the output format (default: table)")
    p.add_argument("--parity", action="store_true", help="also run the reference parity checks (slow)")
    _plugin_option(p)

    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                       description="Print a completion script for SHELL on standard output.",
                       epilog='bash: eval "$(archdsl completion bash)" in ~/.bashrc, or save it as '
                              "~/.local/share/bash-completion/completions/archdsl; zsh: save it as _archdsl in a "
                              "folder of $fpath; fish: save it as ~/.config/fish/completions/archdsl.fish")
    p.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    return parser


# ----------------------------------------------------------------------------- the commands
# Each checks its spec with the front end and hands the IR to its stage.

def cmd_check(args) -> int:
    from .frontend import check
    from .report import print_check
    graph = check(args.file, **check_args(args))
    print_check(graph, quiet=args.quiet, wide=args.wide)
    return 0


def cmd_compile(args) -> int:
    """``archdsl compile FILE [-o OUT.py]``."""
    from .compile import class_name
    from .export import run_export
    from .files import output_name
    from .frontend import check
    args.output = args.output or default_output(args, ".py")
    kwargs = check_args(args)
    graph = check(args.file, **kwargs)
    run_export(graph, args.output, kwargs.get("limits"))
    print(f"wrote {output_name(args.output)}: class {class_name(graph.network)}, {graph.total_params:,} parameters")
    return 0


def cmd_render(args) -> int:
    """``archdsl render FILE [-o OUT] [--format F]``: 0 drawn, 1 a spec error (drawn up to it if
    possible) or a drawing too large for Graphviz, 2 usage."""
    import shutil

    from . import render
    from .draw import FORMATS, INSTALL, OptionError
    args.output = args.output or default_output(args, "." + (args.format or "svg"))
    out = Path(args.output)
    fmt = args.format or FORMATS.get(out.suffix.lower())
    if fmt is None:
        if args.output == "-":
            return _usage("-o - writes to standard output: name the format with --format svg|png|pdf|dot")
        return _usage(f"cannot tell the format of {args.output!r}: use one of {', '.join(FORMATS)} or --format")
    error = None
    options, params = split_params(check_args(args))
    try:
        drawing = render(args.file, depth=args.depth, expand=args.expand, unroll=args.unroll,
                         rankdir=args.rankdir, layout=args.layout, max_nodes=args.max_nodes, max_edges=args.max_edges,
                         params=params, **options)
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
            _error(f"Graphviz could not draw {args.output}: {e}")
            return 1
        except LimitError as e:  # dot ran out of time or memory
            if error is None:
                raise
            _diagnostic(e)
        else:
            if args.output != "-":
                print(f"wrote {args.output}")
    if error is not None:
        _diagnostic(error)
        return 1
    return 0


def cmd_summary(args) -> int:
    from . import summary
    from .analyze import FORMATS, write_summary
    try:
        options, params = split_params(check_args(args))
        s = summary(args.file, batch=args.batch, dtype=args.dtype, depth=args.depth, params=params, **options)
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
    args.output = args.output or "chart.png"
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
    from .training import run
    return run(args)


def cmd_eval(args) -> int:
    from .evaluation import run
    return run(args)


def cmd_bench(args) -> int:
    from .benchmark import run
    return run(args)


def cmd_sample(args) -> int:
    from .sampling import run
    return run(args)


def cmd_search(args) -> int:
    from .search import run
    return run(args)


def cmd_generate(args) -> int:
    from .generate import run
    return run(args)


def cmd_fmt(args) -> int:
    from .fmt import run
    return run(args)


def cmd_lsp(args) -> int:
    try:
        from .lsp import serve  # late: pygls is needed by this command alone
    except ImportError as e:
        return _usage(f"archdsl lsp needs pygls 2: pip install 'pygls>=2,<3' ({e})")
    serve()
    return 0


def cmd_zoo(args) -> int:
    from .frontend import check
    from .zoo import print_zoo
    folder = args.dir
    if folder is None:   # a checkout's specs/, else the zoo the package ships
        from pathlib import Path

        from .loader import library_dirs
        folder = "specs" if Path("specs").is_dir() else str(library_dirs()[1])
    print_zoo(folder, check=check, fmt=args.format, run_parity=args.parity)
    return 0


def cmd_completion(args) -> int:
    sys.stdout.write(completion_script(args.shell))
    return 0


COMMANDS = {"check": cmd_check, "compile": cmd_compile, "render": cmd_render, "summary": cmd_summary,
            "chart": cmd_chart, "compare": cmd_compare, "zoo": cmd_zoo, "train": cmd_train, "eval": cmd_eval,
            "bench": cmd_bench, "sample": cmd_sample, "search": cmd_search, "generate": cmd_generate,
            "fmt": cmd_fmt, "lsp": cmd_lsp, "completion": cmd_completion}


# ----------------------------------------------------------------------------- shell completion
# `archdsl completion bash|zsh|fish`: a script written from the parser itself, so it offers
# every command, every option and each option's values (its choices, files, folders, specs).

SHELLS = ("bash", "zsh", "fish")
_WORD = re.compile(r"[A-Za-z0-9_.+-]+")


def _completes(action) -> tuple[str, list]:
    """What an argument's value completes to: ``("flag", [])`` (no value), ``("words", choices)``,
    ``("spec", [])`` (an .arch file or a zoo name), ``("file", [])``, ``("dir", [])`` or ``("text", [])``."""
    if action.nargs == 0:
        return "flag", []
    if action.choices:
        return "words", [str(c) for c in action.choices]
    meta = str(action.metavar or action.dest or "").upper()
    if action.nargs == argparse.REMAINDER or not action.option_strings and meta in ("FILE", "SPEC"):
        return "spec", []
    if "DIR" in meta:
        return "dir", []
    if "FILE" in meta or "OUT" in meta or action.dest in ("output", "weights"):
        return "file", []
    return "text", []


def _commands(parser) -> list[tuple[str, str, list, list]]:
    """(name, help, options, positionals) of each command; an option is (option strings, help,
    repeatable, completes), a positional (name, nargs, completes)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help or "" for c in sub._choices_actions}
    out = []
    for name, p in sub.choices.items():
        options, positionals = [], []
        for a in p._actions:
            if a.option_strings:
                options.append((a.option_strings, _one_line(a.help), isinstance(a, argparse._AppendAction),
                                _completes(a)))
            else:
                positionals.append((a.metavar or a.dest, a.nargs, _completes(a)))
        out.append((name, _one_line(helps.get(name)), options, positionals))
    return out


def _one_line(text) -> str:
    """A help text as a one-line completion description."""
    text = " ".join(str(text or "").replace("%%", "%").split())
    return text if len(text) <= 80 else text[:77].rsplit(" ", 1)[0] + "..."


def _zoo_names() -> list[str]:
    from .loader import library_dirs
    try:
        return sorted(p.stem for p in library_dirs()[1].glob("*.arch") if _WORD.fullmatch(p.stem))
    except OSError:
        return []


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    commands, zoo = _commands(build_parser()), _zoo_names()
    head = (f"# {shell} completion for archdsl {__version__}, written by `archdsl completion {shell}`.\n"
            "# It completes commands, options, their values, .arch files and zoo network names.\n")
    if shell == "zsh":   # its first line names the command it completes
        head = "#compdef archdsl\n" + head
    return head + {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](commands, zoo)


def _words(items) -> str:
    """Words for a script, space-separated: only those that need no quoting in any shell."""
    return " ".join(w for w in items if _WORD.fullmatch(w))


def _bash(commands, zoo) -> str:
    value = {"spec": '_archdsl_specs "$cur"', "file": "_archdsl_files -f", "dir": "_archdsl_files -d", "text": ":"}
    lines = ['# Load it with  eval "$(archdsl completion bash)"  or save it as',
             "# ~/.local/share/bash-completion/completions/archdsl", "",
             "_archdsl_files() {", "    local IFS=$'\\n'", "    compopt -o filenames 2>/dev/null",
             '    COMPREPLY+=($(compgen "$1" -- "$cur"))', "}", "",
             "_archdsl_specs() {", f'    COMPREPLY+=($(compgen -W "{_words(zoo)}" -- "$1"))',
             "    local IFS=$'\\n'", "    compopt -o filenames 2>/dev/null",
             "    COMPREPLY+=($(compgen -f -X '!*.arch' -- \"$1\") $(compgen -d -- \"$1\"))", "}", "",
             "_archdsl() {", "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= i",
             "    COMPREPLY=()", "    for ((i = 1; i < COMP_CWORD; i++)); do",
             '        if [[ ${COMP_WORDS[i]} != -* ]]; then cmd=${COMP_WORDS[i]}; break; fi', "    done",
             "    case $cmd in",
             (f'        "") COMPREPLY=($(compgen -W "{_words(c[0] for c in commands)} -h --help --version" '
              '-- "$cur")) ;;')]
    for name, _, options, positionals in commands:
        cases: dict[str, list] = {}   # what to complete -> the options whose value it completes
        for strings, _, _, (kind, choices) in options:
            if kind != "flag":
                action = f'COMPREPLY=($(compgen -W "{_words(choices)}" -- "$cur"))' if kind == "words" else value[kind]
                cases.setdefault(action, []).extend(strings)
        lines += [f"        {name})", "            case $prev in"]
        lines += [f"                {'|'.join(strings)}) {action}; return ;;" for action, strings in cases.items()]
        lines.append("            esac")
        kind, choices = positionals[0][2] if positionals else ("text", [])
        rest = f'COMPREPLY=($(compgen -W "{_words(choices)}" -- "$cur"))' if kind == "words" else value[kind]
        flags = _words(s for o in options for s in o[0])
        lines.append(f'            if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "{flags}" -- "$cur")); '
                     f'else {rest}; fi ;;')
    lines += ["    esac", "}", "", "complete -F _archdsl archdsl", ""]
    return "\n".join(lines)


def _zsh(commands, zoo) -> str:
    def q(text: str) -> str:   # inside single quotes, and inside an _arguments [explanation]
        return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("'", "'\\''")

    def action(kind, choices) -> str:
        return {"words": f"({_words(choices)})", "spec": "_archdsl_specs",
                "file": "_files", "dir": "_files -/", "text": " "}[kind]

    def message(text) -> str:
        return re.sub(r"[^A-Za-z0-9_=.,+ /-]", "", str(text)).lower() or "value"

    lines = ["# Save it as _archdsl in a folder of $fpath (before compinit runs), or source it after compinit.", "",
             "_archdsl_specs() {",
             "    _alternative 'files:spec file:_files -g \"*.arch(-.)\"' \\",
             f"        'zoo:zoo network:({_words(zoo)})'", "}", "",
             "_archdsl() {", "    local curcontext=$curcontext state line ret=1", "    local -a commands",
             "    commands=("]
    lines += ["        '" + f"{name}:{help_}".replace("'", "'\\''") + "'" for name, help_, _, _ in commands]
    lines += ["    )", "    _arguments -C \\", "        '(- *)'{-h,--help}'[show help and exit]' \\",
              "        '(- *)--version[print the version of archdsl and exit]' \\",
              "        '1:command:->command' '*::argument:->argument' && ret=0", "    case $state in",
              "        command) _describe -t commands 'archdsl command' commands && ret=0 ;;",
              "        argument)", "            curcontext=${curcontext%:*:*}:archdsl-$words[1]:",
              "            case $words[1] in"]
    for name, _, options, positionals in commands:
        specs = []
        for strings, help_, many, (kind, choices) in options:
            names = strings[0] if len(strings) == 1 else "{" + ",".join(strings) + "}"
            prefix = "'*'" if many else f"'({' '.join(strings)})'" if len(strings) > 1 else ""
            value = "" if kind == "flag" else f":{message(strings[-1].lstrip('-'))}:{action(kind, choices)}"
            body = f"[{q(help_)}]{value}"
            specs.append(f"{prefix}{names}'{body}'" if prefix else f"'{names}{body}'")
        for meta, nargs, (kind, choices) in positionals:
            where = "*" if nargs in ("+", "*") else "1"
            specs.append(f"'{where}:{':' if nargs == '?' else ''}{message(meta)}:{action(kind, choices)}'")
        lines.append(f"                {name}) _arguments \\")
        lines += [f"                    {spec} \\" for spec in specs]
        lines.append("                    && ret=0 ;;")
    lines += ["            esac ;;", "    esac", "    return ret", "}", "",
              "# autoloaded from $fpath: complete now; sourced: register the function",
              'if [[ $funcstack[1] == _archdsl ]]; then _archdsl "$@"; else compdef _archdsl archdsl; fi', ""]
    return "\n".join(lines)


def _fish(commands, zoo) -> str:
    def q(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    specs = "(__fish_complete_suffix .arch) " + _words(zoo)
    values = {"flag": "", "spec": f" -x -a {q(specs)}", "file": " -r -F",
              "dir": " -x -a '(__fish_complete_directories)'", "text": " -x"}
    lines = ["# Save it as ~/.config/fish/completions/archdsl.fish, or: archdsl completion fish | source", "",
             "function __archdsl_command --description 'the archdsl command on the line'",
             "    set -l words (commandline -opc)", "    for w in $words[2..-1]",
             "        if not string match -q -- '-*' $w", "            echo $w", "            return 0", "        end",
             "    end", "    return 1", "end", "",
             "function __archdsl_using --description 'whether the archdsl command on the line is $argv[1]'",
             "    set -l cmd (__archdsl_command)", '    test "$cmd" = "$argv[1]"', "end", "",
             "complete -c archdsl -f",
             "complete -c archdsl -n 'not __archdsl_command' -s h -l help -d 'show help and exit'",
             "complete -c archdsl -n 'not __archdsl_command' -l version -d 'print the version of archdsl and exit'"]
    lines += [f"complete -c archdsl -n 'not __archdsl_command' -a {name} -d {q(help_)}"
              for name, help_, _, _ in commands]
    for name, _, options, positionals in commands:
        lines.append("")
        when = f"-n '__archdsl_using {name}'"
        for strings, help_, _, (kind, choices) in options:
            names = " ".join(f"-l {s[2:]}" if s.startswith("--") else f"-s {s[1:]}" for s in strings)
            what = f" -x -a {q(_words(choices))}" if kind == "words" else values[kind]
            lines.append(f"complete -c archdsl {when} {names}{what} -d {q(help_)}")
        for meta, _, (kind, choices) in positionals[:1]:
            if kind == "words":
                lines.append(f"complete -c archdsl {when} -a {q(_words(choices))}")
            elif kind == "spec":
                lines.append(f"complete -c archdsl {when} -a {q(specs)}")
            elif kind == "dir":
                lines.append(f"complete -c archdsl {when} -a '(__fish_complete_directories)'")
    return "\n".join(lines) + "\n"


def _read_stdin(args) -> str:
    """The spec on standard input: at most the source limit, UTF-8 (E006, E003 as for files)."""
    from .loader import decode_source
    limits = Limits.of(_pairs(args.limit, "limit"))
    return decode_source(sys.stdin.buffer.read(limits.source + 1), "<stdin>", limits)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "plugin", None):   # before anything reads a spec; a spec alone never loads Python
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
        _diagnostic(e)
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
        return _usage(f"{what}{e.strerror or e}")


if __name__ == "__main__":
    sys.exit(main())
