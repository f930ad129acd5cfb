"""The timeline of a run, as a post-incident report tells it.

From the journal records this builds, per host, one row per step (outcome,
attempts, start, end, duration), the milestones in wall-clock order (run
start/resume/end, gates waiting and answered with who, reboots, failures), the
failed attempts with their stderr, the approvals, and the split of elapsed time
between **waiting on humans** (``step.waiting`` until ``step.approved`` /
``step.rejected``, or until the journal ends) and **machine time** (the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from drp.durations import format_duration
from drp.engine.events import EventType as T
from drp.journal import LOCAL_HOST, Record

EXCERPT_LINES = 5
EXCERPT_CHARS = 400


@dataclass(frozen=True)
class StepRow:
    """One step on one host."""

    host: str
    step: str
    kind: str
    outcome: str | None
    attempts: int
    start: datetime | None
    end: datetime | None
    waited: float = 0.0
    approved_by: str | None = None

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()


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
    """A human's answer at a gate: who, when, after how long a wait."""

    ts: datetime
    host: str
    step: str
    by: str
    decision: str
    note: str
    waited: float | None


@dataclass(frozen=True)
class Wait:
    """An interval spent waiting on a human (``end`` is the answer or the journal's end)."""

    host: str
    step: str
    start: datetime
    end: datetime
    answered: bool

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

    @property
    def total(self) -> float:
        return self.human_wait + self.machine_time + self.idle


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


@dataclass
class _Row:
    kind: str = ""
    outcome: str | None = None
    attempts: int = 0
    start: datetime | None = None
    end: datetime | None = None
    waited: float = 0.0
    approved_by: str | None = None


class _Builder:
    """Folds records into rows, milestones, failures, decisions and waits."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], _Row] = {}
        self.milestones: list[Milestone] = []
        self.failures: list[Failure] = []
        self.decisions: list[Decision] = []
        self.waits: list[Wait] = []
        self.open_waits: dict[tuple[str, str], datetime] = {}

    def row(self, host: str, step: str) -> _Row:
        return self.rows.setdefault((host, step), _Row())

    def note(self, r: Record, kind: str, text: str) -> None:
        self.milestones.append(Milestone(r.ts, r.host, kind, r.step, text))

    def run_event(self, r: Record) -> None:
        d = r.data
        who = r.operator or "unknown operator"
        if r.type == T.RUN_STARTED:
            dry = " (dry run)" if d.get("dry_run") else ""
            self.note(r, "run", f"run started by {who}: {d.get('runbook', '?')}{dry}")
        elif r.type == T.RUN_RESUMED:
            self.note(r, "run", f"run resumed by {who}")
        elif r.type == T.RUN_FINISHED:
            self.note(r, "run", f"run finished: {r.outcome or '?'}")
        elif r.type == T.HOST_UNREACHABLE:
            self.note(r, "failure", f"unreachable: {first_line(r.message)}")
        elif r.type == T.HOST_CONNECTED and d.get("via_fallback"):
            self.note(r, "run", f"connected via fallback {d.get('address', '')}")

    def step_event(self, r: Record, host: str, step: str) -> None:
        row = self.row(host, step)
        key = (host, step)
        if r.type == T.STEP_STARTED:
            row.kind = str(r.data.get("kind") or row.kind)
            row.start = row.start or r.ts
        elif r.type == T.STEP_ATTEMPT:
            self.attempt(r, row, host, step)
        elif r.type == T.STEP_WAITING:
            self.open_waits.setdefault(key, r.ts)
            self.note(r, "gate", f"waiting: {first_line(r.message) or 'manual step'}")
        elif r.type in (T.STEP_APPROVED, T.STEP_REJECTED):
            self.answer(r, row, host, step)
        elif r.type in (T.STEP_FINISHED, T.STEP_SKIPPED):
            self.finish(r, row, host, step)

    def attempt(self, r: Record, row: _Row, host: str, step: str) -> None:
        phase = str(r.data.get("phase") or "action")
        if phase == "action":
            row.attempts += 1
        if r.outcome not in (None, "ok"):
            err = excerpt(r.data.get("stderr")) or excerpt(r.data.get("error"))
            self.failures.append(
                Failure(r.ts, host, step, r.attempt, phase, r.exit_code, r.outcome or "", err)
            )
            code = f" (exit {r.exit_code})" if r.exit_code is not None else ""
            self.note(r, "failure", f"{phase} attempt {r.attempt or '?'} {r.outcome}{code}")

    def answer(self, r: Record, row: _Row, host: str, step: str) -> None:
        since = self.open_waits.pop((host, step), None)
        waited = None
        if since is not None:
            wait = Wait(host, step, since, r.ts, True)
            self.waits.append(wait)
            waited = wait.seconds
            row.waited += wait.seconds
        by = str(r.data.get("by") or r.operator or "?")
        decision = "approved" if r.type == T.STEP_APPROVED else "rejected"
        if decision == "approved":
            row.approved_by = by
        note = str(r.data.get("note") or "")
        self.decisions.append(Decision(r.ts, host, step, by, decision, note, waited))
        after = f" after {fmt_seconds(waited)}" if waited is not None else ""
        self.note(r, "gate", f"{decision} by {by}{after}")

    def finish(self, r: Record, row: _Row, host: str, step: str) -> None:
        outcome = "skipped" if r.type == T.STEP_SKIPPED else (r.outcome or "?")
        row.outcome, row.end = outcome, r.ts
        row.start = row.start or r.ts
        took: float | None = (r.ts - row.start).total_seconds()
        if r.duration is not None and outcome != "paused":
            took = r.duration
        kind = "reboot" if row.kind == "reboot" else "step"
        if outcome in ("failed", "unreachable", "rejected", "interrupted"):
            kind = "failure"
            if not any(f.host == host and f.step == step for f in self.failures):
                self.failures.append(
                    Failure(
                        r.ts,
                        host,
                        step,
                        r.attempt,
                        "step",
                        r.exit_code,
                        outcome,
                        excerpt(r.message) or excerpt(r.data.get("message")),
                    )
                )
        self.note(r, kind, f"{outcome} ({fmt_seconds(took)})")


def build_timeline(records: Sequence[Record]) -> Timeline:
    """Fold a run's records (file order) into its :class:`Timeline`."""
    b = _Builder()
    gaps: list[Wait] = []  # from the last record of a session to the resume that follows it
    for previous, r in zip([None, *records], records, strict=False):
        if r.type == T.RUN_RESUMED and previous is not None:
            gaps.append(Wait("", "", previous.ts, r.ts, True))
        if r.type.startswith("step.") and r.step is not None:
            b.step_event(r, r.host if r.host is not None else LOCAL_HOST, r.step)
        else:
            b.run_event(r)
    started = records[0].ts if records else None
    ended = records[-1].ts if records else None
    if ended is not None:
        for (host, step), since in b.open_waits.items():
            b.waits.append(Wait(host, step, since, ended, False))
    total = (ended - started).total_seconds() if started and ended else 0.0
    human = union_seconds(b.waits)
    idle = union_seconds([*b.waits, *gaps]) - human
    rows = tuple(
        StepRow(host, step, v.kind, v.outcome, v.attempts, v.start, v.end, v.waited, v.approved_by)
        for (host, step), v in b.rows.items()
    )
    return Timeline(
        rows=rows,
        milestones=tuple(sorted(b.milestones, key=lambda m: m.ts)),
        failures=tuple(b.failures),
        decisions=tuple(b.decisions),
        waits=tuple(b.waits),
        started=started,
        ended=ended,
        human_wait=human,
        machine_time=max(0.0, total - human - idle),
        idle=idle,
    )
