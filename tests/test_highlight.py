"""Highlighting: the Pygments lexer `arch` (archdsl/highlight.py) and the VS Code extension's TextMate grammar.

The lexer must tokenise every spec and every ```arch example of the docs without an Error token
and mark the language's parts as what they are; the entry point must make it Pygments' `arch`
(so rich, Jupyter, Sphinx and mkdocs find it); and the TextMate grammar must be the one
highlight.py generates, with every pattern a valid regular expression and the scopes the
extension's package.json names.

There is no Oniguruma engine in the test environment, so the grammar's patterns are compiled
with Python's `re` after two translations (`(?<name>` to `(?P<name>`, `\\z` to `\\Z`), once a
check has refused the Oniguruma constructs `re` lacks or reads differently (`\\G`, `\\K`, `\\h`,
`\\H`, `\\R`, `\\X`, `\\p{...}`, `(?~...)`, and the hexadecimal `\\x{...}`).
"""
from __future__ import annotations

import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pygments.token import Error, Keyword, Name, Number, Operator, Punctuation, String, Comment, Whitespace

from archdsl.highlight import (BUILTIN_FUNCTIONS, JOIN_KINDS, KEYWORDS, OP_NAMES, SCOPES, ArchLexer, grammar_text,
                               textmate_grammar)

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
# examples whose text stands for bytes Markdown cannot hold (errors.md's E003 writes an invalid
# UTF-8 byte as `\xff`): a stray backslash is rightly an Error token there
LEXICAL_EXAMPLES = {("errors.md", "E003")}


def specs() -> list[Path]:
    return sorted((ROOT / "specs").glob("*.arch")) + sorted((ROOT / "specs" / "lib").glob("*.arch"))


