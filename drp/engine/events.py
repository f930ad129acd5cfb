"""Events: the one stream that the engine emits and that the journal, console and notifiers read.

The engine never prints; it emits :class:`Event` values. The journal stores each
one as a JSON line (see ``drp.journal``), *before* the side effect it announces,
so that the journal is both the checkpoint and the audit log.

Vocabulary (the ``type`` strings are stored: never change them):

run.started      data: runbook, runbook_path, runbook_sha256, params (secrets masked),
                 inventory, inventory_sha256, targets, command_line, drp_version, dry_run
run.resumed      data: command_line, allow_changed, approvals
run.finished     outcome: RunStatus; data: hosts {host: HostStatus}
host.connected   host; data: address, port, via_fallback, via_jump
host.unreachable host; message; data: refused (the login or host key was refused)
host.finished    host; outcome: HostStatus
host.resumed     host; message; data: done_earlier (how many steps earlier sessions
                 finished: not run again, and not journaled again one by one)
lock.acquired / lock.released / lock.forced   host; data: holder
step.started     host, step; data: kind, name, destructive, command
step.skipped     host, step; outcome "skipped"; message: why (when, unless guard, done)
step.attempt     host, step, attempt, exit_code, duration; outcome ok|failed;
                 data: phase (guard|action|verify|rollback|poll), command, stdout, stderr, error
step.progress    host, step; data: percent (float|None), elapsed, timeout; message.
                 Every poll emits one for the console; only those that moved (or one
                 every 30 s) are durable: ``transient=True`` events are not journaled.
                 A retry notice is a step.progress too: attempt, message; data: retry_in.
step.waiting     host, step; message: rendered instructions (manual gate / confirm)
step.approved    host, step; data: by, note      (also for confirmations of destructive steps)
step.rejected    host, step; data: by, note
step.deadline    host, step; message; data: kind, gate_timeout (seconds), on_timeout
                 (notify|fail|pause): a gate's answer did not come within its gate_timeout
step.finished    host, step, duration; outcome: StepStatus; data: captures, message
rollback.started / rollback.finished   host, step; outcome
witness.written  host; outcome ok|failed; data: path, seq, hash (the chain head left on
                 the host at the end of its part of a session; see drp.engine.witness)
run.note         message: the operator's words; data: summary (bool), identity, step
                 (``drp log note``; may follow run.finished)
store.behind     message; data: waiting (records queued here), problem (password masked).
                 The journal store stopped answering; the run goes on. Console and
                 notifiers only (``transient``): the journal is the run's, not the store's
store.caught_up  the store answers again; the records queued meanwhile are on their way
notify.sent      host, step (of the event notified), attempt; outcome "sent"; message;
                 data: channel, via (webhook|email|command), event (paused|failed|
                 unreachable|finished|deadline), about (the notified record's type)
notify.failed    the same; outcome "failed"; data also: error (secrets masked), final
                 (no more attempts), retry_in (seconds, when not final). Written by the
                 notifier's own thread (drp.notify): may follow run.finished, never blocks
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    RUN_STARTED = "run.started"
    RUN_RESUMED = "run.resumed"
    RUN_FINISHED = "run.finished"
    HOST_CONNECTED = "host.connected"
    HOST_UNREACHABLE = "host.unreachable"
    HOST_FINISHED = "host.finished"
    HOST_RESUMED = "host.resumed"
    LOCK_ACQUIRED = "lock.acquired"
    LOCK_RELEASED = "lock.released"
    LOCK_FORCED = "lock.forced"
    STEP_STARTED = "step.started"
    STEP_SKIPPED = "step.skipped"
    STEP_ATTEMPT = "step.attempt"
    STEP_PROGRESS = "step.progress"
    STEP_WAITING = "step.waiting"
    STEP_APPROVED = "step.approved"
    STEP_REJECTED = "step.rejected"
    STEP_DEADLINE = "step.deadline"
    STEP_FINISHED = "step.finished"
    ROLLBACK_STARTED = "rollback.started"
    ROLLBACK_FINISHED = "rollback.finished"
    WITNESS_WRITTEN = "witness.written"
    RUN_NOTE = "run.note"
    NOTIFY_SENT = "notify.sent"
    STORE_BEHIND = "store.behind"
    STORE_CAUGHT_UP = "store.caught_up"
    NOTIFY_FAILED = "notify.failed"


#: Records that may follow ``run.finished`` without being part of the run's steps:
#: an operator's note, and the notifier's report of a delivery that ended late.
AFTERWORDS = frozenset({EventType.RUN_NOTE, EventType.NOTIFY_SENT, EventType.NOTIFY_FAILED})


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One thing that happened in a run. Secrets are already masked when it is built."""

    type: EventType
    run_id: str
    host: str | None = None
    step: str | None = None
    attempt: int | None = None
    outcome: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    ts: datetime = field(default_factory=utcnow)
    transient: bool = False  # live progress for the console only; the journal skips it


Sink = Callable[[Event], None]
