"""Reports on a synthetic disk-replace run: milestones, waits, approvals, exports, CLI."""

from __future__ import annotations

import csv
import io
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from drp.cli.log import app
from drp.engine.events import Event, EventType
from drp.errors import ExitCode, InputError
from drp.journal import JournalWriter, run_dir
from drp.report import RunFilter, build_timeline, export, list_runs, listing, load_run, report
from drp.report.sample import GATE_WAIT, SAMPLE_RUN, write_sample
from drp.results import RunStatus

OTHER = "20261122-080000-dns-failover-00aa"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    write_sample(tmp_path)
    with JournalWriter.create(run_dir(tmp_path, OTHER), "carol@ops") as w:
        w.append(
            Event(
                EventType.RUN_STARTED,
                OTHER,
                ts=datetime(2026, 11, 22, 8, tzinfo=UTC),
                data={"runbook": "dns-failover", "targets": ["ns1"]},
            )
        )
        w.append(
            Event(
                EventType.RUN_FINISHED,
                OTHER,
                outcome="ok",
                ts=datetime(2026, 11, 22, 8, 5, tzinfo=UTC),
            )
        )
    return tmp_path


def test_md_has_milestones_with_times(state: Path) -> None:
    md = report(load_run(state, SAMPLE_RUN), "md")
    assert "2026-11-21T23:41:21+00:00  db1  fail-and-remove     changed (0.9s)" in md
    gate = "datacenter-swap     approved by bob@desk after 20h00m"
    assert f"2026-11-22T19:41:22+00:00  db1  {gate}" in md
    assert "session 2: run resumed by bob@desk" in md and "session 2 ended: failed" in md
    assert "2026-11-22T19:42:28+00:00  db1  reboot              ok (1m00s)" in md
    assert "hash chain verified (32 records)" in md
    assert "token=********" in md and "9c1e" in md
    assert "drp resume 20261121 --approve datacenter-swap" in md
    assert "exit 255" in md and "Connection timed out" in md  # the retry
    assert "approved by **bob@desk** after waiting 20h00m: new disk in bay 2" in md


def test_human_vs_machine_split(state: Path) -> None:
    run = load_run(state, SAMPLE_RUN)
    t = build_timeline(run.journal.records)
    assert t.human_wait == pytest.approx(GATE_WAIT)
    assert t.machine_time == pytest.approx(78.1, abs=0.01)
    assert t.total == pytest.approx(GATE_WAIT + 78.1, abs=0.01)
    rows = {(r.host, r.step): r for r in t.rows}
    assert rows[("db1", "survivor-healthy")].attempts == 2
    assert rows[("db1", "datacenter-swap")].approved_by == "bob@desk"
    assert [(f.host, f.exit_code) for f in t.failures] == [("db2", 2), ("db1", 255)]


def test_json_report(state: Path) -> None:
    data = json.loads(report(load_run(state, "latest"), "json"))
    assert data["run"] == OTHER and data["status"] == "ok"
    data = json.loads(report(load_run(state, "20261121"), "json"))
    assert data["time"]["human_wait"] == pytest.approx(GATE_WAIT)
    assert data["integrity"]["ok"] is True
    assert data["operators"] == ["ana@laptop", "bob@desk"]
    assert data["approvals"][0]["by"] == "bob@desk"
    assert data["approvals"][0]["waited"] == pytest.approx(GATE_WAIT)
    assert {"milestones", "steps", "failures", "command_lines", "params"} <= set(data)
    with pytest.raises(InputError):
        report(load_run(state, SAMPLE_RUN), "pdf")


