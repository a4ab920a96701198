"""Diagnostics: source spans, the ArchError hierarchy and Rust-style rendering.

Every mistake a user can make is raised as an :class:`ArchError` carrying a stable
code (``E0xx``, catalogued in ``docs/errors.md``), the span it points at, the block
call stack that led there, notes (shapes involved) and an optional hint.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns are 1-based, ``end_col`` exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Frame:
    """One block call on the elaboration stack: which block, called where."""

    block: str
    span: Span


_SHOWN = 160  # characters of a source line a diagnostic shows


def _shown(value) -> str:
    """A value from the API in a message, bounded (values.show imports nothing of ours, but load it late)."""
    from .values import show
    return show(value)


def _cut(text: str, limit: int = 1000) -> str:
    """A message, note or hint cut to about ``limit`` characters (a name can be a megabyte long)."""
    return text if len(text) <= limit else f"{text[:limit * 3 // 4]} ... {text[-limit // 5:]}"


class ArchError(Exception):
    """A user-facing error in a spec, its arguments or its limits."""

    kind = "error"

    def __init__(self, code: str, message: str, span: Span | None = None, *,
                 stack: tuple[Frame, ...] = (), notes: list[str] | tuple[str, ...] = (),
                 hint: str | None = None, label: str | None = None):
        message = _cut(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.span = span
        self.stack = tuple(stack)
        self.notes = [_cut(n) for n in notes]
        self.hint = None if hint is None else _cut(hint)
        self.label = label
        self.sources: dict[str, str] = {}
        self.partial = None  # the IR elaborated before the failure, when there is one

    def __str__(self) -> str:
        return self.render()

    def render(self, sources: dict[str, str] | None = None, color: bool = False) -> str:
        """The full diagnostic: header, location, source line with caret, stack, notes, hint.

        ``color`` adds ANSI styles for a terminal (the CLI decides, ``report.use_color``): the
        header and carets red, the location and gutter blue, ``note``/``hint`` bold. The text
        is the same either way; without ``color`` it carries no escape sequence at all."""
        paint = _painter(color)
        sources = {**self.sources, **(sources or {})}
        lines = [paint("error", f"error[{self.code}]") + paint("bold", f": {self.message}")]
        span = self.span
        if span is not None:
            lines.append(f"  {paint('gutter', '-->')} {span}")
            text = sources.get(span.file)
            source_lines = text.split("\n") if text is not None else []
            if 0 < span.line <= len(source_lines):
                src = source_lines[span.line - 1].replace("\t", " ").encode("utf-8", "replace").decode("utf-8")
                gutter = str(span.line)
                pad = " " * len(gutter)
                width = (span.end_col - span.col) if span.end_line == span.line else len(src) - span.col + 1
                width = max(1, min(width, max(1, len(src) - span.col + 1)))
                col = span.col
                if len(src) > _SHOWN:  # a long line: show a window of it around the span
                    start = max(0, min(col - 1 - _SHOWN // 4, len(src) - _SHOWN))
                    src = ("..." if start else "") + src[start:start + _SHOWN] + \
                        ("..." if start + _SHOWN < len(src) else "")
                    col = col - start + (3 if start else 0)
                    width = min(width, _SHOWN - (col - 1) + (3 if start else 0))
                caret = "^" * max(1, width) + (" " + self.label if self.label else "")
                bar = paint("gutter", f"{pad} |")
                lines += [bar, f"{paint('gutter', f'{gutter} |')} {src}",
                          f"{bar} {' ' * (col - 1)}{paint('error', caret)}"]
        eq = paint("gutter", "=")
        for frame in reversed(self.stack):
            lines.append(f"  {eq} in block {frame.block}, called at {frame.span}")
        for note in self.notes:
            lines.append(f"  {eq} {paint('bold', 'note:')} {note}")
        if self.hint:
            lines.append(f"  {eq} {paint('hint', 'hint:')} {self.hint}")
        return "\n".join(lines)


_STYLES = {"error": "1;31", "bold": "1", "gutter": "1;34", "hint": "1;36"}  # ANSI SGR codes


def _painter(color: bool):
    """``paint(style, text)``: ``text`` in that style when ``color``, else unchanged."""
    if not color:
        return lambda style, text: text
    return lambda style, text: f"\x1b[{_STYLES[style]}m{text}\x1b[0m"


class ParseError(ArchError):
    """The text is not valid .arch syntax."""


class ElaborationError(ArchError):
    """Names, values, arguments or calls that do not make sense."""


class ShapeError(ArchError):
    """Tensor shapes that do not fit the op they flow into."""


class LimitError(ArchError):
    """A resource limit would be exceeded (recursion, nodes, repeats, parameters, tensor size)."""


class SpecImportError(ArchError):
    """An ``import`` that cannot be followed: missing, outside the allowed roots, or a cycle."""


class AssertionFailed(ArchError):
    """An ``assert`` statement in a spec was false."""


def did_you_mean(name: str, candidates) -> str | None:
    """A hint naming the closest candidate to a misspelt ``name``, or None."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None


