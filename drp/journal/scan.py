"""Verifying a long journal's chain on both cores, without building a record object per
line (``drp log verify``).

It checks exactly what :func:`drp.journal.reader.read_journal` and
:func:`~drp.journal.reader.verify` check, line by line: valid UTF-8 and JSON, a record
of the current version with fields of the right types and a well-formed timestamp, the
line exactly in the form the writer produces, its hash over its canonical JSON, its
``seq`` and ``prev`` following the record before, and its run. Nothing is taken from a
cache or a checkpoint.

The lines are cut in two halves at a line boundary; a forked child checks the second
while this process checks the first. Each half checks its own links; the link across
the cut (the second half's first ``seq`` and ``prev`` against the first half's last
record) is checked here, so the first problem found is the one a check in one pass
finds. Only the records the anchors need are parsed whole: the sessions' first, last
and ``run.finished`` records, and the hashes of the heads the witnesses and signatures
name.

A journal with a damaged or torn line is handed back (``None``): the caller reads it
the ordinary way, which says where and why.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drp.engine.events import AFTERWORDS
from drp.journal.reader import (
    EDITED,
    REORDERED,
    BadLine,
    VerifyResult,
    _parse_line,
    loaded_line,
    other_run,
    seq_gap,
)
from drp.journal.record import _CANONICAL, GENESIS, Record, checked_fields, dump_line, parse_ts
from drp.journal.sessions import STARTS

PARALLEL_FROM = 4000
"""Lines from which the second half is checked by a child process (a fork and the
``multiprocessing`` import cost a few milliseconds)."""


@dataclass
class Half:
    """What one half of the lines holds: its first record's link, its last record, its
    first problem, and what the anchors need from it."""

    first: tuple[int, int, str] | None = None  # (line, seq, prev) of its first record
    last: tuple[int, str] | None = None  # (seq, hash) of its last record
    records: int = 0
    # (line, seq, problem, whether it is the hash's): the first problem inside the half
    problem: tuple[int, int, str, bool] | None = None
    bad: bool = False  # a line that is not a record: the caller reads the journal itself
    wanted: dict[int, str] = field(default_factory=dict)  # seq -> hash asked for
    marks: list[int] = field(default_factory=list)  # lines of session starts and ends
    last_step: str = ""  # the type of its last record that is not an annotation


def _valid(number: int, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(fields, optional fields) of a line that is a valid record in the writer's form,
    as :func:`drp.journal.reader.read_journal` decides; ``None`` for any other line."""
    loaded = loaded_line(number, raw)
    if isinstance(loaded, BadLine):
        return None
    text, fields = loaded
    try:
        found = checked_fields(fields)
        parse_ts(fields["ts"])
    except ValueError:
        return None
    return (fields, found) if dump_line(fields) == text else None


def _problem(
    fields: dict[str, Any], found: dict[str, Any], first: bool, link: tuple[str, int], run: str
) -> tuple[str, bool]:
    """The record's problem (as :func:`drp.journal.reader.verify` names it, in its order)
    and whether it is its own hash's; the link to the record before is not checked for the
    first record of a half. ``fields`` no longer holds ``hash``."""
    if _sha256(_CANONICAL.encode(fields)) != found.get("hash", ""):
        return EDITED, True
    prev_hash, expected = link
    if not first and fields["seq"] != expected:
        return seq_gap(expected, fields["seq"]), False
    if not first and found.get("prev", "") != prev_hash:
        return REORDERED, False
    if fields["run"] != run:
        return other_run(fields["run"]), False
    return "", False


def check_half(lines: list[bytes], first_line: int, run: str, wanted: Collection[int]) -> Half:
    """Check ``lines`` (numbered from ``first_line``) as one stretch of the chain."""
    half = Half()
    link = ("", 0)  # (hash, seq + 1) of the record before
    for index, raw in enumerate(lines):
        number = first_line + index
        valid = _valid(number, raw)
        if valid is None:
            half.bad = True
            return half
        fields, found = valid
        stated = found.get("hash", "")
        fields.pop("hash", None)
        seq, kind = fields["seq"], fields["type"]
        if half.problem is None:
            problem, own = _problem(fields, found, half.first is None, link, run)
            if problem:
                half.problem = (number, seq, problem, own)
        if half.first is None:
            half.first = (number, seq, found.get("prev", ""))
        link = (stated, seq + 1)
        half.records += 1
        half.last = (seq, stated)
        if seq in wanted:
            half.wanted[seq] = stated
        if kind in STARTS or kind == "run.finished":
            half.marks.append(number)
        if kind not in AFTERWORDS:
            half.last_step = kind
    return half


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Scanned:
    """A journal checked by :func:`scan`: the chain's verdict, and what the anchors need."""

    run_id: str
    result: VerifyResult
    hashes: dict[int, str]  # the hashes of the records asked for
    session_records: tuple[Record, ...]  # the records that start, end or close a session

    def hash_at(self) -> Callable[[int], str | None]:
        return self.hashes.get


def _child(send: object, lines: list[bytes], first: int, run: str, wanted: set[int]) -> None:
    try:
        send.send(check_half(lines, first, run, wanted))  # type: ignore[attr-defined]
    finally:
        send.close()  # type: ignore[attr-defined]


