"""Exporting journals for other tools: JSON lines (records as stored) or CSV.

``jsonl`` reproduces each record exactly as the writer stored it, so the hash
chain can still be checked downstream. ``csv`` has one row per record with the
columns of :data:`CSV_COLUMNS`; ``data`` (outputs, captures) is left out. A
text cell that a spreadsheet would read as a formula (it starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return: host output can say anything)
gets a leading ``'``, as OWASP advises, so it is shown as text, not computed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from drp.errors import InputError
from drp.journal import Journal
from drp.journal.record import dump_line

EXPORT_FORMATS = ("jsonl", "csv")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "ts",
    "run",
    "type",
    "operator",
    "host",
    "step",
    "attempt",
    "outcome",
    "exit_code",
    "duration",
    "message",
)


def export(runs: Iterable[Journal], fmt: str) -> str:
    """All records of ``runs``, in order, as ``jsonl`` or ``csv`` text."""
    if fmt == "jsonl":
        return "".join(dump_line(dict(r.fields)) + "\n" for j in runs for r in j.records)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180; a CR in a cell is quoted
        writer.writerow(CSV_COLUMNS)
        for journal in runs:
            for r in journal.records:
                writer.writerow([_cell(r.fields.get(c)) for c in CSV_COLUMNS])
        return buffer.getvalue()
    raise InputError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")


def _cell(value: object) -> object:
    """A CSV cell: empty for None, numbers as they are, text never read as a formula."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
