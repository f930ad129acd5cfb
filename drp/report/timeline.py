"""The timeline of a run, as a post-incident report tells it: only what happened.

From the journal records this builds, per host, one row each time a step ran
(outcome, attempts, start, end, the session that ran it; a step re-run in a later
session gets a second row), one row per rollback (``undo …``), the sessions (how
each ended, a ``kill -9`` included), the milestones in wall-clock order (sessions,
gates waiting and answered with who, steps in doubt and what was decided, notes,
reboots, failures), the failed attempts with their stderr, and the split of
elapsed time between **waiting on humans** (``step.waiting`` until
``step.approved`` / ``step.rejected``, or until the session ends) and **machine
time** (the rest). A step skipped on resume because an earlier session did it is
not a new row: it stays done in the session that did it. A step's duration leaves
out the time it waited for a confirmation: that is human time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from drp.engine.events import AFTERWORDS
from drp.engine.events import EventType as T
from drp.journal import LOCAL_HOST, Record
from drp.journal.sessions import Session, split_sessions
from drp.report.model import (
    CUT_SHORT,
    Decision,
    Failure,
    Gap,
    Milestone,
    Note,
    Reach,
    StepRow,
    Timeline,
    Wait,
    excerpt,
    first_line,
    fmt_seconds,
    idle_gaps,
    union_seconds,
)

_T = TypeVar("_T", StepRow, Milestone, Failure, Decision, Wait, Note, Reach)


@dataclass
class _Row:
    host: str
    step: str
    session: int
    kind: str = ""
    outcome: str | None = None
    attempts: int = 0
    start: datetime | None = None
    end: datetime | None = None
    waited: float = 0.0
    approved_by: str | None = None
    undone: str = ""
    held: float = 0.0

    def freeze(self) -> StepRow:
        return StepRow(**vars(self))


def _who(r: Record) -> str:
    """``label (OS user u on host, key SHA256:…)``: the typed label beside the facts."""
    label = r.operator or "unknown operator"
    ident = r.data.get("identity")
    if not isinstance(ident, dict):
        return label
    facts = f"OS user {ident.get('os_user', '?')} on {ident.get('host', '?')}"
    if ident.get("key_fingerprint"):
        facts += f", key {ident['key_fingerprint']}"
    return f"{label} ({facts})"


class _Builder:
    """Folds records into rows, milestones, failures, decisions, waits and notes."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self.current: dict[tuple[str, str], _Row] = {}
        self.milestones: list[Milestone] = []
        self.failures: list[Failure] = []
        self.decisions: list[Decision] = []
        self.waits: list[Wait] = []
        self.notes: list[Note] = []
        self.open_waits: dict[tuple[str, str], datetime] = {}
        self.in_doubt: set[tuple[str, str]] = set()
        self.session = 0
        self.policy = "ask"
        self.reaches: dict[tuple[int, str, str], Reach] = {}  # (session, host, via)
        self.path_steps: dict[tuple[int, str, str], int] = {}  # steps started on each
        self.connected: dict[str, str] = {}  # host → how its connection of this session went

    def new_row(self, host: str, step: str, kind: str = "") -> _Row:
        row = _Row(host, step, self.session, kind)
        self.rows.append(row)
        if kind != "rollback":
            self.current[(host, step)] = row
        return row

    def row(self, host: str, step: str) -> _Row:
        """The step's row of this session (a new one when it last ran in an earlier session)."""
        row = self.current.get((host, step))
        if row is None or row.session != self.session or row.end is not None:
            row = self.new_row(host, step)
        return row

    def note(self, r: Record, kind: str, text: str) -> None:
        self.milestones.append(Milestone(r.ts, r.host, kind, r.step, text))

    def run_event(self, r: Record) -> None:
        d = r.data
        if r.type in (T.RUN_STARTED, T.RUN_RESUMED):
            self.session += 1
            self.connected.clear()
            if r.type == T.RUN_STARTED:
                dry = " (dry run)" if d.get("dry_run") else ""
                what = f"run started: {d.get('runbook', '?')}{dry}"
            else:
                what = "run resumed"
                self.policy = str(d.get("in_doubt") or "ask")
                self.mark_in_doubt(r)
            self.note(r, "session", f"session {self.session}: {what} by {_who(r)}")
        elif r.type == T.RUN_NOTE:
            self.session += 1
            summary = bool(d.get("summary"))
            self.notes.append(Note(r.ts, _who(r), r.message, r.step, summary))
            self.note(r, "note", f"{'summary' if summary else 'note'} by {_who(r)}: {r.message}")
        elif r.type == T.RUN_FINISHED:
            self.note(r, "session", f"session {self.session} ended: {r.outcome or '?'}")
        elif r.type == T.HOST_UNREACHABLE:
            self.note(r, "failure", f"unreachable: {first_line(r.message)}")
        elif r.type == T.NOTIFY_FAILED and d.get("final"):
            self.note(r, "failure", first_line(r.message))
        elif r.type == T.HOST_CONNECTED:
            self.reached(r, r.host if r.host is not None else LOCAL_HOST)
        elif r.type in (T.ROLLBACK_STARTED, T.ROLLBACK_FINISHED) and r.step is not None:
            self.rollback(r, r.host if r.host is not None else LOCAL_HOST, r.step)

    def reached(self, r: Record, host: str) -> None:
        """A connection: over SSH at the primary address, a fallback, or the console."""
        d = r.data
        via = "console" if d.get("via_console") else "fallback" if d.get("via_fallback") else "ssh"
        self.connected[host] = via
        address = str(d.get("address") or "")
        key = (self.session, host, via)
        if key not in self.reaches:
            self.reaches[key] = Reach(r.ts, host, via, address, self.session)
        if via != "ssh":
            self.note(r, "run", f"connected via {via} {address}".rstrip())

    def on_path(self, r: Record, host: str) -> None:
        """A step started on a path (``ssh`` or ``console``): counted for its host."""
        path = r.data.get("path")
        if path not in ("ssh", "console"):
            return  # local, manual, or unreachable: no path to the host
        via = self.connected.get(host, "ssh") if path == "ssh" else "console"
        via = "ssh" if path == "ssh" and via == "console" else via
        key = (self.session, host, via)
        if key not in self.reaches:
            self.reaches[key] = Reach(r.ts, host, via, "", self.session)
        # counted here, set once at the end: a frozen copy per step cost 10,000 copies
        self.path_steps[key] = self.path_steps.get(key, 0) + 1

    def mark_in_doubt(self, r: Record) -> None:
        """At a resume: the steps an earlier session left without a trustworthy end."""
        for (host, step), row in self.current.items():
            cut = row.outcome is None or (row.outcome in CUT_SHORT and row.kind != "manual")
            if cut and row.start is not None and row.kind != "rollback":
                self.in_doubt.add((host, step))
                self.milestones.append(
                    Milestone(
                        r.ts,
                        host,
                        "doubt",
                        step,
                        f"in doubt: started in session {row.session}, "
                        f"{row.outcome or 'no end recorded'}",
                    )
                )

    def step_event(self, r: Record, host: str, step: str) -> None:
        key = (host, step)
        if r.type == T.STEP_STARTED:
            row = self.row(host, step)
            row.kind = str(r.data.get("kind") or row.kind)
            row.start = row.start or r.ts
            self.on_path(r, host)
            if key in self.in_doubt:
                self.settled(r, host, step, "run again", f"--{self.policy}-in-doubt")
        elif r.type == T.STEP_ATTEMPT:
            undoing = r.data.get("phase") == "rollback"  # belongs to the rollback's row
            row = self.rollback_row(host, step) if undoing else self.row(host, step)
            self.attempt(r, row, host, step)
        elif r.type == T.STEP_WAITING:
            self.open_waits.setdefault(key, r.ts)
            self.note(r, "gate", f"waiting: {first_line(r.message) or 'manual step'}")
        elif r.type in (T.STEP_APPROVED, T.STEP_REJECTED):
            self.answer(r, host, step)
        elif r.type == T.STEP_SKIPPED:
            self.skipped(r, host, step)
        elif r.type == T.STEP_FINISHED:
            self.finish(r, self.row(host, step), host, step)

    def settled(self, r: Record, host: str, step: str, decision: str, how: str) -> None:
        """A step in doubt was decided: by a flag (``how``), or at the gate (answer)."""
        if (host, step) not in self.in_doubt:
            return
        self.in_doubt.discard((host, step))
        if how:  # a gate answer already made its own Decision
            by = r.operator or "?"
            self.decisions.append(Decision(r.ts, host, step, by, decision, how, None, "in-doubt"))
            self.note(r, "doubt", f"in doubt: {decision} ({how})")

    def skipped(self, r: Record, host: str, step: str) -> None:
        reason = r.data.get("reason")
        if reason == "done":  # done in an earlier session: its row stays as it was
            return
        if reason == "in-doubt":
            how = "--skip-in-doubt" if self.policy == "skip" else ""
            self.settled(r, host, step, "marked done", how)
        row = self.row(host, step)
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

    def answer(self, r: Record, host: str, step: str) -> None:
        kind = str(r.data.get("kind") or "manual")
        since = self.open_waits.pop((host, step), None)
        waited = None
        if since is not None:
            wait = Wait(host, step, since, r.ts, True)
            self.waits.append(wait)
            waited = wait.seconds
            if kind != "in-doubt":  # an in-doubt question comes before the step starts
                row = self.row(host, step)
                row.waited += wait.seconds
                inside = max(since, row.start) if row.start is not None else since
                row.held += max(0.0, (r.ts - inside).total_seconds())
        by = str(r.data.get("by") or r.operator or "?")
        decision = "approved" if r.type == T.STEP_APPROVED else "rejected"
        if decision == "approved" and kind != "in-doubt":
            self.row(host, step).approved_by = by
        note = str(r.data.get("note") or "")
        if kind == "in-doubt":
            decision = "run again" if decision == "approved" else "marked done"
            self.settled(r, host, step, decision, "")
        self.decisions.append(Decision(r.ts, host, step, by, decision, note, waited, kind))
        if note and not note.startswith("--"):
            self.notes.append(Note(r.ts, by, note, step, False))
        after = f" after {fmt_seconds(waited)}" if waited is not None else ""
        said = f": {note}" if note else ""
        self.note(r, "doubt" if kind == "in-doubt" else "gate", f"{decision} by {by}{after}{said}")

    def finish(self, r: Record, row: _Row, host: str, step: str) -> None:
        outcome = "skipped" if r.type == T.STEP_SKIPPED else (r.outcome or "?")
        row.outcome, row.end = outcome, r.ts
        row.start = row.start or r.ts
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
        took = row.freeze().duration if outcome != "paused" else row.freeze().elapsed
        self.note(r, kind, f"{outcome} ({fmt_seconds(took)})")

    def rollback_row(self, host: str, step: str) -> _Row:
        found = (
            x
            for x in reversed(self.rows)
            if x.kind == "rollback" and (x.host, x.step) == (host, step)
        )
        return next(found, None) or self.new_row(host, step, "rollback")

    def rollback(self, r: Record, host: str, step: str) -> None:
        if r.type == T.ROLLBACK_STARTED:
            row = self.new_row(host, step, "rollback")
            row.start = r.ts
            self.note(r, "rollback", f"rollback of {step} started")
            return
        row = self.rollback_row(host, step)
        ok = r.outcome == "ok"
        row.outcome, row.end = ("rolled-back" if ok else "rollback failed"), r.ts
        row.start = row.start or r.ts
        undone = self.current.get((host, step))
        if undone is not None:
            undone.undone = f"rolled back in session {self.session}" if ok else "rollback failed"
        self.note(r, "rollback", f"rollback of {step}: {'done' if ok else 'FAILED'}")


