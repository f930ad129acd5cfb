"""Exporting journals for other tools: JSON lines (records as stored) or CSV.

``jsonl`` reproduces each record exactly as the writer stored it, so the hash
chain can still be checked downstream. ``csv`` has one row per record with the
columns of :data:`CSV_COLUMNS`; ``data`` (outputs, captures) is left out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from drp.errors import InputError
from drp.journal import Journal
from drp.journal.record import dump_line

EXPORT_FORMATS = ("jsonl", "csv")
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
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for journal in runs:
            for r in journal.records:
                writer.writerow(
                    ["" if r.fields.get(c) is None else r.fields[c] for c in CSV_COLUMNS]
                )
        return buffer.getvalue()
    raise InputError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
