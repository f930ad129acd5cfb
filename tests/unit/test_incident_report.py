"""One report across the runs of an incident: the model and timeline of several runs.

Three journals written with drp's own writer (:mod:`drp.report.incident_sample`): two
runs tagged ``2019-09-disk`` (a kernel rollback through the console that fails and rolls
back; a disk replacement reached at a fallback address that pauses at its gate for a day
and is approved on resume by another operator), and one run of another incident, left out.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from drp.engine.events import Event, EventType
from drp.errors import InputError
from drp.journal import JournalWriter, run_dir
from drp.journal.incident import validate_incident
from drp.report import build_timeline, list_runs, load_run
from drp.report.incident import incident_dict, incident_report, incident_timeline, load_incident
from drp.report.incident_sample import DAY, DISK, INCIDENT, KERNEL, OTHER, T0, write_incident_sample
from drp.report.summary import RunFilter


@pytest.fixture
def state(tmp_path: Path) -> Path:
    write_incident_sample(tmp_path)
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


def test_a_note_between_sessions_does_not_turn_the_gap_into_machine_time(tmp_path: Path) -> None:
    """Killed, noted an hour later, resumed the next day: the whole gap is nobody working."""
    run_id, t0 = "20261201-030000-raid-rebuild-00cc", T0
    events = [
        Event(EventType.RUN_STARTED, run_id, ts=t0, data={"runbook": "raid-rebuild"}),
        Event(EventType.STEP_STARTED, run_id, ts=t0, host="h1", step="a"),
        # kill -9 after 10 s; a note an hour later; resumed a day later
        Event(EventType.STEP_ATTEMPT, run_id, ts=t0 + timedelta(seconds=10), host="h1", step="a"),
        Event(EventType.RUN_NOTE, run_id, ts=t0 + timedelta(hours=1), message="disk ordered"),
        Event(EventType.RUN_RESUMED, run_id, ts=t0 + timedelta(days=1)),
        Event(EventType.RUN_FINISHED, run_id, ts=t0 + timedelta(days=1, seconds=5), outcome="ok"),
    ]
    with JournalWriter.create(run_dir(tmp_path, run_id), "ana@laptop") as w:
        for event in events:
            w.append(event)
    t = build_timeline(load_run(tmp_path, run_id).journal.records)
    assert t.machine_time == pytest.approx(15)
    assert t.idle == pytest.approx(86400 - 10)
    assert [g.seconds for g in t.gaps] == [pytest.approx(86400 - 10)]
