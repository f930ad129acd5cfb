"""The values a run's timeline is made of: rows, milestones, failures, decisions, waits, notes.

Built by :func:`drp.report.timeline.build_timeline`; rendered by :mod:`drp.report.render`
and :mod:`drp.report.html`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from drp.durations import format_duration
from drp.journal.sessions import Session

EXCERPT_LINES = 5
EXCERPT_CHARS = 400
CUT_SHORT = ("interrupted", "unreachable")


@dataclass(frozen=True)
class StepRow:
    """One run of one step on one host (or one rollback: ``kind == "rollback"``)."""

    host: str
    step: str
    kind: str
    outcome: str | None  # None: started, never finished (in doubt)
    attempts: int
    start: datetime | None
    end: datetime | None
    waited: float = 0.0  # at its gate or confirmation: human time, not the step's
    approved_by: str | None = None
    session: int = 0
    undone: str = ""  # "rolled back" / "rollback failed" when a later rollback undid it
    held: float = 0.0  # the part of ``waited`` between its start and end
    run: str = ""

    @property
    def elapsed(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()

    @property
    def duration(self) -> float | None:
        """Machine time: start to end, less the wait for a human."""
        took = self.elapsed
        return None if took is None else max(0.0, took - self.held)

    @property
    def label(self) -> str:
        """The outcome as the report writes it."""
        text = self.outcome or "in doubt (no end recorded)"
        return f"{text}, {self.undone}" if self.undone else text


@dataclass(frozen=True)
class Milestone:
    """A moment worth a line in the report."""

    ts: datetime
    host: str | None
    kind: str
    step: str | None
    text: str
    run: str = ""


@dataclass(frozen=True)
class Failure:
    """A non-ok attempt (or a failed step): what ran, its exit code and stderr excerpt."""

    ts: datetime
    host: str
    step: str
    attempt: int | None
    phase: str
    exit_code: int | None
    outcome: str
    excerpt: str
    run: str = ""


@dataclass(frozen=True)
class Decision:
    """A human's answer at a gate (manual, confirm, in doubt): who, when, after how long."""

    ts: datetime
    host: str
    step: str
    by: str
    decision: str
    note: str
    waited: float | None
    kind: str = "manual"
    run: str = ""


@dataclass(frozen=True)
class Wait:
    """An interval spent waiting on a human (``end`` is the answer or the session's end)."""

    host: str
    step: str
    start: datetime
    end: datetime
    answered: bool
    run: str = ""

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


@dataclass(frozen=True)
class Note:
    """The operator's own words (``drp log note``, or a reason given at a gate)."""

    ts: datetime
    by: str
    text: str
    step: str | None
    summary: bool
    run: str = ""


@dataclass(frozen=True)
class Reach:
    """How drp reached a host in one session: ``ssh``, ``fallback`` (another address of
    the host's), or ``console``; ``steps`` counts the steps that ran on that path."""

    ts: datetime
    host: str
    via: str
    address: str
    session: int
    steps: int = 0
    run: str = ""


@dataclass(frozen=True)
class Gap:
    """A stretch when nobody worked: no session of any run active, no human asked."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


@dataclass(frozen=True)
class Timeline:
    """Everything the report renders, in order."""

    rows: tuple[StepRow, ...]
    milestones: tuple[Milestone, ...]
    failures: tuple[Failure, ...]
    decisions: tuple[Decision, ...]
    waits: tuple[Wait, ...]
    started: datetime | None
    ended: datetime | None
    human_wait: float
    machine_time: float
    idle: float = 0.0  # between sessions (a crash, a lost laptop) not spent waiting on a human
    sessions: tuple[Session, ...] = ()
    notes: tuple[Note, ...] = ()
    reaches: tuple[Reach, ...] = ()
    gaps: tuple[Gap, ...] = ()
    runs: tuple[str, ...] = ()  # the run ids folded in, in the order they started

    def where(self, run: str, session: int) -> str:
        """A session as the report names it: ``2``, or ``r1/s2`` when several runs."""
        if len(self.runs) <= 1:
            return str(session)
        number = self.runs.index(run) + 1 if run in self.runs else 0
        return f"r{number}/s{session}"

    @property
    def total(self) -> float:
        return self.human_wait + self.machine_time + self.idle

    @property
    def summary(self) -> str:
        """The last note given as the summary (``drp log note --summary``)."""
        return next((n.text for n in reversed(self.notes) if n.summary), "")

    @property
    def rollbacks(self) -> tuple[StepRow, ...]:
        return tuple(r for r in self.rows if r.kind == "rollback")


def excerpt(text: object) -> str:
    """The last lines of a command's output, bounded in size."""
    if not isinstance(text, str) or not text.strip():
        return ""
    tail = "\n".join(text.strip().splitlines()[-EXCERPT_LINES:])
    return tail if len(tail) <= EXCERPT_CHARS else "…" + tail[-EXCERPT_CHARS:]


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def fmt_seconds(seconds: float | None) -> str:
    """A duration as the console writes it (``0.9s``, ``4m10s``, ``20h00m``); ``-`` if unknown."""
    return "-" if seconds is None else format_duration(seconds)


def merged(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The union of intervals, as disjoint intervals in order (overlapping ones merged)."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def union_seconds(waits: Sequence[Wait]) -> float:
    """Length of the union of the wait intervals (parallel waits count once)."""
    return sum((b - a).total_seconds() for a, b in merged((w.start, w.end) for w in waits))


def idle_gaps(
    started: datetime | None,
    ended: datetime | None,
    sessions: Sequence[Session],
    waits: Sequence[Wait],
) -> tuple[Gap, ...]:
    """The stretches between ``started`` and ``ended`` that no session (of any run; a note
    is none) and no wait on a human covers: drp not running, nobody asked."""
    if started is None or ended is None:
        return ()
    busy = merged(
        [
            *((s.started, s.ended) for s in sessions if s.kind != "note"),
            *((w.start, w.end) for w in waits),
        ]
    )
    out, cursor = [], started
    for a, b in busy:
        if a > cursor:
            out.append(Gap(cursor, min(a, ended)))
        cursor = max(cursor, b)
    if cursor < ended:
        out.append(Gap(cursor, ended))
    return tuple(g for g in out if g.seconds > 0)
