"""Reading a journal back, and verifying its hash chain (``drp log verify``).

Reading never crashes on a damaged file. A last line that does not decode is
taken to be *torn* (the process died mid-write): it is left out with a warning.
A bad line anywhere else is kept out of the records too, reported as a warning,
and makes :func:`verify` fail, because it means the file was damaged or edited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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

    def __str__(self) -> str:
        if self.ok:
            return f"chain verified: {self.records} records"
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"chain broken at {where}: {self.problem}"


def _parse_line(number: int, raw: bytes) -> Record | BadLine:  # noqa: PLR0911
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
    if not isinstance(fields, dict):
        return BadLine(number, "not a JSON object", raw)
    try:
        record = Record.from_dict(fields, line=number)
    except ValueError as err:
        return BadLine(number, f"not a valid record ({err})", raw)
    if not is_canonical_line(text, fields):
        return BadLine(number, "line was altered (not in the form the writer produces)", raw)
    return record


def parse_bytes(path: Path, content: bytes) -> Journal:
    """Parse the bytes of a journal file (see :func:`read_journal`)."""
    chunks = content.split(b"\n")
    ends_clean = chunks[-1] == b""
    if ends_clean:
        chunks.pop()
    records: list[Record] = []
    bad: list[BadLine] = []
    torn: BadLine | None = None
    warnings: list[str] = []
    for index, raw in enumerate(chunks):
        number = index + 1
        last = index == len(chunks) - 1
        parsed = _parse_line(number, raw)
        if last and not ends_clean and isinstance(parsed, Record):
            parsed = BadLine(number, "no final newline (incomplete write)", raw)
        if isinstance(parsed, Record):
            records.append(parsed)
        elif last:
            torn = parsed
            warnings.append(f"{path}:{number}: torn last line ignored: {parsed.reason}")
        else:
            bad.append(parsed)
            warnings.append(f"{path}:{number}: damaged line skipped: {parsed.reason}")
    return Journal(path, tuple(records), tuple(bad), torn, tuple(warnings))


def read_journal(path: Path) -> Journal:
    """Read a journal file; :class:`JournalError` only when it cannot be opened at all."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"no journal at {path}") from None
    except OSError as err:
        raise JournalError(f"cannot read journal {path}: {err.strerror}") from None
    return parse_bytes(path, content)


def _check(record: Record, prev_hash: str, expected_seq: int) -> str:
    if record.hash != record_hash(record.fields):
        return "hash mismatch: the record was edited"
    if record.seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {record.seq} (record missing)"
    if record.prev != prev_hash:
        return "prev mismatch: a record before it is missing or out of order"
    return ""


def verify(journal: Journal) -> VerifyResult:
    """Recompute the chain; report the first broken record (or bad line) in file order."""
    bad = {b.line: b for b in journal.bad_lines}
    items: list[Record | BadLine] = [*journal.records, *journal.bad_lines]
    items.sort(key=lambda item: item.line)
    prev_hash, expected = GENESIS, 1
    run = journal.run_id
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
            problem = f"record belongs to another run ({item.run})"
        if problem:
            return VerifyResult(
                False, len(journal.records), item.line, item.seq, problem, journal.warnings
            )
        prev_hash, expected = item.hash, item.seq + 1
    return VerifyResult(True, len(journal.records), warnings=journal.warnings)
