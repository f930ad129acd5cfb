"""The anchors outside a journal (index witness, head statements) and finding runs by time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drp.engine.events import Event, EventType
from drp.journal import JournalWriter, list_run_ids, read_journal, resolve_run, run_dir
from drp.journal.anchors import check_run, deleted_runs, disagreement, head_of
from drp.journal.index import Head, append_head, index_path, read_index
from drp.journal.signing import parse_statement, statement
from drp.report import build_timeline

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def journal_of(state: Path, run_id: str, at: datetime, count: int = 3) -> Path:
    with JournalWriter.create(run_dir(state, run_id), "ana") as writer:
        writer.append(Event(EventType.RUN_STARTED, run_id, ts=at, data={"runbook": "x"}))
        for n in range(count - 2):
            writer.append(Event(EventType.HOST_CONNECTED, run_id, host=f"h{n}", ts=at))
        writer.append(Event(EventType.RUN_FINISHED, run_id, outcome="ok", ts=at))
        seq, digest = writer.head()
        append_head(state, Head(run_id, seq, digest), "session-end")
    return run_dir(state, run_id) / "events.jsonl"


def test_runs_started_in_the_same_second_are_ordered_by_time_not_by_id(tmp_path: Path) -> None:
    late, early = "20261206-120000-aaa-0000", "20261206-120000-unlock-ffff"
    journal_of(tmp_path, early, T0 + timedelta(microseconds=100))
    journal_of(tmp_path, late, T0 + timedelta(microseconds=900))
    assert list_run_ids(tmp_path) == [early, late]
    assert resolve_run(tmp_path, "latest") == late  # the id's text says the opposite


def test_the_index_agrees_then_names_a_cut_a_rewrite_and_a_deleted_run(tmp_path: Path) -> None:
    run_id = "20261206-120000-x-0001"
    path = journal_of(tmp_path, run_id, T0, count=5)
    journal = read_journal(path)
    assert check_run(journal, path.parent, tmp_path).ok
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    cut = check_run(read_journal(path), path.parent, tmp_path)
    assert (
        not cut.ok and "cut from the end" in cut.problems[0] and "index witness" in cut.problems[0]
    )
    other = Head(run_id, 2, "f" * 64)
    assert "the chain was rewritten" in disagreement(journal, other, "w")
    assert deleted_runs(read_index(tmp_path), []) == [
        (run_id, f"run {run_id} is gone: the index witness (witness-index.jsonl) recorded it")
    ]


def test_an_edited_index_line_breaks_the_index(tmp_path: Path) -> None:
    append_head(tmp_path, Head("20261206-120000-x-0001", 3, "a" * 64), "session-end")
    append_head(tmp_path, Head("20261206-120000-x-0001", 5, "b" * 64), "session-end")
    path = index_path(tmp_path)
    first, second = path.read_text().splitlines()
    edited = json.loads(first) | {"seq": 9}
    path.write_text(json.dumps(edited) + "\n" + second + "\n")
    assert "line 1 was edited" in read_index(tmp_path).problem


def test_a_head_statement_round_trips() -> None:
    head = Head("20261206-120000-x-0001", 41, "c" * 64)
    text = statement(head, T0)
    assert text.startswith("drp-journal-head 1\n") and "signed 2026-12-06T12:00:00.000000Z" in text
    assert parse_statement(text) == head
    assert parse_statement("something else\n") is None


def test_head_of_an_empty_journal_is_none(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"")
    assert head_of(read_journal(path)) is None


@pytest.fixture
def resumed_with_confirmation(tmp_path: Path) -> Path:
    """Session 1 does ``a``; session 2 skips it as done and waits 10 min at b's confirmation."""
    run_id = "20261206-120000-x-0002"
    at = T0
    with JournalWriter.create(run_dir(tmp_path, run_id), "ana") as w:
        for kind, sec, kw in [
            (EventType.RUN_STARTED, 0, {}),
            (EventType.STEP_STARTED, 1, {"host": "h", "step": "a", "data": {"kind": "run"}}),
            (EventType.STEP_FINISHED, 3, {"host": "h", "step": "a", "outcome": "ok"}),
            (EventType.RUN_FINISHED, 4, {"outcome": "interrupted"}),
            (EventType.RUN_RESUMED, 3600, {}),
            (EventType.STEP_SKIPPED, 3601, {"host": "h", "step": "a", "data": {"reason": "done"}}),
            (EventType.STEP_STARTED, 3602, {"host": "h", "step": "b", "data": {"kind": "run"}}),
            (EventType.STEP_WAITING, 3602, {"host": "h", "step": "b", "data": {"kind": "confirm"}}),
            (
                EventType.STEP_APPROVED,
                4202,
                {"host": "h", "step": "b", "data": {"kind": "confirm"}},
            ),
            (EventType.STEP_FINISHED, 4205, {"host": "h", "step": "b", "outcome": "ok"}),
            (EventType.RUN_FINISHED, 4206, {"outcome": "ok"}),
        ]:
            w.append(Event(kind, run_id, ts=at + timedelta(seconds=sec), **kw))  # type: ignore[arg-type]
    return run_dir(tmp_path, run_id) / "events.jsonl"


def test_a_step_done_earlier_stays_done_in_its_session(resumed_with_confirmation: Path) -> None:
    t = build_timeline(read_journal(resumed_with_confirmation).records)
    rows = {(r.step, r.session): r for r in t.rows}
    assert set(rows) == {("a", 1), ("b", 2)}  # no 'skipped' row for a in session 2
    assert rows["a", 1].outcome == "ok" and rows["a", 1].duration == 2.0


def test_a_confirmation_wait_is_human_time_not_step_time(resumed_with_confirmation: Path) -> None:
    t = build_timeline(read_journal(resumed_with_confirmation).records)
    b = next(r for r in t.rows if r.step == "b")
    assert b.elapsed == 603.0 and b.waited == 600.0 and b.duration == 3.0
    assert t.human_wait == 600.0
