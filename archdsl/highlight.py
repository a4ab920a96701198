"""Highlighting ``.arch`` code: a Pygments lexer, and the TextMate grammar of the VS Code extension.

The lexer is registered as the Pygments lexer ``arch`` (files ``*.arch``) through the package's
``pygments.lexers`` entry point, so everything built on Pygments highlights ```` ```arch ```` blocks
once archdsl is installed: ``rich`` (``Syntax(code, "arch")``), Jupyter, Sphinx and mkdocs.

Both follow ``grammars/arch.lark`` and draw the same distinctions the parser's post-lexer draws
(``archdsl/syntax.py``): a ``name:`` is a label in a statement and a dict key or slice bound inside
an expression, and a join keyword (``add``, ``concat``...) opens a join only where a chain item
stands. So the lexer keeps a small stack of contexts:

* ``root``, statements (bodies at any depth): labels, ops, joins, chains;
* ``paren``, inside ``( )`` and ``[ ]``: arguments, lists, slices, comprehensions;
* ``dict``, a ``{`` that opens an expression (after ``=`` of ``let`` or ``meta``, or in an argument);
* ``line``, the expression of a ``let``, ``meta``, ``assert`` or ``require``, up to the statement's end;
* ``header``, the condition of an ``if`` or the loop of a ``for``, up to the ``{`` of its body (or the
  line's end: the ``if`` of a conditional repetition count, ``relu * 2 if deep else 1``).

Op names come from the registry (``archdsl.ops.OPS``, built-in ops; a plugin's ops are plain names).
``python -m archdsl.highlight`` rewrites ``editors/vscode/syntaxes/arch.tmLanguage.json`` from
:func:`textmate_grammar`, which uses the same regular expressions and the scopes in :data:`SCOPES`.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Whitespace,
                            _TokenType)

from .ops import OPS

__all__ = ["ArchLexer", "SCOPES", "textmate_grammar", "OP_NAMES", "KEYWORDS", "DECLARATIONS", "JOIN_KINDS",
           "BUILTIN_FUNCTIONS"]

# ----------------------------------------------------------------------------- the vocabulary

#: statement keywords that declare something (Keyword.Declaration) and those that steer (Keyword)
DECLARATIONS = ("block", "network", "inline", "let", "meta", "init", "input", "output", "param", "buffer")
CONTROL = ("if", "else", "for", "in", "assert", "require", "tap")
KEYWORDS = ("import", *DECLARATIONS, *CONTROL)
#: the join kinds (grammars/arch.lark JOIN_KIND): keywords where a chain item stands
JOIN_KINDS = ("concat", "add", "mean", "mul", "sub", "matmul", "stack", "sdpa", "dense", "residual")
CONSTANTS = ("true", "false", "none")
WORD_OPERATORS = ("and", "or", "not")
#: the functions an expression may call (archdsl/evaluate.py BUILTINS; a test keeps the two equal)
BUILTIN_FUNCTIONS = ("abs", "choice", "enumerate", "float", "float_range", "int", "int_range", "len", "list", "max",
                     "min", "range", "round", "sum", "zip")
#: the registry's ops that are not keywords or join kinds (``input`` and ``param`` are keywords)
OP_NAMES = tuple(sorted(set(OPS) - set(KEYWORDS) - set(JOIN_KINDS)))

# ----------------------------------------------------------------------------- shared regular expressions
# Written in the common ground of Python's `re` and Oniguruma (TextMate): no possessive quantifiers,
# no \h or \G, fixed-width lookbehind only.

END = r"(?![A-Za-z0-9_])"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
FLOAT = r"(?:\d[\d_]*\.\d[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?|\d[\d_]*[eE][+-]?\d+"
INTEGER = r"\d[\d_]*"
INTERPOLATION = r"\{[^{}\n]*\}"
#: a label: the text before `:` (group 1), blanks (2) and the colon (3); `:=` is no label
LABEL = r"((?:[A-Za-z0-9_]|" + INTERPOLATION + r")+)([ \t]*)(:)(?!=)"
QUOTED_LABEL = r'("(?:[^"\\\n.{}]|' + INTERPOLATION + r')*")([ \t]*)(:)(?!=)'
OPERATOR = r"\*\*|//|==|!=|<=|>=|[-+*/%<>=]"


def _alternation(names) -> str:
    """A regex matching any of the words, longest first, as a whole word."""
    return r"\b(?:" + "|".join(sorted(names, key=lambda n: (-len(n), n))) + r")" + END


# ----------------------------------------------------------------------------- the Pygments lexer

def _leave(lexer, match):
    """A zero-width match that only changes the context: no token."""
    return iter(())


def _label(lexer, match):
    """A label: its text as Name.Label, each `{expr}` piece as an interpolated expression."""
    pos = match.start(1)
    for piece in re.split("(" + INTERPOLATION + ")", match.group(1)):
        if len(piece) >= 2 and piece[0] == "{" and piece[-1] == "}":
            yield pos, String.Interpol, "{"
            for index, token, value in lexer.get_tokens_unprocessed(piece[1:-1], stack=("root", "paren")):
                yield pos + 1 + index, token, value
            yield pos + len(piece) - 1, String.Interpol, "}"
        elif piece:
            yield pos, Name.Label, piece
        pos += len(piece)
    if match.group(2):
        yield match.start(2), Whitespace, match.group(2)
    yield match.start(3), Punctuation, ":"


class ArchLexer(RegexLexer):
    """The .arch language of archdsl: neural network architectures as chains of ops and blocks."""

    name = "arch"
    aliases = ["arch"]
    filenames = ["*.arch"]
    mimetypes = ["text/x-arch"]

    _expression = [
        (r"\\[ \t\f]*\r?\n", Punctuation),                      # a line continuation
        (r"#.*?$", Comment.Single),
        (r"in(?=\s*\.)" + END, Name.Builtin.Pseudo),             # `in.c`: the block's input tensor
        (words(CONSTANTS, prefix=r"\b", suffix=END), Keyword.Constant),
        (words(WORD_OPERATORS, prefix=r"\b", suffix=END), Operator.Word),
        (words(DECLARATIONS, prefix=r"\b", suffix=END), Keyword.Declaration),
        (words(("import",), prefix=r"\b", suffix=END), Keyword.Namespace),
        (words(CONTROL, prefix=r"\b", suffix=END), Keyword),
        (words(BUILTIN_FUNCTIONS, prefix=r"\b", suffix=END), Name.Builtin),
        ("@" + NAME, Name.Variable),
        (NAME, Name),
        (FLOAT, Number.Float),
        (INTEGER, Number.Integer),
        ('"', String.Double, "dq"),
        ("'", String.Single, "sq"),
        (r"->", Operator),
        (OPERATOR, Operator),
        (r"[(\[]", Punctuation, "paren"),
        (r"\{", Punctuation, "dict"),
        (r"[,:.;]", Punctuation),
    ]

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"\\[ \t\f]*\r?\n", Punctuation),
            (r"#.*?$", Comment.Single),
            (r"(import)" + END, Keyword.Namespace),
            (r"(?:(inline)(\s+))?(block)(\s+)(" + NAME + ")",
             bygroups(Keyword.Declaration, Whitespace, Keyword.Declaration, Whitespace, Name.Function)),
            (r"(network)(\s+)(" + NAME + ")", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (r"(let|meta)([ \t]+)(" + NAME + r")([ \t]*)(=)",
             bygroups(Keyword.Declaration, Whitespace, Name, Whitespace, Operator), "line"),
            (r"(assert|require)" + END, Keyword, "line"),
            (r"(if|for)" + END, Keyword, "header"),
            (QUOTED_LABEL, _label),
            (LABEL, _label),
            (words(JOIN_KINDS, prefix=r"\b", suffix=END), Keyword.Pseudo),
            (_alternation(OP_NAMES), Name.Builtin),
            (r"\{|\}", Punctuation),
            (r"\)|\]", Punctuation),
            include("expression"),
        ],
        "expression": _expression,
        "paren": [
            (r"\s+", Whitespace),
            (r"\)|\]", Punctuation, "#pop"),
            (r"(?=\})", _leave, "#pop"),                          # unbalanced: back to the statement
            include("expression"),
        ],
        "dict": [
            (r"\s+", Whitespace),
            (r"\}", Punctuation, "#pop"),
            (r"(?=[)\]])", _leave, "#pop"),
            include("expression"),
        ],
        "line": [
            (r"\\[ \t\f]*\r?\n", Punctuation),
            (r"\n", Whitespace, "#pop"),
            (r";", Punctuation, "#pop"),
            (r"(?=[})\]])", _leave, "#pop"),
            (r"[ \t\f\r]+", Whitespace),
            include("expression"),
        ],
        "header": [
            (r"(?=\{)", _leave, "#pop"),
            (r"\\[ \t\f]*\r?\n", Punctuation),
            (r"\n", Whitespace, "#pop"),                          # a ternary's `if` in a count ends at the line
            (r"[ \t\f\r]+", Whitespace),
            (r"(?=[})\];])", _leave, "#pop"),
            include("expression"),
        ],
        "dq": [
            (r'[^"\\\n]+', String.Double),
            (r"\\[^\n]", String.Escape),
            (r'"', String.Double, "#pop"),
            (r"\n", Error, "#pop"),                                 # unterminated: the string ends at the line
        ],
        "sq": [
            (r"[^'\\\n]+", String.Single),
            (r"\\[^\n]", String.Escape),
            (r"'", String.Single, "#pop"),
            (r"\n", Error, "#pop"),
        ],
    }

    def analyse_text(text):
        """A `network NAME(` with a chain arrow is likely .arch."""
        if re.search(r"^\s*network\s+" + NAME + r"\s*\(", text, re.M) and "->" in text:
            return 0.3
        return 0.0


# ----------------------------------------------------------------------------- the TextMate grammar

#: each token class the lexer emits and the TextMate scope (without `.arch`) that renders it
SCOPES: dict[_TokenType, str] = {
    Comment.Single: "comment.line.number-sign",
    Keyword: "keyword.control",
    Keyword.Namespace: "keyword.control.import",
    Keyword.Declaration: "storage.type",
    Keyword.Pseudo: "keyword.other.join",
    Keyword.Constant: "constant.language",
    Operator: "keyword.operator",
    Operator.Word: "keyword.operator.logical",
    Name.Builtin: "support.function",
    Name.Builtin.Pseudo: "variable.language.input",
    Name.Function: "entity.name.function",
    Name.Class: "entity.name.type.network",
    Name.Label: "entity.name.label",
    Name.Variable: "variable.other.reference",
    Number.Integer: "constant.numeric.integer",
    Number.Float: "constant.numeric.float",
    String.Double: "string.quoted.double",
    String.Single: "string.quoted.single",
    String.Escape: "constant.character.escape",
    String.Interpol: "punctuation.section.interpolation",
    Punctuation: "punctuation",
}


def _scope(token: _TokenType, detail: str = "") -> str:
    return ".".join(filter(None, (SCOPES[token], detail, "arch")))


def _string(quote: str, token: _TokenType) -> dict:
    return {"begin": quote, "end": quote + "|$", "name": _scope(token),
            "patterns": [{"match": r"\\.", "name": _scope(String.Escape)}]}


def _words(names, token: _TokenType, detail: str = "") -> dict:
    return {"match": _alternation(names), "name": _scope(token, detail)}


def _bracketed(begin: str, end: str, kind: str) -> dict:
    return {"begin": begin, "end": end, "beginCaptures": {"0": {"name": _scope(Punctuation, f"section.{kind}.begin")}},
            "endCaptures": {"0": {"name": _scope(Punctuation, f"section.{kind}.end")}},
            "patterns": [{"include": "#expression"}]}


def _label_rule(regex: str) -> dict:
    return {"match": r"(?<![A-Za-z0-9_])" + regex,
            "captures": {"1": {"name": _scope(Name.Label), "patterns": [{"include": "#interpolation"}]},
                         "3": {"name": _scope(Punctuation, "separator.label")}}}


def _expression_until(begin: str, end: str, captures: dict) -> dict:
    return {"begin": begin, "end": end, "beginCaptures": captures,
            "patterns": [{"include": "#comment"}, {"include": "#expression"}]}


def textmate_grammar() -> dict:
    """The TextMate grammar of ``editors/vscode`` (scope ``source.arch``), as a JSON-ready dict."""
    statement_end = r"(?=[;})\]])|$"
    repository = {
        "comment": {"match": "#.*$", "name": _scope(Comment.Single)},
        "continuation": {"match": r"\\[ \t\f]*$", "name": _scope(Punctuation, "separator.continuation")},
        "statement": {"patterns": [
            {"include": "#comment"},
            {"include": "#continuation"},
            {"match": r"\b(import)" + END, "name": _scope(Keyword.Namespace)},
            {"match": r"\b(?:(inline)\s+)?(block)\s+(" + NAME + ")",
             "captures": {"1": {"name": _scope(Keyword.Declaration)}, "2": {"name": _scope(Keyword.Declaration)},
                          "3": {"name": _scope(Name.Function, "block")}}},
            {"match": r"\b(network)\s+(" + NAME + ")",
             "captures": {"1": {"name": _scope(Keyword.Declaration)}, "2": {"name": _scope(Name.Class)}}},
            _expression_until(r"\b(let|meta)[ \t]+(" + NAME + r")[ \t]*(=)", statement_end,
                              {"1": {"name": _scope(Keyword.Declaration)}, "3": {"name": _scope(Operator)}}),
            _expression_until(r"\b(assert|require)" + END, statement_end, {"1": {"name": _scope(Keyword)}}),
            _expression_until(r"\b(if|for)" + END, r"(?=[{;})\]])|$", {"1": {"name": _scope(Keyword)}}),
            _label_rule(QUOTED_LABEL),
            _label_rule(LABEL),
            _words(JOIN_KINDS, Keyword.Pseudo),
            _words(OP_NAMES, Name.Builtin, "op"),
            {"match": r"[{}]", "name": _scope(Punctuation, "section.braces")},
            {"include": "#expression"},
        ]},
        "expression": {"patterns": [
            {"include": "#continuation"},
            {"match": r"\bin(?=\s*\.)" + END, "name": _scope(Name.Builtin.Pseudo)},
            _words(CONSTANTS, Keyword.Constant),
            _words(WORD_OPERATORS, Operator.Word),
            _words(DECLARATIONS, Keyword.Declaration),
            _words(CONTROL, Keyword),
            _words(BUILTIN_FUNCTIONS, Name.Builtin, "builtin"),
            {"match": "@" + NAME, "name": _scope(Name.Variable)},
            {"match": r"\b" + NAME},                                # plain names, so no number starts inside one
            {"match": r"(?<![A-Za-z0-9_])(?:" + FLOAT + ")", "name": _scope(Number.Float)},
            {"match": r"(?<![A-Za-z0-9_.])" + INTEGER, "name": _scope(Number.Integer)},
            _string('"', String.Double),
            _string("'", String.Single),
            {"match": "->", "name": _scope(Operator, "chain")},
            {"match": OPERATOR, "name": _scope(Operator)},
            _bracketed(r"\(", r"\)", "parens"),
            _bracketed(r"\[", r"\]", "brackets"),
            _bracketed(r"\{", r"\}", "braces"),
            {"match": ",", "name": _scope(Punctuation, "separator.comma")},
            {"match": ":", "name": _scope(Punctuation, "separator.colon")},
            {"match": ";", "name": _scope(Punctuation, "terminator.statement")},
            {"match": r"\.", "name": _scope(Punctuation, "accessor")},
        ]},
        "interpolation": {"patterns": [{
            "begin": r"\{", "end": r"\}", "beginCaptures": {"0": {"name": _scope(String.Interpol, "begin")}},
            "endCaptures": {"0": {"name": _scope(String.Interpol, "end")}}, "contentName": "meta.interpolation.arch",
            "patterns": [{"include": "#expression"}]}]},
    }
    return {"name": "arch", "scopeName": "source.arch", "fileTypes": ["arch"],
            "comment": "Generated by `python -m archdsl.highlight` from archdsl/highlight.py; do not edit by hand.",
            "patterns": [{"include": "#statement"}], "repository": repository}


GRAMMAR_FILE = Path("editors") / "vscode" / "syntaxes" / "arch.tmLanguage.json"


def grammar_text() -> str:
    return json.dumps(textmate_grammar(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the TextMate grammar to the path given (default editors/vscode/syntaxes/arch.tmLanguage.json)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else GRAMMAR_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(grammar_text(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