def _both_halves(
    lines: list[bytes], run: str, wanted: set[int], parallel: bool
) -> tuple[Half, Half | None]:
    if not parallel:
        return check_half(lines, 1, run, wanted), None
    import multiprocessing

    cut = len(lines) // 2
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(send, lines[cut:], cut + 1, run, wanted), daemon=True
    )
    try:
        child.start()
    except OSError:  # no process to spare: one pass here
        receive.close()
        send.close()
        return check_half(lines, 1, run, wanted), None
    send.close()
    try:
        mine = check_half(lines[:cut], 1, run, wanted)
        try:
            theirs: Half = receive.recv()
        except (EOFError, OSError):  # the child died: check its half here
            theirs = check_half(lines[cut:], cut + 1, run, wanted)
    finally:
        receive.close()
        child.join()
    return mine, theirs


def _whole(send: object, content: bytes) -> None:
    try:
        lines = content.split(b"\n")
        lines.pop()
        first = _parse_line(1, lines[0]) if lines else None
        run = first.run if isinstance(first, Record) else None
        half = check_half(lines, 1, run, ()) if run is not None else None
        send.send(half)  # type: ignore[attr-defined]
    finally:
        send.close()  # type: ignore[attr-defined]


def verify_aside(content: bytes) -> Callable[[], VerifyResult | None]:
    """Start checking the chain of ``content`` in a forked child, while this process
    reads the journal for what it shows (``drp log show``, ``drp log report``); the
    function returned waits for the verdict: what :func:`drp.journal.reader.verify`
    finds, or ``None`` when the child declined (a line that is not a valid record in
    the writer's form, a torn last line, one core): the caller then verifies itself."""
    if not content.endswith(b"\n") or _cores() < 2:
        return lambda: None
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_whole, args=(send, content), daemon=True)
    try:
        child.start()
    except OSError:  # no process to spare: the caller verifies itself
        receive.close()
        send.close()
        return lambda: None
    send.close()

    def verdict() -> VerifyResult | None:
        try:
            half: Half | None = receive.recv()
        except (EOFError, OSError):
            half = None
        finally:
            receive.close()
            child.join()
        return None if half is None or half.bad else _verdict([half])

    return verdict


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def scan(
    path: Path, content: bytes, wanted: Collection[int] = (), *, halves_from: int = PARALLEL_FROM
) -> Scanned | None:
    """Check the journal ``content`` (read from ``path``); ``None`` when a line is not a
    valid record in the writer's form (or the last one has no newline): the caller reads
    the journal the ordinary way, which says where and why. ``wanted``: the ``seq`` of
    the records whose hashes the witnesses and signatures name; ``halves_from``: the
    lines from which a child checks the second half."""
    if not content.endswith(b"\n"):
        return None
    lines = content.split(b"\n")
    lines.pop()
    first = _parse_line(1, lines[0]) if lines else None
    if not isinstance(first, Record):
        return None
    run = first.run
    parallel = len(lines) >= halves_from and _cores() > 1
    halves = [h for h in _both_halves(lines, run, set(wanted), parallel) if h is not None]
    if any(h.bad for h in halves):
        return None
    result = _verdict(halves)
    hashes = {k: v for h in halves for k, v in h.wanted.items()}
    return Scanned(run, result, hashes, _session_records(lines, halves))


def _verdict(halves: list[Half]) -> VerifyResult:
    """The chain's verdict from the halves, in file order: what one pass finds first."""
    total = sum(h.records for h in halves)
    prev, expected = GENESIS, 1
    for half in halves:
        if half.first is None or half.last is None:
            continue
        line, seq, stated_prev = half.first
        own_first = half.problem is not None and half.problem[0] == line
        if own_first and half.problem is not None and half.problem[3]:
            return VerifyResult(False, total, line, seq, half.problem[2])
        link = ""
        if seq != expected:
            link = seq_gap(expected, seq)
        elif stated_prev != prev:
            link = REORDERED
        if link:
            return VerifyResult(False, total, line, seq, link)
        if half.problem is not None:
            number, at, problem, _own = half.problem
            return VerifyResult(False, total, number, at, problem)
        expected, prev = half.last[0] + 1, half.last[1]
    steps = [h.last_step for h in halves if h.last_step]
    return VerifyResult(True, total, finished=bool(steps) and steps[-1] == "run.finished")


def _session_records(lines: list[bytes], halves: list[Half]) -> tuple[Record, ...]:
    """The records :func:`drp.journal.sessions.split_sessions` needs to find the same
    sessions as from every record: each start and ``run.finished``, the record before
    each start, and the last record (line ``n`` holds record ``n``: no line is bad)."""
    marks = sorted({m for h in halves for m in h.marks})
    wanted = set(marks) | {m - 1 for m in marks if m > 1} | {len(lines)}
    out: list[Record] = []
    for number in sorted(wanted):
        parsed = _parse_line(number, lines[number - 1])
        if not isinstance(parsed, Record):  # checked above: cannot happen
            raise ValueError(f"line {number}: {parsed.reason}")
        out.append(parsed)
    return tuple(out)
