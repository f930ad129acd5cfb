"""A synthetic disk-replace run (Incident A): for tests, demos and documentation.

The run replaces a failed RAID member on ``db1``: one step is retried after a
transient failure, the manual ``datacenter-swap`` gate waits 20 hours for the
replacement disk (approved by another operator on resume), and ``db2`` fails its
pre-check. All times are fixed, so reports built from it are reproducible.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from drp.engine.events import Event
from drp.engine.events import EventType as E
from drp.journal import JournalWriter, run_dir

SAMPLE_RUN = "20261121-234112-disk-replace-7f3a"
SAMPLE_START = datetime(2026, 11, 21, 23, 41, 12, tzinfo=UTC)
GATE_WAIT = 20 * 3600.0


def _ev(kind: E, at: float, **kw: object) -> Event:
    return Event(kind, SAMPLE_RUN, ts=SAMPLE_START + timedelta(seconds=at), **kw)  # type: ignore[arg-type]


def _step(
    host: str,
    step: str,
    at: float,
    took: float,
    *,
    outcome: str = "ok",
    kind: str = "run",
    **caps: object,
) -> list[Event]:
    return [
        _ev(E.STEP_STARTED, at, host=host, step=step, data={"kind": kind, "name": step}),
        _ev(
            E.STEP_ATTEMPT,
            at + took / 2,
            host=host,
            step=step,
            attempt=1,
            outcome="ok",
            exit_code=0,
            duration=took / 2,
            data={"phase": "action", "stdout": f"{step} done"},
        ),
        _ev(
            E.STEP_FINISHED,
            at + took,
            host=host,
            step=step,
            outcome=outcome,
            duration=took,
            data={"captures": caps},
        ),
    ]


def first_session() -> list[Event]:
    """Saturday night: inspect, retry, fail-and-remove, pause at the swap gate."""
    start = _ev(
        E.RUN_STARTED,
        0,
        data={
            "runbook": "disk-replace",
            "runbook_path": "runbooks/disk-replace.yaml",
            "runbook_sha256": "9c1e" + "0" * 60,
            "params": {"failed": "/dev/sdb", "token": "********"},
            "inventory": "inventory/prod.yaml",
            "inventory_sha256": "ab" * 32,
            "targets": ["db1", "db2"],
            "dry_run": False,
            "drp_version": "0.1.0",
            "command_line": "drp run disk-replace --host db1 --host db2 --param failed=/dev/sdb",
        },
    )
    evs = [start, *_step("db1", "inspect-arrays", 1, 0.4, arrays=["md0", "md1", "md2"])]
    evs += [
        _ev(E.STEP_STARTED, 2, host="db1", step="survivor-healthy", data={"kind": "run"}),
        _ev(
            E.STEP_ATTEMPT,
            3,
            host="db1",
            step="survivor-healthy",
            attempt=1,
            outcome="failed",
            exit_code=255,
            duration=1.0,
            data={
                "phase": "action",
                "command": "smartctl -H /dev/sda",
                "stderr": "ssh: connect to host db1 port 22: Connection timed out",
            },
        ),
        _ev(
            E.STEP_ATTEMPT,
            8,
            host="db1",
            step="survivor-healthy",
            attempt=2,
            outcome="ok",
            exit_code=0,
            duration=1.2,
            data={"phase": "action", "stdout": "PASSED"},
        ),
        _ev(
            E.STEP_FINISHED,
            8.2,
            host="db1",
            step="survivor-healthy",
            outcome="ok",
            duration=6.2,
            data={"captures": {"serial": "WD-WCC4N1234567"}},
        ),
        *_step(
            "db1", "fail-and-remove", 9, 0.9, outcome="changed", removed=["sdb1", "sdb2", "sdb3"]
        ),
        _ev(E.STEP_STARTED, 10, host="db1", step="datacenter-swap", data={"kind": "manual"}),
        _ev(
            E.STEP_WAITING,
            10.1,
            host="db1",
            step="datacenter-swap",
            message="replace serial WD-WCC4N7654321 (bay 2), then confirm",
        ),
    ]
    return sorted([*evs, *_db2_fails(), *_pause()], key=lambda e: e.ts)


def _db2_fails() -> list[Event]:
    return [
        _ev(E.STEP_STARTED, 1, host="db2", step="survivor-healthy", data={"kind": "run"}),
        _ev(
            E.STEP_ATTEMPT,
            2.5,
            host="db2",
            step="survivor-healthy",
            attempt=1,
            outcome="failed",
            exit_code=2,
            duration=1.5,
            data={
                "phase": "action",
                "stderr": "SMART overall-health: FAILED\n<script>alert(1)</script>",
            },
        ),
        _ev(
            E.STEP_FINISHED,
            2.6,
            host="db2",
            step="survivor-healthy",
            outcome="failed",
            duration=1.6,
            exit_code=2,
        ),
        _ev(E.HOST_FINISHED, 2.7, host="db2", outcome="failed"),
    ]


def _pause() -> list[Event]:
    return [
        _ev(E.STEP_FINISHED, 10.2, host="db1", step="datacenter-swap", outcome="paused"),
        _ev(E.HOST_FINISHED, 10.3, host="db1", outcome="paused"),
        _ev(E.RUN_FINISHED, 10.4, outcome="paused"),
    ]


def second_session() -> list[Event]:
    """Sunday, 20 hours later: approve the swap, finish the rebuild."""
    t = 10.1 + GATE_WAIT
    return [
        _ev(
            E.RUN_RESUMED,
            t - 1,
            data={
                "command_line": "drp resume 20261121 --approve datacenter-swap",
                "approvals": ["datacenter-swap"],
            },
        ),
        _ev(E.STEP_STARTED, t - 0.5, host="db1", step="datacenter-swap", data={"kind": "manual"}),
        _ev(
            E.STEP_APPROVED,
            t,
            host="db1",
            step="datacenter-swap",
            data={"by": "bob@desk", "note": "new disk in bay 2"},
        ),
        _ev(E.STEP_FINISHED, t + 0.1, host="db1", step="datacenter-swap", outcome="ok"),
        *_step("db1", "install-bootloader", t + 1, 4.1, outcome="changed"),
        *_step("db1", "reboot", t + 6, 60.0, kind="reboot"),
        _ev(E.HOST_FINISHED, t + 67, host="db1", outcome="ok"),
        _ev(E.RUN_FINISHED, t + 68, outcome="failed"),
    ]


def write_sample(state_dir: Path) -> Path:
    """Write the sample run's journal under ``state_dir``; return its run directory."""
    rdir = run_dir(state_dir, SAMPLE_RUN)
    with JournalWriter.create(rdir, "ana@laptop") as w:
        for e in first_session():
            w.append(e)
    with JournalWriter.open_existing(rdir, "bob@desk") as w:
        for e in second_session():
            w.append(e)
    return rdir
