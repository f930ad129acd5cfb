"""Reading a journal back, and verifying its hash chain (``drp log verify``).

Reading never crashes on a damaged file. The writer emits whole lines, each
ending in a newline, so only a last line *without* its newline can be *torn*
(the process died mid-write): it is left out with a warning, and resume sets it
aside. A torn line is a prefix of a record: one that holds a complete JSON
object followed by anything is not torn but damaged. Every other bad line, the
last complete one included, is kept out of the records too, reported as a
warning, and makes :func:`verify` fail, because it means the file was damaged or
edited.

The chain cannot prove that nothing was cut from the end of a journal (the last
records, at a line boundary). :func:`verify` says so, as information, when the
last record is not ``run.finished``: the run is still running, was interrupted,
or lost its tail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drp.engine.events import AFTERWORDS
from drp.errors import JournalError
from drp.journal.record import GENESIS, Record, is_canonical_line, record_hash


@dataclass(frozen=True)
class BadLine:
    """A line that is not a valid record: its 1-based number, why, and its raw bytes."""

    line: int
    reason: str
    raw: bytes


@dataclass(frozen=True)
class Journal:
    """A journal as read: valid records in file order, bad lines, and warnings."""

    path: Path
    records: tuple[Record, ...]
    bad_lines: tuple[BadLine, ...]
    torn: BadLine | None
    warnings: tuple[str, ...]

    @property
    def run_id(self) -> str | None:
        return self.records[0].run if self.records else None


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``ok``, or the first broken record and why."""

    ok: bool
    records: int
    line: int | None = None
    seq: int | None = None
    problem: str = ""
    warnings: tuple[str, ...] = ()
    finished: bool = True

    def __str__(self) -> str:
        if self.ok:
            text = f"chain verified: {self.records} records"
            if not self.finished:
                text += f"; {UNFINISHED}"
            return text
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"chain broken at {where}: {self.problem}"


UNFINISHED = (
    "unfinished: the last record is not run.finished (still running, interrupted, "
    "or records cut from the end: the chain alone cannot tell; the witnesses and "
    "signatures can, see docs/audit.md)"
)
_FINISHED = "run.finished"
_ANNOTATIONS = AFTERWORDS  # may follow run.finished (drp log note, a late notification)


ALTERED = "line was altered (not in the form the writer produces)"


