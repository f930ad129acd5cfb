"""Replay: done, in doubt, paused, captures, approvals and run status from events."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drp.engine.events import Event, EventType
from drp.journal import LOCAL_HOST, JournalWriter, journal_path, read_journal, replay, run_dir
from drp.results import HostStatus, RunStatus, StepStatus

RUN = "20261121-234112-disk-replace-7f3a"
T0 = datetime(2026, 11, 21, 23, 41, 12, tzinfo=UTC)
E = EventType


def ev(kind: EventType, n: float = 0, **kw: object) -> Event:
    return Event(kind, RUN, ts=T0 + timedelta(seconds=n), **kw)  # type: ignore[arg-type]


def start() -> Event:
    return ev(
        E.RUN_STARTED,
        data={
            "runbook": "disk-replace",
            "runbook_path": "runbooks/disk-replace.yaml",
            "runbook_sha256": "9c1e" * 16,
            "params": {"failed": "/dev/sdb", "token": "********"},
            "inventory": "inventory/prod.yaml",
            "inventory_sha256": "ab" * 32,
            "targets": ["db1", "db2"],
            "command_line": "drp run disk-replace --host db1",
            "drp_version": "0.1.0",
            "dry_run": False,
        },
    )


def finished(host: str, step: str, n: float, outcome: str = "ok", **caps: object) -> Event:
    return ev(E.STEP_FINISHED, n, host=host, step=step, outcome=outcome, data={"captures": caps})


def events() -> list[Event]:
    return [
        start(),
        ev(E.STEP_STARTED, 1, host="db1", step="inspect"),
        ev(
            E.STEP_ATTEMPT,
            1.1,
            host="db1",
            step="inspect",
            attempt=1,
            outcome="ok",
            data={"phase": "action"},
        ),
        finished("db1", "inspect", 2, arrays=["md0", "md1"], member="sdb"),
        ev(E.STEP_SKIPPED, 3, host="db1", step="optional", outcome="skipped", message="when"),
        ev(E.STEP_STARTED, 4, host="db1", step="fail-and-remove"),
        ev(
            E.STEP_ATTEMPT,
            4.5,
            host="db1",
            step="fail-and-remove",
            attempt=1,
            outcome="failed",
            exit_code=1,
            data={"phase": "action"},
        ),
        ev(
            E.STEP_ATTEMPT,
            5,
            host="db1",
            step="fail-and-remove",
            attempt=2,
            outcome="ok",
            exit_code=0,
            data={"phase": "action"},
        ),
        ev(
            E.STEP_ATTEMPT,
            5.1,
            host="db1",
            step="fail-and-remove",
            attempt=1,
            outcome="ok",
            data={"phase": "verify"},
        ),
        finished("db1", "fail-and-remove", 6, "changed", member="sdb", removed=True),
        ev(E.STEP_STARTED, 7, host="db1", step="swap"),
        ev(E.STEP_WAITING, 7.1, host="db1", step="swap", message="replace the disk in bay 2"),
        # db2: a destructive step was started, then the process died
        ev(E.STEP_STARTED, 8, host="db2", step="inspect"),
        finished("db2", "inspect", 9, "ok", member="sdc"),
        ev(E.STEP_STARTED, 10, host="db2", step="fail-and-remove"),
        ev(
            E.STEP_ATTEMPT,
            10.5,
            host="db2",
            step="fail-and-remove",
            attempt=1,
            data={"phase": "action"},
        ),
        ev(E.STEP_STARTED, 11, host="db2", step="failing"),
        finished("db2", "failing", 12, "failed", half="x"),
    ]


def test_replay_done_in_doubt_paused_captures() -> None:
    state = replay([ev_record for ev_record in _records(events())])
    assert state.run_id == RUN
    assert state.runbook == "disk-replace" and state.targets == ("db1", "db2")
    assert state.params["token"] == "********" and state.operator == "ana@laptop"
    assert state.runbook_sha256.startswith("9c1e") and not state.dry_run
    assert state.done_steps("db1") == {"inspect", "optional", "fail-and-remove"}
    assert state.in_doubt("db1") == set()
    assert state.paused("db1") == {"swap"}
    db1 = state.hosts["db1"]
    assert db1.status is HostStatus.PAUSED
    assert db1.steps["fail-and-remove"].attempts == 2  # verify phase not counted
    assert db1.steps["swap"].status is StepStatus.PAUSED and not db1.steps["swap"].in_doubt
    assert state.captures("db1") == {"arrays": ["md0", "md1"], "member": "sdb", "removed": True}
    assert state.done_steps("db2") == {"inspect"}
    assert state.in_doubt("db2") == {"fail-and-remove"}
    assert state.captures("db2") == {"member": "sdc"}  # failed step's captures not merged
    assert state.hosts["db2"].status is HostStatus.INTERRUPTED
    assert state.status is RunStatus.INTERRUPTED
    assert state.done_steps("nope") == set()


def _records(evs: list[Event]) -> list[dict[str, object]]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        JournalWriter.create(run_dir(Path(tmp), RUN), "ana@laptop") as w,
    ):
        return [w.append(e) for e in evs]


def test_replay_accepts_read_records(tmp_path: Path) -> None:
    rdir = run_dir(tmp_path, RUN)
    with JournalWriter.create(rdir, "ana@laptop") as w:
        for e in events():
            w.append(e)
    state = replay(read_journal(journal_path(rdir)).records)
    assert state.in_doubt("db2") == {"fail-and-remove"}
    assert state.last_seq == len(events())


def test_paused_run_then_resume_and_approve() -> None:
    evs = [
        start(),
        ev(E.STEP_STARTED, 1, host="db1", step="swap"),
        ev(E.STEP_WAITING, 2, host="db1", step="swap", message="swap it"),
        finished("db1", "swap", 3, "paused"),
        ev(E.HOST_FINISHED, 3, host="db1", outcome="paused"),
        ev(E.RUN_FINISHED, 4, outcome="paused"),
    ]
    state = replay(_records(evs))
    assert state.status is RunStatus.PAUSED and state.ended is not None
    assert state.paused("db1") == {"swap"} and state.in_doubt("db1") == set()
    evs += [
        ev(E.RUN_RESUMED, 72000, data={"approvals": ["swap"]}),
        ev(E.STEP_STARTED, 72001, host="db1", step="swap"),
        ev(E.STEP_APPROVED, 72002, host="db1", step="swap", data={"by": "bob@desk"}),
    ]
    state = replay(_records(evs))
    assert state.approvals == {"swap": "bob@desk"}
    assert state.ended is None
    assert state.in_doubt("db1") == {"swap"}  # approved, then the process died
    assert state.status is RunStatus.INTERRUPTED
    assert replay(_records(evs), locked=True).status is RunStatus.RUNNING
    evs += [
        finished("db1", "swap", 72003, "ok"),
        ev(E.HOST_FINISHED, 72004, host="db1", outcome="ok"),
        ev(E.RUN_FINISHED, 72005, outcome="ok"),
    ]
    state = replay(_records(evs))
    assert state.status is RunStatus.OK and state.done_steps("db1") == {"swap"}
    assert state.hosts["db1"].status is HostStatus.OK
    assert state.hosts["db1"].steps["swap"].approved_by == "bob@desk"


def test_rejected_and_local_steps() -> None:
    evs = [
        start(),
        ev(E.STEP_STARTED, 1, step="notify"),
        finished(LOCAL_HOST, "x", 1.5),
        ev(E.STEP_STARTED, 2, host="db1", step="wipe"),
        ev(E.STEP_WAITING, 3, host="db1", step="wipe"),
        ev(E.STEP_REJECTED, 4, host="db1", step="wipe", data={"by": "ana"}),
    ]
    state = replay(_records(evs))
    assert state.in_doubt(LOCAL_HOST) == {"notify"}
    assert state.hosts["db1"].steps["wipe"].status is StepStatus.REJECTED


def test_empty_replay() -> None:
    state = replay([])
    assert state.run_id == "" and state.status is RunStatus.INTERRUPTED