def doc_examples() -> list[tuple[str, str]]:
    """(where, code) for each ```arch block of the README and docs/ (docs/_pending too)."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```arch[ \t]*\n(.*?)^```", text, re.S | re.M):
            headings = re.findall(r"^#+\s+(\S+)", text[:match.start()], re.M)
            if (path.name, headings[-1] if headings else "") in LEXICAL_EXAMPLES:
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def errors_in(code: str) -> list[str]:
    tokens = list(ArchLexer().get_tokens_unprocessed(code))
    assert "".join(value for _, _, value in tokens) == code          # lossless: every character in a token
    return [f"line {code.count(chr(10), 0, at) + 1}: {value!r}" for at, token, value in tokens if token in Error]


def test_every_spec_and_doc_example_lexes_without_errors():
    sources = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in specs()] + doc_examples()
    assert len(sources) > 100
    bad = {where: errors for where, code in sources if (errors := errors_in(code))}
    assert not bad, f"Error tokens: {bad}"


def test_the_lexer_reads_labels_joins_numbers_and_strings_where_the_parser_does():
    """On every spec and doc example, the parser's own tokens (after its post-lexer, which tells a
    label from a dict key or a slice bound) and the lexer's agree on where labels, join kinds,
    numbers and strings are."""
    from archdsl.syntax import _parser
    parser = _parser()
    sources = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in specs()] + doc_examples()
    compared = 0
    for where, code in sources:
        try:
            theirs = list(parser.lex(code))
        except Exception:            # an example of a mistake the parser's lexer refuses: nothing to compare
            continue
        compared += 1
        ours = {at: (token, value) for at, token, value in ArchLexer().get_tokens_unprocessed(code)}
        labels = [(t.start_pos, t.end_pos) for t in theirs if t.type == "LABEL"]
        for start, end in labels:
            assert ours.get(end - 1) == (Punctuation, ":"), f"{where}: the label at {start} ends elsewhere"
            assert ours[start][0] in (Name.Label, String.Interpol), f"{where}: no label at {start}"
        in_label = {at for start, end in labels for at in range(start, end)}
        assert {at for at, (token, _) in ours.items() if token is Name.Label} <= in_label, where
        joins = {t.start_pos for t in theirs if t.type == "JOIN_KIND"}
        assert joins == {at for at, (token, _) in ours.items() if token is Keyword.Pseudo}, where
        numbers = {t.start_pos for t in theirs if t.type == "NUMBER"}
        assert numbers == {at for at, (token, _) in ours.items() if token in Number and at not in in_label}, where
        for t in theirs:
            if t.type == "STRING":
                assert ours.get(t.start_pos, (None,))[0] in String and ours[t.start_pos][1] == t.value[0], where
    assert compared > 100


def test_a_broken_string_and_a_stray_character_are_error_tokens():
    assert errors_in('let x = "open\n') == ["line 1: '\\n'"]
    assert errors_in("conv(3) $ relu\n") == ["line 1: '$'"]


SAMPLE = '''import "std/resnet.arch"   # blocks
block unit(c, stride = 1) { add {
    { conv1: conv(c, 3, stride=stride) -> bn -> relu }
    if stride != 1 or in.c != c { downsample: conv(c, 1, bias=false) }
} }
network net(classes = 10) {
    meta args = {"size": 224, "xs": [1:2]}
    let w = 1_000 * 2.5e-3 if true else none
    input image: [3, 32, 32]
    param token: [1, 1, 8] = zeros
    for i in range(3) { layer{i+1}: unit(8) * 2; 0: relu; "b-{i}": tap -> @token }
    head: concat(dim=0) { {}; @token } -> fc: linear(classes)
    mean { relu; gelu } -> flatten
}
'''


def tokens_of(code: str) -> list[tuple[object, str]]:
    return [(token, value) for token, value in ArchLexer().get_tokens(code) if value.strip()]


def test_the_lexer_marks_each_part_of_the_language():
    tokens = tokens_of(SAMPLE)

    def kinds(value: str) -> list:
        return [token for token, text in tokens if text == value]

    assert kinds("import") == [Keyword.Namespace]
    assert kinds("# blocks") == [Comment.Single]
    assert kinds("unit") == [Name.Function, Name]                    # the definition; its call is a name
    assert kinds("net") == [Name.Class]
    assert kinds("add") == kinds("concat") == kinds("mean") == [Keyword.Pseudo]   # join kinds
    assert kinds("conv1") == kinds("downsample") == kinds("image") == kinds("token") == [Name.Label] * 1
    assert kinds("layer") == [Name.Label] and kinds("0") == [Name.Label, Number.Integer]   # `0:`, `dim=0`
    assert ('"b-', Name.Label) in [(v, t) for t, v in tokens]
    assert kinds("conv") == [Name.Builtin] * 2 and kinds("relu") == [Name.Builtin] * 3
    assert kinds("linear") == kinds("flatten") == [Name.Builtin]
    assert kinds("range") == [Name.Builtin]                          # an expression's function
    assert kinds("in") == [Name.Builtin.Pseudo, Keyword]             # `in.c`, then `for i in`
    assert kinds("stride") == [Name, Name, Name, Name]
    assert kinds("1_000") == [Number.Integer] and kinds("2.5e-3") == [Number.Float]
    assert kinds("224") == [Number.Integer] and kinds('"') == [String.Double] * 6 + [Name.Label]
    assert kinds("size") == [String.Double]                          # a dict key is no label
    assert kinds("true") == kinds("none") == kinds("false") == [Keyword.Constant]
    assert kinds("or") == [Operator.Word]
    assert kinds("let") == kinds("meta") == kinds("input") == kinds("param") == kinds("block") == [Keyword.Declaration]
    assert kinds("if") == [Keyword, Keyword] and kinds("for") == [Keyword] and kinds("tap") == [Keyword]
    assert kinds("@token") == [Name.Variable] * 2
    assert kinds("->") == [Operator] * 5 and kinds("!=") == [Operator] * 2
    assert kinds(":") == [Punctuation] * 12      # 9 labels, the two keys of the dict and the slice
    i = [text for _, text in tokens].index("layer")
    assert tokens[i:i + 6] == [(Name.Label, "layer"), (String.Interpol, "{"), (Name, "i"), (Operator, "+"),
                               (Number.Integer, "1"), (String.Interpol, "}")]


def test_a_conditional_count_ends_with_its_line():
    tokens = tokens_of("network n(deep = true) {\n    relu * 2 if deep else 1\n    conv1: conv(3, 1)\n}\n")
    assert (Keyword, "if") in tokens and (Name.Label, "conv1") in tokens and (Name.Builtin, "conv") in tokens


def test_strings_escapes_and_comments():
    tokens = tokens_of("assert x > 0, \"a \\\"quoted\\\" \\n\"   # why\nlet s = 'one'\n")
    assert (String.Escape, '\\"') in tokens and (String.Escape, "\\n") in tokens
    assert (Comment.Single, "# why") in tokens and (String.Single, "one") in tokens
    assert (Keyword, "assert") in tokens


def test_the_vocabulary_follows_the_registry_and_the_evaluator():
    from archdsl.evaluate import BUILTINS
    from archdsl.ops import OPS
    assert set(BUILTIN_FUNCTIONS) == set(BUILTINS)
    assert set(OP_NAMES) | (set(OPS) & (set(KEYWORDS) | set(JOIN_KINDS))) == set(OPS)
    grammar = (ROOT / "grammars" / "arch.lark").read_text(encoding="utf-8")
    kinds = re.search(r"JOIN_KIND[.\d]*: /\(([^)]*)\)", grammar).group(1).split("|")
    assert set(kinds) == set(JOIN_KINDS)
    literals = set(re.findall(r'"([a-z]+)"', grammar))
    assert literals <= set(KEYWORDS) | {"true", "false", "none", "and", "or", "not"}


def _installed() -> bool:
    return any(ep.name == "arch" and ep.value == "archdsl.highlight:ArchLexer"
               for ep in entry_points(group="pygments.lexers"))


needs_entry_point = pytest.mark.skipif(
    not _installed(), reason="archdsl's pygments.lexers entry point is not installed in this environment "
                             "(install the package: pip install -e .)")


@needs_entry_point
def test_pygments_finds_the_lexer_by_name_and_file_name():
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename, get_lexer_for_mimetype
    for lexer in (get_lexer_by_name("arch"), get_lexer_for_filename("specs/resnet50.arch"),
                  get_lexer_for_mimetype("text/x-arch")):
        assert isinstance(lexer, ArchLexer)


def _styled(syntax) -> set[str]:
    text = syntax.highlight(SAMPLE)
    return {str(span.style) for span in text.spans if str(span.style) not in ("", "none")}


def test_rich_highlights_with_the_lexer():
    from rich.syntax import Syntax
    assert len(_styled(Syntax(SAMPLE, ArchLexer()))) >= 5


@needs_entry_point
def test_rich_highlights_arch_by_name():
    from rich.syntax import Syntax
    styles = _styled(Syntax(SAMPLE, "arch"))
    assert len(styles) >= 5 and styles == _styled(Syntax(SAMPLE, ArchLexer()))


# ----------------------------------------------------------------------------- the TextMate grammar

ONIGURUMA_ONLY = re.compile(r"\\[GKhHRX]|\\p\{|\(\?~|\\x\{")


def onig_to_python(pattern: str) -> str:
    assert not ONIGURUMA_ONLY.search(pattern.replace("\\\\", "")), f"Oniguruma-only syntax in {pattern!r}"
    return re.sub(r"\(\?<(?![=!])", "(?P<", pattern).replace(r"\z", r"\Z")


def rules(node):
    """Every rule (a dict) of the grammar, nested ones and captures' patterns too."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from rules(value)