@dataclass
class Limits:
    """Resource limits checked before anything is allocated; raise any of them by keyword."""

    depth: int = 64                 # nested block calls (and nested imports)
    nodes: int = 20_000             # IR nodes in one network (the zoo's largest has 783)
    repeat: int = 100_000           # count of one repetition or loop
    params: int = 10_000_000_000    # parameters of one network
    tensor: int = 2**31             # elements of one activation tensor (per image)
    size: int = 2**40               # magnitude of any integer computed by an expression
    sequence: int = 1_000_000       # items in any value built by an expression (nested ones counted)
    source: int = 2**20             # bytes of one source file
    nesting: int = 200              # nesting depth of brackets, blocks, expressions and values
    steps: int = 1_000_000          # elaboration work: statements, expressions, calls, items copied
    memory: int = 0                 # bytes of weights archdsl.load may allocate; 0: 80 % of what the process can get

    FIELDS = ("depth", "nodes", "repeat", "params", "tensor", "size", "sequence", "source", "nesting", "steps",
              "memory")

    @classmethod
    def of(cls, overrides: dict | None = None) -> "Limits":
        limits = cls()
        for key, value in (overrides or {}).items():
            if key not in cls.FIELDS:
                raise ArchError("E090", f"unknown limit `{key}`", hint=did_you_mean(key, cls.FIELDS)
                                or f"limits are: {', '.join(cls.FIELDS)}")
            least = 0 if key == "memory" else 1   # memory=0: the default, 80 % of what the process can get
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ArchError("E090", f"limit `{key}` must be a positive integer, got {_shown(value)}")
            setattr(limits, key, value)
        return limits


CODES = {
    "E001": "syntax error",
    "E002": "forbidden character (bidi or control)",
    "E003": "invalid UTF-8",
    "E004": "number literal too long",
    "E005": "nesting too deep",
    "E006": "source file too large",
    "E010": "unknown name",
    "E011": "not usable as an op",
    "E012": "unknown network parameter",
    "E013": "unknown network input",
    "E014": "network without input or output",
    "E015": "bad output",
    "E016": "no tensor where one is needed",
    "E017": "output given twice",
    "E018": "network-only statement in a block",
    "E019": "bad tap",
    "E020": "bad argument",
    "E021": "wrong number of arguments",
    "E022": "unknown keyword argument",
    "E023": "missing argument",
    "E024": "argument out of range",
    "E026": "unknown init scheme",
    "E030": "name used twice",
    "E031": "definition given twice",
    "E032": "invalid label",
    "E041": "wrong input rank",
    "E042": "groups do not divide channels",
    "E043": "invalid padding",
    "E044": "join inputs do not fit",
    "E045": "size shrinks to zero",
    "E046": "per-branch list of the wrong length",
    "E047": "invalid input shape",
    "E048": "empty join or dense block",
    "E050": "number not finite",
    "E051": "type error",
    "E052": "division by zero",
    "E053": "not callable",
    "E054": "bad index",
    "E055": "unknown attribute",
    "E056": "integer too large",
    "E057": "sequence too long",
    "E058": "cannot unpack",
    "E059": "bad repetition count",
    "E060": "assertion failed",
    "E061": "bad meta reference",
    "E062": "bad meta reference_args",
    "E063": "meta value of the wrong kind",
    "E070": "import not found",
    "E071": "import outside the allowed folders",
    "E072": "import cycle",
    "E073": "import of a non-.arch file",
    "E074": "spec that is not a regular file",
    "E075": "bad loading record",
    "E081": "tensor over the size limit",
    "E082": "parameters over the limit",
    "E083": "ops over the limit",
    "E084": "repetition over the limit",
    "E085": "block calls nested too deeply",
    "E086": "spec too deep to process",
    "E087": "elaboration steps over the limit",
    "E088": "weights too large for the memory",
    "E089": "allocating the weights failed",
    "E090": "bad limit",
    "E091": "drawing too large for Graphviz",
    "E092": "Graphviz ran out of time",
    "E093": "Graphviz ran out of memory",
    "E094": "invalid param or buffer shape",
    "E095": "param or buffer used as an activation",
    "E097": "plugin not found",
    "E098": "plugin cannot be loaded",
    "E099": "plugin op failed",
    "E100": "unknown data set",
    "E101": "data folder not found",
    "E102": "data folder without classes",
    "E103": "data set files missing or corrupt",
    "E104": "data that does not fit the network",
    "E105": "weights that cannot be loaded",
    "E106": "bad training option",
    "E107": "network outputs training cannot use",
    "E108": "loss not finite",
    "E109": "run folder cannot be written",
    "E110": "cannot resume the run",
    "E111": "option needs CUDA",
    "E112": "torch.compile failed",
    "E113": "--size on a network without a size parameter",
    "E114": "bad benchmark option",
    "E115": "not a run folder",
    "E116": "benchmarked model failed",
    "E117": "--sync-bn needs CUDA",
    "E118": "batch not shared equally by the processes",
    "E119": "invalid domain",
    "E120": "domain outside a network parameter",
    "E121": "value outside its domain",
    "E122": "requirement not met",
    "E123": "nothing to sample",
    "E124": "no valid design in the sample",
    "E125": "bad search option",
    "E126": "grid search over an infinite domain",
    "E127": "search storage cannot be opened",
    "E128": "no design of the search could be trained",
    "E129": "nothing to search",
    "E130": "bad generate option or budget out of reach",
    "E131": "no such model in the zoo",
    "E132": "weights file not found",
    "E133": "weights that do not fit the model",
    "E134": "weights the model has no source for",
    "E135": "formatting would change the spec (a formatter bug)",
}
