"""A synthetic incident (the September 2019 disk night): three runs, two of one incident.

``2019-09-disk`` holds a kernel rollback worked through the console that fails and is
rolled back, and two hours later a disk replacement reached at a fallback address that
pauses at its swap gate for 20 hours and is approved on resume by another operator.
A dns-failover run of another incident sits between them. Times are fixed, so the
reports built from it are reproducible: for tests, demos and documentation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from drp.engine.events import Event
from drp.engine.events import EventType as E
from drp.journal import JournalWriter, run_dir

INCIDENT = "2019-09-disk"
T0 = datetime(2019, 9, 14, 1, 0, 0, tzinfo=UTC)
KERNEL = "20190914-010000-kernel-rollback-aa01"
DISK = "20190914-030000-disk-replace-bb02"
OTHER = "20190914-020000-dns-failover-cc03"
DAY = 20 * 3600.0


def _ev(run: str, kind: E, at: float, **kw: object) -> Event:
    return Event(kind, run, ts=T0 + timedelta(seconds=at), **kw)  # type: ignore[arg-type]


def _write(state: Path, run: str, operator: str, events: list[Event]) -> None:
    writer = JournalWriter.create(run_dir(state, run), operator)
    for event in events:
        writer.append(event)
    writer.close()


def _start(run: str, at: float, runbook: str, incident: str, **extra: object) -> Event:
    data = {"runbook": runbook, "targets": ["db1"], "incident": incident, **extra}
    return _ev(run, E.RUN_STARTED, at, data=data)


def _step(run: str, at: float, step: str, path: str, outcome: str = "ok") -> list[Event]:
    return [
        _ev(run, E.STEP_STARTED, at, host="db1", step=step, data={"kind": "run", "path": path}),
        _ev(run, E.STEP_FINISHED, at + 2, host="db1", step=step, outcome=outcome),
    ]


def _kernel(state: Path) -> None:
    """01:00, ana through the console: one step ok, the next fails, rolled back."""
    r = KERNEL
    _write(
        state,
        r,
        "ana@laptop",
        [
            _start(r, 0, "kernel-rollback", INCIDENT, params={"token": "********"}),
            _ev(r, E.HOST_CONNECTED, 1, host="db1", data={"via_console": True, "address": ""}),
            *_step(r, 2, "pick-kernel", "console"),
            _ev(r, E.STEP_STARTED, 5, host="db1", step="set-default", data={"path": "console"}),
            _ev(
                r,
                E.STEP_ATTEMPT,
                6,
                host="db1",
                step="set-default",
                attempt=1,
                outcome="failed",
                exit_code=3,
                data={"phase": "action", "stderr": "grub-set-default: no such entry"},
            ),
            _ev(r, E.STEP_FINISHED, 6, host="db1", step="set-default", outcome="failed"),
            _ev(r, E.ROLLBACK_STARTED, 7, host="db1", step="pick-kernel"),
            _ev(r, E.ROLLBACK_FINISHED, 8, host="db1", step="pick-kernel", outcome="ok"),
            _ev(r, E.RUN_FINISHED, 10, outcome="failed"),
        ],
    )


def _disk(state: Path) -> None:
    """03:00, bob at a fallback address: pauses at the swap; carol approves a day later."""
    r, at = DISK, 7200.0
    _write(
        state,
        r,
        "bob@desk",
        [
            _start(r, at, "disk-replace", INCIDENT),
            _ev(
                r,
                E.HOST_CONNECTED,
                at + 1,
                host="db1",
                data={"via_fallback": True, "address": "10.9.0.5"},
            ),
            *_step(r, at + 2, "fail-and-remove", "ssh"),
            _ev(
                r,
                E.STEP_STARTED,
                at + 5,
                host="db1",
                step="swap",
                data={"kind": "manual", "path": "local"},
            ),
            _ev(r, E.STEP_WAITING, at + 5, host="db1", step="swap", message="swap the disk"),
            _ev(r, E.STEP_FINISHED, at + 6, host="db1", step="swap", outcome="paused"),
            _ev(r, E.RUN_FINISHED, at + 6, outcome="paused"),
        ],
    )
    with JournalWriter.open_existing(run_dir(state, r), "carol@night") as w:
        for event in [
            _ev(r, E.RUN_RESUMED, at + DAY, data={"approvals": ["swap"]}),
            _ev(r, E.HOST_CONNECTED, at + DAY + 1, host="db1", data={"address": "10.0.0.5"}),
            _ev(
                r,
                E.STEP_APPROVED,
                at + DAY + 2,
                host="db1",
                step="swap",
                data={"by": "carol@night"},
            ),
            _ev(r, E.STEP_FINISHED, at + DAY + 2, host="db1", step="swap", outcome="ok"),
            *_step(r, at + DAY + 3, "add-members", "ssh"),
            _ev(r, E.RUN_FINISHED, at + DAY + 10, outcome="ok"),
        ]:
            w.append(event)


def write_incident_sample(state: Path) -> None:
    """Write the three runs' journals under ``state``."""
    _kernel(state)
    _disk(state)
    _write(
        state,
        OTHER,
        "dave@ops",
        [
            _start(OTHER, 3600, "dns-failover", "2019-09-dns"),
            _ev(OTHER, E.RUN_FINISHED, 3700, outcome="ok"),
        ],
    )