def test_the_grammar_file_is_the_generated_one():
    path = VSCODE / "syntaxes" / "arch.tmLanguage.json"
    assert path.read_text(encoding="utf-8") == grammar_text(), \
        "editors/vscode/syntaxes/arch.tmLanguage.json is stale: run `python -m archdsl.highlight`"


def test_every_pattern_of_the_grammar_compiles_and_every_include_resolves():
    grammar = json.loads((VSCODE / "syntaxes" / "arch.tmLanguage.json").read_text(encoding="utf-8"))
    assert grammar == textmate_grammar()
    patterns = [(key, rule[key]) for rule in rules(grammar) for key in ("match", "begin", "end") if key in rule]
    assert len(patterns) > 30
    for key, pattern in patterns:
        try:
            re.compile(onig_to_python(pattern))
        except re.error as e:
            pytest.fail(f"{key} {pattern!r}: {e}")
    includes = {rule["include"] for rule in rules(grammar) if "include" in rule}
    assert includes == {f"#{name}" for name in grammar["repository"]}


def test_the_grammar_scopes_follow_the_lexer():
    grammar = textmate_grammar()
    names = {rule[key] for rule in rules(grammar) for key in ("name", "contentName") if isinstance(rule.get(key), str)}
    names.discard(grammar["name"])
    for name in names:   # each scope is one of the lexer's classes' (SCOPES), made more precise, or a meta scope
        assert name.endswith(".arch"), name
        assert name.startswith("meta.") or any(name.startswith(scope + ".") for scope in SCOPES.values()), name
    # every class of token the lexer emits on the specs has its scope in the grammar
    emitted = {token for path in specs() for token, _ in ArchLexer().get_tokens(path.read_text(encoding="utf-8"))}
    emitted -= {Name, Whitespace, Error}
    for token in emitted:
        assert token in SCOPES, token
        assert any(n.startswith(SCOPES[token] + ".") for n in names), (token, SCOPES[token])
    quoted, bare = [re.compile(onig_to_python(rule["match"])) for rule in rules(grammar)
                    if "captures" in rule and rule.get("match", "").endswith(r"(:)(?!=)")]
    assert bare.match("layer{i+1}: conv(3)").group(1) == "layer{i+1}" and bare.match("0: relu").group(1) == "0"
    assert quoted.match('"b-{i}": relu').group(1) == '"b-{i}"'
    assert not bare.match("x := 1") and not quoted.match('"a.b": relu')


def test_the_extension_contributes_the_language_and_its_grammar():
    package = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (language,) = package["contributes"]["languages"]
    (grammar,) = package["contributes"]["grammars"]
    assert language["id"] == grammar["language"] == "arch" and language["extensions"] == [".arch"]
    assert grammar["scopeName"] == textmate_grammar()["scopeName"] == "source.arch"
    assert (VSCODE / grammar["path"]).is_file()
    configuration = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert configuration["comments"] == {"lineComment": "#"}
    assert ["{", "}"] in configuration["brackets"] and ["(", ")"] in configuration["brackets"]
    assert {"open": "[", "close": "]"} in configuration["autoClosingPairs"]
    markers = configuration["folding"]["markers"]
    assert re.search(markers["start"], "network net(classes = 10) {") and re.search(markers["end"], "    }")
    assert not re.search(markers["start"], "    conv(3) -> relu")


def test_the_example_of_docs_editors_elaborates():
    from conftest import checked
    (example,) = re.findall(r"```arch\n(.*?)```", (ROOT / "docs" / "editors.md").read_text(encoding="utf-8"), re.S)
    graph = checked(example)
    (out,) = graph.outputs
    assert list(graph.node(out.node)["shape"]) == [10]
    assert not errors_in(example)