def loaded_line(number: int, raw: bytes) -> tuple[str, dict[str, Any]] | BadLine:
    """A line's text and its JSON object, or why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadLine(number, "not valid UTF-8", raw)
    if not text.strip():
        return BadLine(number, "empty line", raw)
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as err:
        return BadLine(number, f"not valid JSON ({err.msg})", raw)
    except RecursionError:
        return BadLine(number, "not valid JSON (nested too deeply)", raw)
    if not isinstance(fields, dict):
        return BadLine(number, "not a JSON object", raw)
    return text, fields


def _parse_line(number: int, raw: bytes) -> Record | BadLine:
    loaded = loaded_line(number, raw)
    if isinstance(loaded, BadLine):
        return loaded
    text, fields = loaded
    try:
        record = Record.from_dict(fields, line=number, owned=True)
    except ValueError as err:
        return BadLine(number, f"not a valid record ({err})", raw)
    if not is_canonical_line(text, fields):
        return BadLine(number, ALTERED, raw)
    return record


def _unterminated(number: int, raw: bytes) -> tuple[BadLine, bool]:
    """A last line without its newline, and whether it can be a torn write.

    A torn write leaves a prefix of ``<record JSON>`` + newline. A prefix that
    holds the whole JSON object can only be the object itself (or, after a power
    cut on some filesystems, the object and zero bytes where unwritten data should
    be); anything else after it means the line was altered, not cut short.
    """
    torn = BadLine(number, "no final newline (incomplete write)", raw)
    text = raw.decode("utf-8", "replace")
    try:
        _value, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError:
        return torn, True
    except RecursionError:  # json.dumps never writes what it cannot read back
        return BadLine(number, "not valid JSON (nested too deeply)", raw), False
    extra = text[end:]
    if not extra.strip("\0"):
        return torn, True
    reason = f"a complete record followed by {len(extra)} unexpected characters"
    return BadLine(number, reason, raw), False


def parse_bytes(path: Path, content: bytes, first_line: int = 1) -> Journal:
    """Parse the bytes of a journal file (see :func:`read_journal`); ``first_line``: the
    number of the first line of ``content`` (a tail of the file, after a checkpoint)."""
    chunks = content.split(b"\n")
    ends_clean = chunks[-1] == b""
    if ends_clean:
        chunks.pop()
    records: list[Record] = []
    bad: list[BadLine] = []
    torn: BadLine | None = None
    warnings: list[str] = []
    for index, raw in enumerate(chunks):
        number = index + first_line
        if index == len(chunks) - 1 and not ends_clean:
            line, is_torn = _unterminated(number, raw)
            if is_torn:
                torn = line
                warnings.append(f"{path}:{number}: torn last line ignored: {line.reason}")
            else:
                bad.append(line)
                warnings.append(f"{path}:{number}: damaged last line skipped: {line.reason}")
            continue
        parsed = _parse_line(number, raw)
        if isinstance(parsed, Record):
            records.append(parsed)
        else:
            bad.append(parsed)
            warnings.append(f"{path}:{number}: damaged line skipped: {parsed.reason}")
    return Journal(path, tuple(records), tuple(bad), torn, tuple(warnings))


def read_bytes(path: Path) -> bytes:
    """A journal file's bytes; :class:`JournalError` when it cannot be opened at all."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"no journal at {path}") from None
    except OSError as err:
        raise JournalError(f"cannot read journal {path}: {err.strerror}") from None


def read_journal(path: Path) -> Journal:
    """Read a journal file; :class:`JournalError` only when it cannot be opened at all."""
    return parse_bytes(path, read_bytes(path))


EDITED = "hash mismatch: the record was edited"
REORDERED = "prev mismatch: a record before it is missing or out of order"


def seq_gap(expected: int, found: int) -> str:
    return f"sequence gap: expected seq {expected}, found {found} (record missing)"


def other_run(run: str) -> str:
    return f"record belongs to another run ({run})"


def _check(record: Record, prev_hash: str, expected_seq: int) -> str:
    if record.hash != record_hash(record.fields):
        return EDITED
    if record.seq != expected_seq:
        return seq_gap(expected_seq, record.seq)
    if record.prev != prev_hash:
        return REORDERED
    return ""


def verify(
    journal: Journal, *, prev: str = GENESIS, seq: int = 1, run: str | None = None
) -> VerifyResult:
    """Recompute the chain; report the first broken record (or bad line) in file order.

    ``prev``, ``seq``, ``run``: where the chain stands before the journal's first record,
    when ``journal`` is the tail of a file after a verified prefix (a checkpoint)."""
    bad = {b.line: b for b in journal.bad_lines}
    items: list[Record | BadLine] = [*journal.records, *journal.bad_lines]
    items.sort(key=lambda item: item.line)
    prev_hash, expected = prev, seq
    run = run if run is not None else journal.run_id
    for item in items:
        if isinstance(item, BadLine):
            return VerifyResult(
                False,
                len(journal.records),
                item.line,
                None,
                f"damaged line: {bad[item.line].reason}",
                journal.warnings,
            )
        problem = _check(item, prev_hash, expected)
        if not problem and item.run != run:
            problem = other_run(item.run)
        if problem:
            return VerifyResult(
                False, len(journal.records), item.line, item.seq, problem, journal.warnings
            )
        prev_hash, expected = item.hash, item.seq + 1
    steps = [r for r in journal.records if r.type not in _ANNOTATIONS]
    finished = bool(steps) and steps[-1].type == _FINISHED
    return VerifyResult(True, len(journal.records), warnings=journal.warnings, finished=finished)
