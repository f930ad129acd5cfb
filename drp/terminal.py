"""Text fit for a terminal: control characters from hosts and files shown, never obeyed.

A command's output, a journal, a runbook can hold bytes a terminal acts on:
``ESC[2J`` clears the screen, ``ESC]52;c;…`` writes the operator's clipboard,
a lone carriage return overwrites what a line said, a right-to-left override
reorders it. Everything drp prints that came from a host or a file passes
through :func:`visible`, which writes each such character as an escape
(``\\x1b``, ``\\r``, ``\\u202e``) and leaves newlines, tabs and ``\\r\\n`` alone.
The journal keeps the exact bytes; only what is shown is changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# C0 but tab and newline, a carriage return not ending a line, DEL, C1, and the
# Unicode controls that reorder text (bidi embeddings, overrides and isolates)
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]|\r(?!\n)"
)
_NAMED = {"\r": "\\r", "\x1b": "\\x1b"}


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every character a terminal would act on written as an escape."""
    return _CONTROL.sub(_shown, text)


def visible_values(value: Any) -> Any:
    """:func:`visible` applied to every string in a structure of mappings and lists."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, Mapping):
        return {k: visible_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [visible_values(v) for v in value]
    return value