def test_html_escapes_journal_content(state: Path) -> None:
    html = report(load_run(state, SAMPLE_RUN), "html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<svg id="timeline"' in html and 'class="gap"' in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_broken_chain_shows_in_report(state: Path) -> None:
    path = run_dir(state, SAMPLE_RUN) / "events.jsonl"
    path.write_bytes(path.read_bytes().replace(b"bob@desk", b"eve@evil", 1))
    md = report(load_run(state, SAMPLE_RUN), "md")
    assert "HASH CHAIN BROKEN" in md


def test_exports(state: Path) -> None:
    run = load_run(state, SAMPLE_RUN)
    stored = (run_dir(state, SAMPLE_RUN) / "events.jsonl").read_text()
    assert export([run.journal], "jsonl") == stored
    rows = list(csv.DictReader(io.StringIO(export([run.journal], "csv"))))
    assert len(rows) == 32 and rows[0]["type"] == "run.started"
    retry = next(r for r in rows if r["exit_code"] == "255")
    assert retry["attempt"] == "1" and retry["outcome"] == "failed" and retry["host"] == "db1"
    with pytest.raises(InputError):
        export([run.journal], "xml")


def test_list_filters(state: Path) -> None:
    assert [s.run_id for s in list_runs(state)] == [OTHER, SAMPLE_RUN]
    assert [s.run_id for s in list_runs(state, RunFilter(runbook="disk-replace"))] == [SAMPLE_RUN]
    assert [s.run_id for s in list_runs(state, RunFilter(host="ns1"))] == [OTHER]
    assert [s.run_id for s in list_runs(state, RunFilter(status=RunStatus.FAILED))] == [SAMPLE_RUN]
    assert [s.run_id for s in list_runs(state, RunFilter(operator="bob"))] == [SAMPLE_RUN]
    since = datetime(2026, 11, 22, tzinfo=UTC)
    assert [s.run_id for s in list_runs(state, RunFilter(since=since))] == [OTHER]
    assert [s.run_id for s in list_runs(state, RunFilter(until=since))] == [SAMPLE_RUN]
    summary = list_runs(state, RunFilter(runbook="disk-replace"))[0]
    assert summary.operators == ("ana@laptop", "bob@desk") and summary.hosts == ("db1", "db2")
    assert summary.counts == {"changed": 2, "failed": 1, "ok": 4}


runner = CliRunner(env={"COLUMNS": "200"})


def test_cli_list_show_report(state: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["list", "--state-dir", str(state), "--runbook", "dns-failover"])
    assert res.exit_code == 0 and "dns-failover" in res.output and "disk-replace" not in res.output
    res = runner.invoke(
        app,
        ["show", "20261121", "--state-dir", str(state), "--step", "survivor-healthy", "--output"],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0 and "Connection timed out" in res.output and "PASSED" in res.output
    out = tmp_path / "r.html"
    res = runner.invoke(
        app, ["report", "20261121", "-f", "html", "-o", str(out)], env={"DRP_STATE_DIR": str(state)}
    )
    assert res.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    res = runner.invoke(app, ["report", "latest", "--state-dir", str(state)])
    assert res.exit_code == 0 and "# Run " + OTHER in res.output


def test_cli_show_steps_by_default_and_events_on_demand(state: Path) -> None:
    steps = runner.invoke(app, ["show", "20261121", "--state-dir", str(state)])
    assert steps.exit_code == 0
    assert "waited 20h00m for a person; approved by bob@desk" in steps.output
    assert "step.approved" not in steps.output
    events = runner.invoke(app, ["show", "20261121", "--state-dir", str(state), "--events"])
    assert events.exit_code == 0 and "step.approved" in events.output


def test_cli_verify_and_export(state: Path) -> None:
    res = runner.invoke(app, ["verify", "--all", "--state-dir", str(state)])
    assert res.exit_code == 0 and res.output.count("ok ") == 2
    path = run_dir(state, SAMPLE_RUN) / "events.jsonl"
    path.write_bytes(path.read_bytes().replace(b"WD-WCC4N7654321", b"WD-WCC4N7654329"))
    res = runner.invoke(app, ["verify", SAMPLE_RUN, "--state-dir", str(state)])
    assert res.exit_code == ExitCode.JOURNAL and "FAILED" in res.output and "edited" in res.output
    res = runner.invoke(app, ["export", OTHER, "--format", "csv", "--state-dir", str(state)])
    assert res.exit_code == 0 and res.output.startswith("ts,run,type")


def test_cli_errors_propagate(state: Path) -> None:
    res = runner.invoke(app, ["show", "../etc", "--state-dir", str(state)])
    assert isinstance(res.exception, InputError)
    res = runner.invoke(app, ["verify", "--state-dir", str(state)])
    assert isinstance(res.exception, InputError)
    for cmd in ("list", "show", "report", "verify", "export"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "Example: drp log " + cmd in res.output


def test_until_a_bare_date_keeps_that_whole_day(state: Path) -> None:
    """The sample run started on 2026-11-21 at 23:41: ``--until 2026-11-21`` lists it."""
    base = ["list", "--state-dir", str(state), "--runbook", "disk-replace", "--until"]
    day = runner.invoke(app, [*base, "2026-11-21"])
    assert day.exit_code == 0, day.output
    assert "no runs" not in day.output and "ok:4" in day.output
    before = runner.invoke(app, [*base, "2026-11-21T23:00"])
    assert "no runs" in before.output and "ok:4" not in before.output


def test_time_between_sessions_is_neither_human_nor_machine(tmp_path: Path) -> None:
    """drp was killed mid-run and resumed a day later, with no gate: that day is idle."""
    run_id = "20261201-030000-raid-rebuild-00bb"
    t0 = datetime(2026, 12, 1, 3, tzinfo=UTC)
    later = t0 + timedelta(days=1)
    with JournalWriter.create(run_dir(tmp_path, run_id), "ana@laptop") as w:
        for event in (
            Event(EventType.RUN_STARTED, run_id, ts=t0, data={"runbook": "raid-rebuild"}),
            Event(EventType.STEP_STARTED, run_id, ts=t0, host="h1", step="a"),
            Event(
                EventType.STEP_FINISHED,
                run_id,
                ts=t0 + timedelta(seconds=30),
                host="h1",
                step="a",
                outcome="ok",
            ),
            Event(
                EventType.STEP_STARTED, run_id, ts=t0 + timedelta(seconds=40), host="h1", step="b"
            ),
            # kill -9 here; resumed the next day
            Event(EventType.RUN_RESUMED, run_id, ts=later),
            Event(EventType.STEP_STARTED, run_id, ts=later, host="h1", step="b"),
            Event(
                EventType.STEP_FINISHED,
                run_id,
                ts=later + timedelta(seconds=20),
                host="h1",
                step="b",
                outcome="ok",
            ),
            Event(EventType.RUN_FINISHED, run_id, ts=later + timedelta(seconds=20), outcome="ok"),
        ):
            w.append(event)
    t = build_timeline(load_run(tmp_path, run_id).journal.records)
    assert t.human_wait == 0
    assert t.idle == pytest.approx(86400 - 40)
    assert t.machine_time == pytest.approx(60)
    md = report(load_run(tmp_path, run_id), "md")
    assert "Between sessions" in md and "23h59m" in md


@pytest.mark.parametrize(
    "message", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)", "\t=1+1", "\r=1+1"]
)
def test_csv_cells_are_never_formulas(tmp_path: Path, message: str) -> None:
    run_id = "20261122-090000-t-00bb"
    with JournalWriter.create(run_dir(tmp_path, run_id), "eve@ops") as w:
        w.append(Event(EventType.RUN_STARTED, run_id, data={"runbook": "t"}))
        w.append(Event(EventType.STEP_SKIPPED, run_id, host="h", step="s", message=message))
    rows = list(csv.DictReader(io.StringIO(export([load_run(tmp_path, run_id).journal], "csv"))))
    assert rows[1]["message"] == "'" + message
    assert rows[1]["host"] == "h" and rows[0]["message"] == ""


def test_cli_show_prints_a_long_run_as_aligned_columns_with_every_row(tmp_path: Path) -> None:
    run_id = "20261122-090000-long-00cc"
    t0 = datetime(2026, 11, 22, 9, tzinfo=UTC)
    steps = 400  # past LONG_TABLE: no rich layout, one plain line per row
    with JournalWriter.create(run_dir(tmp_path, run_id), "eve@ops") as w:
        w.append(Event(EventType.RUN_STARTED, run_id, data={"runbook": "long"}, ts=t0))
        for i in range(steps):
            at = t0 + timedelta(seconds=i)
            step = f"s{i:04d}" if i != 7 else "s\x1b[2J"  # a control sequence is shown, not obeyed
            started = {"kind": "run"}
            w.append(
                Event(EventType.STEP_STARTED, run_id, host="h", step=step, ts=at, data=started)
            )
            w.append(
                Event(EventType.STEP_FINISHED, run_id, host="h", step=step, outcome="ok", ts=at)
            )
        w.append(Event(EventType.RUN_FINISHED, run_id, outcome="ok", ts=t0 + timedelta(hours=1)))
    res = runner.invoke(app, ["show", run_id, "--state-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("session"))
    rows = [line.split() for line in lines[header + 2 : header + 2 + steps]]
    assert [r[2] for r in rows[:3]] == ["s0000", "s0001", "s0002"] and rows[-1][2] == "s0399"
    assert all(r[1] == "h" and r[4] == "ok" for r in rows)
    assert "\x1b" not in res.output and "s\\x1b[2J" in res.output
    # aligned: every row's outcome starts in the header's column
    at = lines[header].index("outcome")
    assert {line[at : at + 2] for line in lines[header + 2 : header + 2 + steps]} == {"ok"}
    events = runner.invoke(app, ["show", run_id, "--state-dir", str(tmp_path), "--events"])
    assert events.exit_code == 0 and events.output.count("step.finished") == steps


def _cache(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / listing.CACHE).read_text())
    return data


def test_log_list_reuses_a_summary_only_while_its_run_is_unchanged(state: Path) -> None:
    fresh = list_runs(state)
    path = state / listing.CACHE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list_runs(state) == fresh  # from the cache: the same summaries
    # the cache is what is read: a summary changed in it shows, while the run is unchanged
    data = _cache(state)
    data["runs"][OTHER]["summary"]["runbook"] = "from-the-cache"
    path.write_text(json.dumps(data))
    assert [s.runbook for s in list_runs(state)] == ["from-the-cache", "disk-replace"]
    # one byte of the journal changed: read again, and the broken chain shows
    journal = run_dir(state, OTHER) / "events.jsonl"
    journal.write_bytes(journal.read_bytes().replace(b"carol@ops", b"carol@opz", 1))
    other = list_runs(state)[0]
    assert other.runbook == "dns-failover" and not other.verified
    # and kept under its new key
    assert _cache(state)["runs"][OTHER]["key"] != data["runs"][OTHER]["key"]


@pytest.mark.parametrize("damage", ["garbage", "version", "entry"])
def test_a_damaged_or_foreign_list_cache_is_rebuilt(state: Path, damage: str) -> None:
    fresh = list_runs(state)
    path = state / listing.CACHE
    data = _cache(state)
    if damage == "garbage":
        path.write_bytes(b"\x00{not json")
    elif damage == "version":
        data["drp"] = "0.0.0-other"
        data["runs"][OTHER]["summary"]["runbook"] = "from-another-drp"
        path.write_text(json.dumps(data))
    else:
        data["runs"][OTHER]["summary"]["counts"] = {"ok": "many"}
        path.write_text(json.dumps(data))
    assert list_runs(state) == fresh
    assert set(_cache(state)["runs"]) == {OTHER, SAMPLE_RUN}


def test_a_run_whose_journal_is_held_is_read_every_time_and_not_cached(state: Path) -> None:
    list_runs(state)
    with JournalWriter.open_existing(run_dir(state, OTHER), "dave@ops"):
        running = list_runs(state)[0]
        assert running.run_id == OTHER and running.status == "ok"  # finished, lock held
        assert OTHER not in _cache(state)["runs"] and SAMPLE_RUN in _cache(state)["runs"]
    list_runs(state)
    assert OTHER in _cache(state)["runs"]


def test_log_list_works_when_its_cache_cannot_be_written(state: Path) -> None:
    fresh = list_runs(state)
    (state / listing.CACHE).unlink()
    (state / listing.CACHE).mkdir()  # the rename fails, even for root
    assert list_runs(state) == fresh
    assert [p.name for p in state.iterdir() if p.name.startswith(".list-cache")] == []


def test_cli_list_of_many_runs_prints_every_run_whole_in_aligned_columns(tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 22, 9, tzinfo=UTC)
    ids = [f"20261122-09{i // 60:02d}{i % 60:02d}-many-{i:04x}" for i in range(301)]
    for n, run_id in enumerate(ids):
        with JournalWriter.create(run_dir(tmp_path, run_id), "eve@ops") as w:
            at = t0 + timedelta(seconds=n)
            w.append(Event(EventType.RUN_STARTED, run_id, ts=at, data={"runbook": "many"}))
            w.append(Event(EventType.RUN_FINISHED, run_id, outcome="ok", ts=at))
    res = runner.invoke(app, ["list", "--state-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:2] == ["run", "runbook"] and set(lines[1]) <= {"-", " "}
    assert [line.split()[0] for line in lines[2:]] == ids[::-1]  # newest first, none cut
    assert all(line.split()[-1] == "ok" for line in lines[2:])