def _session_ends(sessions: Sequence[Session]) -> list[Milestone]:
    """A line for each session that ended without a word (kill -9, crash, lost machine)."""
    return [
        Milestone(
            s.last.ts,
            None,
            "session",
            None,
            f"session {s.number} ended without run.finished (killed, crashed or still "
            f"running); its last record is seq {s.last.seq}",
        )
        for s in sessions
        if s.kind != "note" and s.finished is None
    ]


def gap_milestones(gaps: Sequence[Gap]) -> list[Milestone]:
    """A line for each stretch when nobody worked."""
    return [
        Milestone(g.start, None, "idle", None, f"nobody working for {fmt_seconds(g.seconds)}")
        for g in gaps
    ]


def build_timeline(records: Sequence[Record]) -> Timeline:
    """Fold a run's records (file order) into its :class:`Timeline`."""
    b = _Builder()
    for r in records:
        if r.type.startswith("step.") and r.step is not None:
            b.step_event(r, r.host if r.host is not None else LOCAL_HOST, r.step)
        else:
            b.run_event(r)
    sessions = split_sessions(records)
    started = records[0].ts if records else None
    steps = [r for r in records if r.type not in AFTERWORDS]
    ended = steps[-1].ts if steps else None
    if ended is not None:
        for (host, step), since in b.open_waits.items():
            b.waits.append(Wait(host, step, since, ended, False))
    total = (ended - started).total_seconds() if started and ended else 0.0
    human = union_seconds(b.waits)
    gaps = idle_gaps(started, ended, sessions, b.waits)
    idle = sum(g.seconds for g in gaps)
    milestones = [*b.milestones, *_session_ends(sessions), *gap_milestones(gaps)]
    run = records[0].run if records else ""

    def tag(items: Sequence[_T]) -> tuple[_T, ...]:
        return tuple(replace(x, run=run) for x in items)

    return Timeline(
        rows=tag([row.freeze() for row in b.rows]),
        milestones=tag(sorted(milestones, key=lambda m: m.ts)),
        failures=tag(b.failures),
        decisions=tag(b.decisions),
        waits=tag(b.waits),
        started=started,
        ended=ended,
        human_wait=human,
        machine_time=max(0.0, total - human - idle),
        idle=idle,
        sessions=tuple(sessions),
        notes=tag(b.notes),
        reaches=tag(
            [replace(v, steps=v.steps + b.path_steps.get(k, 0)) for k, v in b.reaches.items()]
        ),
        gaps=gaps,
        runs=(run,) if run else (),
    )


__all__ = [
    "Decision",
    "Failure",
    "Gap",
    "Milestone",
    "Note",
    "Reach",
    "StepRow",
    "Timeline",
    "Wait",
    "build_timeline",
    "excerpt",
    "first_line",
    "fmt_seconds",
    "gap_milestones",
    "union_seconds",
]
