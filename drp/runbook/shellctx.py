"""Where a ``{{ }}`` placeholder lands in a shell command: the check behind "drp quotes values".

drp shell-quotes each value it substitutes (``'…'``), which makes it one literal
word *where the shell reads words*: outside any quotes. Inside the author's own
quotes the quoting is undone: ``echo "at {{ p }}"`` with ``p = $(touch X)``
runs ``touch``, and ``'…{{ p }}…'`` lets a value holding ``'`` out. So every
placeholder of a shell field must sit outside quotes, outside an unquoted
heredoc's body, and not after a backslash.

How: the template's text is laid out with a unique sentinel word in place of
each placeholder (every branch of an ``if``, every ``for`` body), then read by
:mod:`shlex`, Python's POSIX-shell lexer, one character at a time, noting the
lexer's state when it reads each sentinel: in double quotes, in single quotes
(``'…'`` and ``$'…'``), after a backslash, or free. Two things shlex does not
model are added: a command substitution opened inside double quotes starts a
new quoting context (``"$(cat "{{ p }}")"`` is inside quotes again), and a
heredoc's body (``<<EOF``, expanded unless the delimiter is quoted). Comments
are harmless. Placeholders filtered with ``| raw`` are the author's choice and
are not checked, nor are numbers (``| int``, ``| length``...).
"""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from jinja2 import nodes

_SENTINEL = "drpslot{}z"
_PLAIN_FILTERS = frozenset({"raw", "int", "float", "length", "count", "abs", "round"})
_FOUND = re.compile(r"drpslot(\d+)z")
QUOTED_HINT = "drp quotes values itself: remove the quotes around {{ … }}"
_HINTS = {  # by a word of where it is
    "heredoc": 'set a variable before the heredoc (v={{ … }}) and use "$v" in its body',
    "backslash": "remove the backslash before {{ … }}",
}


@dataclass(frozen=True)
class Misplaced:
    """A placeholder the shell would not read as one quoted word, and why."""

    lineno: int
    where: str  # "inside double quotes", ...
    hint: str = QUOTED_HINT


def misplaced(tree: nodes.Template) -> list[Misplaced]:
    """Every placeholder of a shell template that sits where drp's quoting does not hold."""
    lines: list[int] = []
    text = "".join(_layout(tree.body, lines))
    if not lines:
        return []
    states = _States(text)
    states.scan()
    found: dict[int, Misplaced] = {}
    for start, where in [*states.in_heredocs(), *states.seen]:
        match = _FOUND.match(text, start)
        if match is None or where is None:
            continue
        index = int(match.group(1))
        hint = next((h for word, h in _HINTS.items() if word in where), QUOTED_HINT)
        found.setdefault(index, Misplaced(lines[index], where, hint))
    return [found[i] for i in sorted(found)]


def _layout(body: list[nodes.Node], lines: list[int]) -> Iterator[str]:
    """The template's text with each placeholder replaced by the next sentinel."""
    for node in body:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    yield child.data
                elif isinstance(child, nodes.Filter) and child.name in _PLAIN_FILTERS:
                    yield "0"  # raw: the author's choice; a number: nothing a shell acts on
                else:
                    yield _SENTINEL.format(len(lines))
                    lines.append(child.lineno)
        elif isinstance(node, nodes.If):
            yield from _layout(node.body, lines)
            for elif_ in node.elif_:
                yield from _layout(elif_.body, lines)
            yield from _layout(node.else_, lines)
        elif isinstance(node, nodes.For | nodes.With | nodes.FilterBlock | nodes.Scope):
            yield from _layout(node.body, lines)
            yield from _layout(getattr(node, "else_", []), lines)


class _States(io.StringIO):
    """The text, read by shlex, noting the lexer's state at each sentinel's first character.

    A command substitution opened inside double quotes (``"$(…)"``, ``"`…`"``)
    is a new quoting context: it is read by a lexer of its own (``closer`` is
    then the character that ends it), and the outer one resumes after it.
    """

    def __init__(self, text: str, start: int = 0, closer: str = "") -> None:
        self.source = text
        self.heredocs = _heredoc_bodies(text) if not closer else []
        for begin, end, _ in self.heredocs:  # a body is not shell syntax: the lexer skips it
            text = text[:begin] + " " * (end - begin) + text[end:]
        super().__init__(text)
        self.seek(start)
        self.text = text
        self.closer = closer
        self.depth = 0  # open parentheses, in a substitution
        self.lexer = shlex.shlex(self, posix=True, punctuation_chars=True)
        self.seen: list[tuple[int, str | None]] = []
        self.end: int | None = None

    def scan(self) -> int:
        """Lex to the end (or past the closer); return the offset reached."""
        try:
            for _ in self.lexer:
                pass
        except ValueError:  # unbalanced quotes: the lexer stopped; what it saw is judged
            pass
        return self.end if self.end is not None else len(self.text)

    def read(self, size: int | None = -1) -> str:
        start = self.tell()
        char = super().read(size)
        state: str | None = self.lexer.state  # type: ignore[attr-defined]  # shlex's own
        if self.closer and state in (" ", "a", "c") and char in "()`":
            if char == self.closer and self.depth == 0:
                self.end = start + 1  # the substitution ends here: the lexer stops
                self.seek(len(self.text))
                return ""
            self.depth += {"(": 1, ")": -1}.get(char, 0)
        if state == '"' and (char == "`" or self.text.startswith("$(", start)):
            opened = start + (1 if char == "`" else 2)
            inner = _States(self.source, opened, "`" if char == "`" else ")")
            self.seek(inner.scan())
            self.seen.extend(inner.seen)
            return char
        if char == "d" and self.text.startswith("drpslot", start):
            self.seen.append((start, _WHERE.get(state or "")))
        return char

    def in_heredocs(self) -> list[tuple[int, str | None]]:
        """Placeholders in the body of a heredoc whose delimiter is not quoted."""
        return [
            (m.start(), "inside a heredoc that expands $( ) and `…`")
            for begin, end, expanded in self.heredocs
            if expanded
            for m in _FOUND.finditer(self.source, begin, end)
        ]


_WHERE = {'"': "inside double quotes", "'": "inside single quotes", "\\": "after a backslash"}
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)\\?([A-Za-z_][A-Za-z0-9_]*)\1")


def _heredoc_bodies(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, expanded) of each heredoc body: from the line after ``<<WORD`` to WORD."""
    bodies = []
    for match in _HEREDOC.finditer(text):
        begin = text.find("\n", match.end())
        if begin < 0:
            continue
        quoted = bool(match.group(1)) or "\\" in match.group(0)
        end_line = re.compile(rf"^\t*{re.escape(match.group(2))}$", re.M)
        closing = end_line.search(text, begin + 1)
        bodies.append((begin + 1, closing.start() if closing else len(text), not quoted))
    return bodies
