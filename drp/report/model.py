"""The values a run's timeline is made of: rows, milestones, failures, decisions, waits, notes.

Built by :func:`drp.report.timeline.build_timeline`; rendered by :mod:`drp.report.render`
and :mod:`drp.report.html`.
"""

from __future__ import annotations

from collections.abc import Sequence
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


@dataclass(frozen=True)
class Wait:
    """An interval spent waiting on a human (``end`` is the answer or the session's end)."""

    host: str
    step: str
    start: datetime
    end: datetime
    answered: bool

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


def union_seconds(waits: Sequence[Wait]) -> float:
    """Length of the union of the wait intervals (parallel waits count once)."""
    total, cur_start, cur_end = 0.0, None, None
    for w in sorted(waits, key=lambda w: w.start):
        if cur_end is None or cur_start is None or w.start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += (cur_end - cur_start).total_seconds()
            cur_start, cur_end = w.start, w.end
        else:
            cur_end = max(cur_end, w.end)
    if cur_end is not None and cur_start is not None:
        total += (cur_end - cur_start).total_seconds()
    return total
