"""A small pretty-printer: documents of text, line breaks and groups, laid out to a width.

The formatter (``archdsl.fmt``) describes a spec as a document and this module decides
where the lines break, in the manner of Wadler's "prettier printer": a :class:`Group` is
printed on one line when all of it fits in what is left of the line, otherwise its
lines (:data:`LINE`) become newlines (and the groups inside it are tried again, one by one).

The pieces:

- ``str``: text, never containing a newline; a ``list`` is the pieces one after another;
- :data:`LINE` (a space when flat), :data:`SOFT` (nothing when flat), :data:`HARD` (always a
  newline, and the groups around it can never be flat);
- :class:`Nest`: its lines are indented by ``indent`` more columns;
- :class:`Group`: flat if it fits (``broken=True`` forces it to break); a ``contain`` group
  (a body) is measured to its first line break by the :class:`Fill` around it;
- :class:`Fill`: items separated by lines, as many on each line as fit (a chain's items:
  ``a -> b -> c`` breaks before the ``->`` that would pass the width, and the lines after
  the first hang ``hang`` columns deeper);
- :class:`IfBreak`: text printed when the enclosing group is broken (a trailing comma), and
  its ``flat`` text when it is not (the `;` between the statements of a flat body);
- :class:`Suffix`: text kept to the end of its line, printed before the next newline (a
  trailing comment, which must stay after the comma that follows it); it makes the groups
  around it break, so that nothing but a newline follows the comment.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Line:
    flat: str = " "
    hard: bool = False


LINE = Line(" ")
SOFT = Line("")
HARD = Line("", hard=True)


@dataclass
class Nest:
    indent: int
    doc: object


@dataclass
class IfBreak:
    text: str
    flat: str = ""


@dataclass
class Suffix:
    text: str


@dataclass
class Group:
    doc: object
    broken: bool = False
    contain: bool = False  # a body: a fill measures it to its first line break
    hard: bool = field(init=False, default=False)  # holds a hard line, a suffix or a broken group

    def __post_init__(self):
        self.hard = _has_hard(self.doc)
        self.broken = self.broken or self.hard


@dataclass
class Fill:
    parts: list            # item, separator, item, separator, ..., item
    hang: int = 0          # the indentation of the lines after the first
    hard: bool = field(init=False, default=False)

    def __post_init__(self):
        self.hard = _has_hard(self.parts)


@dataclass
class _FillRest:
    """What is left of a fill being printed: separator, item, ...; ``broken`` once a
    separator has broken (the items after it hang)."""
    fill: Fill
    at: int
    broken: bool


def _has_hard(doc) -> bool:
    """Whether a document holds a hard line, a suffix or a broken group (which then break the
    groups around it too), looking into nested groups and fills through their own flags, so
    building a document stays linear in its size."""
    stack = [doc]
    while stack:
        d = stack.pop()
        if isinstance(d, list):
            stack.extend(d)
        elif isinstance(d, Line):
            if d.hard:
                return True
        elif isinstance(d, Suffix):
            return True
        elif isinstance(d, Group):
            if d.broken:
                return True
        elif isinstance(d, Fill):
            if d.hard:
                return True
        elif isinstance(d, Nest):
            stack.append(d.doc)
    return False


_FLAT, _BREAK = 0, 1


def render(doc, width: int, indent: int = 0) -> str:
    """The document laid out in lines of at most ``width`` columns where it can be, its first
    line starting at column ``indent`` (not written) and the others indented by it."""
    out: list[str] = []
    suffixes: list[str] = []
    col = indent
    stack = [(indent, _BREAK, doc)]  # (indent, mode, document), the next one on top

    def newline(indent: int) -> None:
        nonlocal col
        if suffixes:
            out.extend(suffixes)
            suffixes.clear()
        while out and out[-1].endswith(" "):  # no trailing spaces
            out[-1] = out[-1].rstrip(" ")
        out.append("\n" + " " * indent)
        col = indent

    while stack:
        indent, mode, d = stack.pop()
        if isinstance(d, str):
            out.append(d)
            col += len(d)
        elif isinstance(d, list):
            stack.extend((indent, mode, x) for x in reversed(d))
        elif isinstance(d, Nest):
            stack.append((indent + d.indent, mode, d.doc))
        elif isinstance(d, Group):
            flat = mode == _FLAT or not d.broken and _fits(width - col, [(indent, _FLAT, d.doc)], stack)
            stack.append((indent, _FLAT if flat else _BREAK, d.doc))
        elif isinstance(d, Fill):
            if mode == _FLAT or not d.hard and _fits(width - col, [(indent, _FLAT, d.parts)], stack):
                stack.append((indent, _FLAT, d.parts))
            else:
                if len(d.parts) > 1:
                    stack.append((indent, _BREAK, _FillRest(d, 1, False)))
                stack.append((indent, _BREAK, d.parts[0]))
        elif isinstance(d, _FillRest):
            fill, at = d.fill, d.at
            sep, item = fill.parts[at], fill.parts[at + 1]
            hang = indent + fill.hang
            broken = d.broken
            last = at + 2 >= len(fill.parts)
            flat = not _has_hard(sep) and _fits(width - col, [(indent, _FLAT, item), (indent, _FLAT, sep)],
                                                stack if last else [], lenient=True)
            broken = broken or not flat
            if not last:
                stack.append((indent, _BREAK, _FillRest(fill, at + 2, broken)))
            stack.append((hang if broken else indent, _BREAK, item))
            if flat:
                stack.append((indent, _FLAT, sep))
            elif isinstance(sep, Line):
                newline(hang)
            else:  # comments on their own lines before the item
                stack.append((hang, _BREAK, sep))
        elif isinstance(d, IfBreak):
            text = d.text if mode == _BREAK else d.flat
            out.append(text)
            col += len(text)
        elif isinstance(d, Suffix):
            suffixes.append(d.text)
        elif isinstance(d, Line):
            if mode == _FLAT and not d.hard:
                out.append(d.flat)
                col += len(d.flat)
            else:
                newline(indent)
    out.extend(suffixes)
    return "".join(out)


def _fits(room: int, todo: list, rest: list, lenient: bool = False) -> bool:
    """Whether ``todo`` printed flat, and what follows it up to the next line break of the
    enclosing broken groups (``rest``), fits in ``room`` columns. ``lenient`` (a fill's item):
    a contained group in it counts whole where it fits flat, else to its first line break;
    any other group must fit flat (so a call that breaks always starts its own line, and a
    second pass, finding its trailing comma, lays it out the same)."""
    rest_at = len(rest)
    while room >= 0:
        if not todo:
            if rest_at == 0:
                return True
            rest_at -= 1
            todo.append(rest[rest_at])
            continue
        indent, mode, d = todo.pop()
        if isinstance(d, str):
            room -= len(d)
        elif isinstance(d, list):
            todo.extend((indent, mode, x) for x in reversed(d))
        elif isinstance(d, Nest):
            todo.append((indent + d.indent, mode, d.doc))
        elif isinstance(d, Group):
            if lenient and d.contain:
                width = None if d.broken else _flat_width(d.doc, room)
                if width is None:
                    todo.append((indent, _BREAK, d.doc))
                else:
                    room -= width
            elif lenient and d.broken:
                return False  # brackets that break: the item goes on a line of its own
            else:
                todo.append((indent, _BREAK if d.broken else mode, d.doc))
        elif isinstance(d, Fill):
            todo.append((indent, _BREAK if d.hard else mode, d.parts))
        elif isinstance(d, _FillRest):
            return True  # a fill can break before its next item
        elif isinstance(d, IfBreak):
            room -= len(d.text if mode == _BREAK else d.flat)
        elif isinstance(d, Line):
            if mode == _BREAK or d.hard:
                return True
            room -= len(d.flat)
    return False


def _flat_width(doc, room: int) -> int | None:
    """The width of a document printed flat, or None where it cannot be flat or is wider
    than ``room``."""
    width, stack = 0, [doc]
    while stack and width <= room:
        d = stack.pop()
        if isinstance(d, str):
            width += len(d)
        elif isinstance(d, list):
            stack.extend(reversed(d))
        elif isinstance(d, Nest):
            stack.append(d.doc)
        elif isinstance(d, (Group, Fill)):
            if d.hard or isinstance(d, Group) and d.broken:
                return None
            stack.append(d.doc if isinstance(d, Group) else d.parts)
        elif isinstance(d, IfBreak):
            width += len(d.flat)
        elif isinstance(d, Line):
            if d.hard:
                return None
            width += len(d.flat)
        elif isinstance(d, Suffix):
            return None
    return width if width <= room else None
