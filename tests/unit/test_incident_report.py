"""One report across the runs of an incident: the model and timeline of several runs.

Three journals written with drp's own writer: two runs tagged ``2019-09-disk`` (a
kernel rollback through the console that fails and rolls back; a disk replacement
reached at a fallback address that pauses at its gate for a day and is approved
on resume by another operator), and one run of another incident, left out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drp.engine.events import Event
from drp.engine.events import EventType as E
from drp.errors import InputError
from drp.journal import JournalWriter, run_dir
from drp.journal.incident import validate_incident
from drp.report import build_timeline, list_runs
from drp.report.incident import incident_dict, incident_report, incident_timeline, load_incident
from drp.report.summary import RunFilter

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


@pytest.fixture
def state(tmp_path: Path) -> Path:
    _kernel(tmp_path)
    _disk(tmp_path)
    _write(
        tmp_path,
        OTHER,
        "dave@ops",
        [
            _start(OTHER, 3600, "dns-failover", "2019-09-dns"),
            _ev(OTHER, E.RUN_FINISHED, 3700, outcome="ok"),
        ],
    )
    return tmp_path


def test_the_incident_holds_its_runs_only_oldest_first(state: Path) -> None:
    incident = load_incident(state, INCIDENT)
    assert [r.run_id for r in incident.runs] == [KERNEL, DISK]
    assert incident.verified
    assert [s.run_id for s in list_runs(state, RunFilter(incident=INCIDENT))] == [DISK, KERNEL]
    assert {s.incident for s in list_runs(state)} == {INCIDENT, "2019-09-dns"}


def test_one_timeline_with_the_time_split_over_the_whole_incident(state: Path) -> None:
    t = incident_timeline(load_incident(state, INCIDENT).runs)
    assert t.runs == (KERNEL, DISK)
    assert t.started == T0 and t.ended == T0 + timedelta(seconds=7200 + DAY + 10)
    # waiting on humans: the swap gate, from its question to carol's answer
    assert t.human_wait == pytest.approx(DAY + 2 - 5)
    # nobody working: from the kernel run's end to the disk run's start (the dns run is
    # another incident's); the gate's wait spans the disk run's own pause
    assert [(g.start, g.seconds) for g in t.gaps] == [(T0 + timedelta(seconds=10), 7190.0)]
    assert t.idle == pytest.approx(7190.0)
    assert t.machine_time == pytest.approx(t.total - t.human_wait - 7190.0)
    assert t.machine_time == pytest.approx(10 + 5 + 8)  # kernel run, disk run's sessions
    assert [t.where(s.first.run, s.number) for s in t.sessions] == ["r1/s1", "r2/s1", "r2/s2"]
    assert [(m.kind, m.text) for m in t.milestones if m.kind == "idle"] == [
        ("idle", "nobody working for 1h59m")
    ]


def test_who_which_path_failures_rollbacks_and_approvals(state: Path) -> None:
    t = incident_timeline(load_incident(state, INCIDENT).runs)
    reaches = [(x.run, x.session, x.via, x.address, x.steps) for x in t.reaches]
    assert reaches == [
        (KERNEL, 1, "console", "", 2),
        (DISK, 1, "fallback", "10.9.0.5", 1),
        (DISK, 2, "ssh", "10.0.0.5", 1),
    ]
    assert [(f.run, f.step, f.exit_code) for f in t.failures] == [(KERNEL, "set-default", 3)]
    assert [(r.run, r.step, r.outcome) for r in t.rollbacks] == [
        (KERNEL, "pick-kernel", "rolled-back")
    ]
    assert [(d.run, d.step, d.by, d.decision) for d in t.decisions] == [
        (DISK, "swap", "carol@night", "approved")
    ]
    assert [s.operator for s in t.sessions] == ["ana@laptop", "bob@desk", "carol@night"]


def test_a_one_run_incident_is_that_runs_timeline(state: Path) -> None:
    run = load_incident(state, "2019-09-dns").runs
    assert incident_timeline(run) == build_timeline(run[0].journal.records)
    assert incident_timeline(run).where(OTHER, 1) == "1"


def test_markdown_json_and_html(state: Path) -> None:
    incident = load_incident(state, INCIDENT)
    md = incident_report(incident, "md")
    assert "# Incident 2019-09-disk: 2 runs" in md
    assert "all 2 journals verified while reading them" in md
    assert f"| r1 | {KERNEL} | kernel-rollback | failed |" in md
    assert f"| r2 | {DISK} | disk-replace | ok |" in md
    assert "- db1: console in session r1/s1, 2 steps" in md
    assert "- db1: fallback 10.9.0.5 in session r2/s1, 1 step" in md
    assert "nobody working for 1h59m" in md
    assert "session r2/s2 (resume)" in md and "operator carol@night" in md
    assert "(manual) approved by **carol@night**" in md
    assert "rollback of pick-kernel: rolled-back (session r1/s1)" in md
    assert "token=********" in md and OTHER not in md
    data = json.loads(incident_report(incident, "json"))
    assert data["incident"] == INCIDENT
    assert [(r["tag"], r["run"], r["incident"]) for r in data["runs"]] == [
        ("r1", KERNEL, INCIDENT),
        ("r2", DISK, INCIDENT),
    ]
    assert data["integrity"] == {
        "ok": True,
        "journals": 2,
        "failed": [],
        "text": incident.integrity,
    }
    assert set(data["time"]) == {"total", "human_wait", "machine", "idle"}
    assert data["time"]["idle"] == pytest.approx(7190.0)
    assert [p["via"] for p in data["paths"]] == ["console", "fallback", "ssh"]
    assert [(s["run"], s["number"]) for s in data["sessions"]] == [
        (KERNEL, 1),
        (DISK, 1),
        (DISK, 2),
    ]
    assert data["gaps"][0]["seconds"] == pytest.approx(7190.0)
    assert {"approvals", "failures", "rollbacks", "steps", "milestones"} <= set(data)
    assert data == incident_dict(incident)
    html = incident_report(incident, "html")
    assert html.count('class="bar"') == 7  # swap: paused in r2/s1, approved in r2/s2
    assert html.count('class="run-row"') == 2
    assert f'data-run="{DISK}"' in html and "nobody working" in html


def test_a_broken_chain_in_one_run_shows_in_the_incident(state: Path) -> None:
    journal = run_dir(state, KERNEL) / "events.jsonl"
    journal.write_text(journal.read_text().replace("pick-kernel", "pick-kernal", 1))
    incident = load_incident(state, INCIDENT)
    assert not incident.verified
    assert f"1 of 2 journals FAILED verification: {KERNEL}" in incident_report(incident, "md")
    assert json.loads(incident_report(incident, "json"))["integrity"]["failed"] == [KERNEL]


@pytest.mark.parametrize("bad", ["", "a b", "-x", "../etc", "x" * 65, "é", "a/b"])
def test_a_bad_incident_id_is_a_located_input_error(bad: str) -> None:
    with pytest.raises(InputError) as err:
        validate_incident(bad, "$DRP_INCIDENT")
    assert err.value.problems[0].field == "$DRP_INCIDENT"
    assert "e.g. 2019-09-disk" in str(err.value)


def test_an_unknown_incident_says_how_to_tag_runs(state: Path) -> None:
    with pytest.raises(InputError, match=r"no run of incident '2019-10-net'.*--incident ID"):
        load_incident(state, "2019-10-net")
