"""Masking secrets: one function applied before any value reaches an event, a log or the console.

A secret does not always appear as typed. drp shell-quotes every value it puts
in a command (``it's`` becomes ``'it'"'"'s'``, and ``shlex.join`` does the same
to the command line), and commands print values escaped for JSON, a shell or
Python. So each secret is masked in every form drp or a common tool writes it:

- as is, and ``shlex.quote``-d, whole and as part of a larger quoted word;
- the other POSIX quoting idioms: ``'\\''`` for a quote, inside double quotes,
  backslash before each special character;
- each of those escaped as a JSON string (``ensure_ascii`` on and off) and as a
  Python string literal (``repr``).

A secret of several lines is also masked line by line, each line (at least
:data:`MIN_FRAGMENT` long, as written and stripped) in all the forms above, and
with CR LF line ends as a terminal writes them.

Then, for a secret holding characters that some quoting rewrites (anything
``shlex.quote`` would quote), its pieces are masked on their own, wherever they
appear: each piece between quotes, and each run of plain characters between
special ones, that is at least :data:`MIN_FRAGMENT` long. A quoting not listed
above rewrites only special characters, so it can show at most pieces shorter
than that, never enough to put the secret back together. Shorter pieces are
left alone, or every ``root`` and ``dev`` in the journal would be masked.

Masking is one left-to-right scan, longest form first at each place. Known limit:
two copies of a secret that holds a quote, side by side in one quoted word, share
quoting characters, and masking one can leave a short remnant of the other.

Masking is applied to values before they are JSON-encoded (events are masked
when emitted); the JSON-escaped forms cover text that already holds an escaped
secret, such as a command printing JSON.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MASK = "********"
MIN_FRAGMENT = 4
# the characters shlex.quote quotes for: any other run of characters is written as is
_SPECIAL = re.compile(r"[^\w@%+=:,./-]", re.ASCII)
_QUOTES = re.compile(r"['\"]")
_DOUBLE_QUOTED = re.compile(r'([\\"$`])')


def _shell_forms(secret: str) -> set[str]:
    return {
        secret,
        shlex.quote(secret),
        secret.replace("'", "'\"'\"'"),  # shlex.quote's escape, inside a larger quoted word
        secret.replace("'", "'\\''"),
        _DOUBLE_QUOTED.sub(r"\\\1", secret),
        _SPECIAL.sub(lambda m: "\\" + m.group(), secret),
    }


def _lines(secret: str) -> set[str]:
    """A multi-line secret's line-ending variants and lines, each a secret of its own.

    A command prints a multi-line value line by line, a terminal ends its lines
    with CR LF, and a capture may keep one line: each must be masked whole, so
    each line (as written and stripped) is masked in every form, as the whole is.
    """
    if "\n" not in secret and "\r" not in secret:
        return set()
    lines = {secret.replace("\r\n", "\n").replace("\n", "\r\n")}
    for line in secret.splitlines():
        for text in (line, line.strip()):
            if len(text.strip()) >= MIN_FRAGMENT:
                lines.add(text)
    lines.discard(secret)
    return lines


def forms(secret: str) -> set[str]:
    """Every form in which ``secret`` is masked (see the module docstring)."""
    out = {f for line in _lines(secret) for f in forms(line)}
    shell = _shell_forms(secret)
    out |= shell
    for form in shell:
        out.add(json.dumps(form, ensure_ascii=False)[1:-1])
        out.add(json.dumps(form)[1:-1])
        out.add(repr(form)[1:-1])
    if _SPECIAL.search(secret):
        pieces = [*_QUOTES.split(secret), *_SPECIAL.split(secret)]
        out.update(p for p in pieces if len(p) >= MIN_FRAGMENT and p != secret)
    out.discard("")
    return out


@dataclass(frozen=True)
class Redactor:
    """Replaces every occurrence of each secret, in each of its forms, with :data:`MASK`."""

    secrets: tuple[str, ...] = ()
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        found = {p for secret in self.secrets for p in forms(secret)}
        # one left-to-right scan, longest form first at each place, so a form (or a
        # secret) that contains another is masked whole, and two copies side by side
        # are both masked (a replace per form could straddle them and break one)
        patterns = sorted(found, key=lambda p: (-len(p), p))
        regex = re.compile("|".join(map(re.escape, patterns))) if patterns else None
        object.__setattr__(self, "_regex", regex)

    @classmethod
    def of(cls, values: Iterable[object]) -> Redactor:
        texts = {str(v) for v in values if v is not None and str(v) != ""}
        return cls(tuple(sorted(texts, key=lambda t: (-len(t), t))))

    def text(self, value: str) -> str:
        return self._regex.sub(MASK, value) if self._regex is not None else value

    def __call__(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self(k) if isinstance(k, str) else k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        # anything else is written with str() (the journal's json default): mask that text
        shown = str(value)
        masked = self.text(shown)
        return value if masked == shown else masked
