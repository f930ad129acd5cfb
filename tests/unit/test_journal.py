"""Journal: writer, reader, hash chain, torn tails, locks, run ids."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drp.engine.events import Event, EventType
from drp.errors import InputError, JournalError, LockedError
from drp.journal import (
    GENESIS,
    JournalWriter,
    journal_path,
    lock_holder,
    new_run_id,
    read_journal,
    replay,
    resolve_run,
    run_dir,
    state_dir,
    validate_run_id,
    verify,
)
from drp.journal.reader import parse_bytes
from drp.redact import MASK, Redactor
from drp.results import RunStatus

T0 = datetime(2026, 11, 21, 23, 41, 12, 123456, tzinfo=UTC)
RUN = "20261121-234112-disk-replace-7f3a"


def ev(kind: EventType, n: int = 0, **kw: object) -> Event:
    return Event(kind, RUN, ts=T0 + timedelta(seconds=n), **kw)  # type: ignore[arg-type]


def write(tmp_path: Path, count: int = 5) -> Path:
    rdir = run_dir(tmp_path, RUN)
    with JournalWriter.create(rdir, "ana@laptop") as w:
        w.append(ev(EventType.RUN_STARTED, data={"runbook": "disk-replace", "targets": ["db1"]}))
        for i in range(1, count):
            w.append(ev(EventType.STEP_STARTED, i, host="db1", step=f"s{i}"))
    return journal_path(rdir)


def test_round_trip_and_format(tmp_path: Path) -> None:
    rdir = run_dir(tmp_path, RUN)
    with JournalWriter.create(rdir, "ana@laptop") as w:
        rec = w.append(
            ev(
                EventType.STEP_FINISHED,
                host="db1",
                step="fail-and-remove",
                outcome="ok",
                duration=0.9,
                data={"captures": {"serial": "WD-1"}, "odd": {1, 2} and datetime(2026, 1, 1)},
            )
        )
    line = journal_path(rdir).read_text().splitlines()[0]
    stored = json.loads(line)
    assert stored == rec
    assert list(stored)[:5] == ["v", "seq", "ts", "run", "type"]
    assert stored["ts"] == "2026-11-21T23:41:12.123456Z"
    assert stored["prev"] == GENESIS and len(stored["hash"]) == 64
    assert "attempt" not in stored and "exit_code" not in stored  # None omitted
    assert stored["data"]["odd"] == "2026-01-01 00:00:00"  # default=str
    journal = read_journal(journal_path(rdir))
    assert [r.seq for r in journal.records] == [1]
    assert journal.records[0].operator == "ana@laptop"
    assert verify(journal).ok


def test_chain_verifies(tmp_path: Path) -> None:
    result = verify(read_journal(write(tmp_path)))
    assert result.ok and result.records == 5
    assert "verified" in str(result)


def test_edit_one_byte_names_the_record(tmp_path: Path) -> None:
    path = write(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"s2"', b'"s9"')
    path.write_bytes(b"\n".join(lines))
    result = verify(read_journal(path))
    assert not result.ok
    assert result.line == 3 and result.seq == 3
    assert "edited" in result.problem


def test_deleted_middle_record_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    del lines[2]
    path.write_text("".join(lines))
    result = verify(read_journal(path))
    assert not result.ok
    assert result.seq == 4 and "missing" in result.problem


def test_reordered_records_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("".join(lines))
    result = verify(read_journal(path))
    assert not result.ok and result.line == 2


def test_bad_middle_line_fails_verify(tmp_path: Path) -> None:
    path = write(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = "garbage\n"
    path.write_text("".join(lines))
    journal = read_journal(path)
    assert len(journal.records) == 4 and journal.warnings
    result = verify(journal)
    assert not result.ok and result.line == 2 and "damaged" in result.problem


def test_torn_tail_is_read_and_repaired(tmp_path: Path) -> None:
    path = write(tmp_path)
    content = path.read_bytes()
    path.write_bytes(content[:-25])  # crash mid-write of the last record
    journal = read_journal(path)
    assert len(journal.records) == 4
    assert journal.torn is not None and "torn" in journal.warnings[0]
    assert verify(journal).ok  # a torn tail is a warning, not tampering
    state = replay(journal.records)
    assert state.in_doubt("db1") == {"s1", "s2", "s3"}

    rdir = path.parent
    with JournalWriter.open_existing(rdir, "bob@desk") as w:
        assert any("moved aside" in m for m in w.warnings)
        rec = w.append(ev(EventType.RUN_RESUMED, 10))
        assert rec["seq"] == 5
    aside = list(rdir.glob("events.jsonl.torn-*"))
    assert len(aside) == 1 and content[:-25].endswith(aside[0].read_bytes())
    journal = read_journal(path)
    assert verify(journal).ok and journal.records[-1].operator == "bob@desk"
    assert not journal.warnings


def test_reopening_trusts_the_callers_parse_only_while_the_file_is_unchanged(
    tmp_path: Path,
) -> None:
    path = write(tmp_path)
    content = path.read_bytes()
    seen = (content, parse_bytes(path, content))
    with JournalWriter.open_existing(path.parent, "bob@desk", seen=seen) as w:
        assert w.seq == 5  # the parse handed over, still true
        w.append(ev(EventType.RUN_NOTE, 11))
    # the journal grew after the caller read it: the writer parses it again
    with JournalWriter.open_existing(path.parent, "bob@desk", seen=seen) as w:
        assert w.seq == 6
    # an edit after the caller's read is found under the lock, not hidden by the old parse
    edited = path.read_bytes().replace(b'"bob@desk"', b'"eve@desk"', 1)
    path.write_bytes(edited)
    with pytest.raises(JournalError, match="damaged"):
        JournalWriter.open_existing(path.parent, "bob@desk", seen=seen)


def test_edit_one_byte_of_the_last_record_fails_verify_and_resume(tmp_path: Path) -> None:
    path = write(tmp_path)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and b'"s4"' in lines[4]
    lines[4] = lines[4].replace(b'"s4"', b'"s9"')
    edited = b"\n".join(lines)  # still ends with its newline: a whole line, not a torn one
    path.write_bytes(edited)
    journal = read_journal(path)
    assert journal.torn is None
    result = verify(journal)
    assert not result.ok and result.line == 5 and result.seq == 5
    assert "edited" in result.problem and "line 5 (seq 5)" in str(result)

    with pytest.raises(JournalError, match=r"damaged.*line 5 \(seq 5\).*edited"):
        JournalWriter.open_existing(path.parent, "bob@desk")
    assert path.read_bytes() == edited  # nothing cut or moved aside: it is evidence
    assert not list(path.parent.glob("events.jsonl.torn-*"))


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        (b"garbage\n", "not valid JSON"),
        (b"\n", "empty line"),
        (b'{"v":1}\n', "not a valid record"),
    ],
)
def test_bad_complete_last_line_is_damage_not_a_torn_tail(
    tmp_path: Path, last: bytes, reason: str
) -> None:
    path = write(tmp_path)
    path.write_bytes(path.read_bytes() + last)
    journal = read_journal(path)
    assert journal.torn is None and [b.line for b in journal.bad_lines] == [6]
    result = verify(journal)
    assert not result.ok and result.line == 6 and reason in result.problem
    with pytest.raises(JournalError, match=r"damaged.*line 6"):
        JournalWriter.open_existing(path.parent, "bob@desk")


def test_complete_last_record_with_junk_instead_of_its_newline_is_damage(tmp_path: Path) -> None:
    path = write(tmp_path)
    content = path.read_bytes()
    path.write_bytes(content[:-1] + b"x")  # a torn write never adds bytes after the object
    result = verify(read_journal(path))
    assert not result.ok and result.line == 5 and "unexpected" in result.problem


@pytest.mark.parametrize("tail", [b"", b"\0\0\0"])
def test_complete_last_record_without_its_newline_is_torn(tmp_path: Path, tail: bytes) -> None:
    path = write(tmp_path)
    content = path.read_bytes()
    path.write_bytes(content[:-1] + tail)  # died before the newline (zeros: power cut)
    journal = read_journal(path)
    assert journal.torn is not None and len(journal.records) == 4
    assert verify(journal).ok
    with JournalWriter.open_existing(path.parent, "bob@desk") as w:
        assert w.seq == 4 and any("moved aside" in m for m in w.warnings)


def test_unfinished_journal_is_reported_as_information(tmp_path: Path) -> None:
    path = write(tmp_path)  # no run.finished: running, interrupted, or its tail was cut
    result = verify(read_journal(path))
    assert result.ok and not result.finished
    assert "unfinished" in str(result) and "the chain alone cannot tell" in str(result)

    with JournalWriter.open_existing(path.parent, "ana@laptop") as w:
        w.append(ev(EventType.RUN_FINISHED, 9, outcome="ok"))
    result = verify(read_journal(path))
    assert result.ok and result.finished and "unfinished" not in str(result)

    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # run.finished cut at a line boundary
    result = verify(read_journal(path))
    assert result.ok and not result.finished  # not provable, but said


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_state_and_run_dirs_are_private_and_journal_files_too(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    rdir = run_dir(state, RUN)
    old = os.umask(0o022)  # the usual default: world-readable unless asked otherwise
    try:
        with JournalWriter.create(rdir, "ana@laptop") as w:
            w.append(ev(EventType.RUN_STARTED))
            w.append(ev(EventType.STEP_STARTED, 1, host="db1", step="s1"))
        path = journal_path(rdir)
        path.write_bytes(path.read_bytes()[:-10])  # torn: resume sets the tail aside
        with JournalWriter.open_existing(rdir, "bob@desk") as w:
            assert any("moved aside" in m for m in w.warnings)
    finally:
        os.umask(old)
    assert {p.name: _mode(p) for p in (state, rdir.parent, rdir)} == {
        "state": 0o700,
        "runs": 0o700,
        RUN: 0o700,
    }
    files = {p.name.split("-")[0]: _mode(p) for p in rdir.iterdir()}
    assert files == {
        "events.jsonl": 0o600,
        ".lock": 0o600,
        "events.jsonl.torn": 0o600,
        "checkpoint.json": 0o600,
    }
    assert _mode(tmp_path / "new") == 0o755  # above the state dir: the default


def test_an_existing_state_dir_keeps_its_mode(tmp_path: Path) -> None:
    state = tmp_path / "shared"
    state.mkdir()
    state.chmod(0o750)  # e.g. shared with an on-call group on purpose
    with JournalWriter.create(run_dir(state, RUN), "ana@laptop") as w:
        w.append(ev(EventType.RUN_STARTED))
    assert _mode(state) == 0o750
    assert _mode(state / "runs") == 0o700 and _mode(run_dir(state, RUN)) == 0o700


def test_open_existing_appends_continue_the_chain(tmp_path: Path) -> None:
    path = write(tmp_path, 3)
    with JournalWriter.open_existing(path.parent, "ana@laptop") as w:
        assert w.seq == 3 and not w.warnings
        w.append(ev(EventType.RUN_RESUMED, 5))
    assert verify(read_journal(path)).ok


def test_open_existing_refuses_damaged_journal(tmp_path: Path) -> None:
    path = write(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    del lines[1]
    path.write_text("".join(lines))
    with pytest.raises(JournalError, match="damaged"):
        JournalWriter.open_existing(path.parent, "ana@laptop")


def test_create_twice_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path)
    with pytest.raises(JournalError, match="already"):
        JournalWriter.create(path.parent, "ana@laptop")


def test_second_writer_is_locked_out(tmp_path: Path) -> None:
    rdir = run_dir(tmp_path, RUN)
    first = JournalWriter.create(rdir, "ana@laptop")
    first.append(Event(EventType.RUN_STARTED, RUN))
    try:
        with pytest.raises(LockedError, match=r"ana@laptop") as info:
            JournalWriter.open_existing(rdir, "bob@desk")
        assert f"pid {os.getpid()}" in str(info.value)
        holder = lock_holder(rdir)
        assert holder is not None and holder.operator == "ana@laptop"
        assert replay(read_journal(journal_path(rdir)).records, locked=True).status == "running"
    finally:
        first.close()
    assert lock_holder(rdir) is None
    JournalWriter.open_existing(rdir, "bob@desk").close()


def test_append_after_close_and_wrong_run(tmp_path: Path) -> None:
    w = JournalWriter.create(run_dir(tmp_path, RUN), "ana")
    with pytest.raises(JournalError, match="sent to"):
        w.append(Event(EventType.RUN_STARTED, "20261121-234112-other-0000"))
    w.close()
    w.close()
    with pytest.raises(JournalError, match="closed"):
        w.append(ev(EventType.RUN_STARTED))


def test_fsync_is_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    w = JournalWriter.create(run_dir(tmp_path, RUN), "ana")
    w.append(ev(EventType.RUN_STARTED))
    assert len(calls) >= 2  # the journal, then the directory that now names it
    after_first = len(calls)
    w.append(ev(EventType.STEP_STARTED, 1))
    w.append(ev(EventType.RUN_FINISHED, 2, outcome="ok"))
    assert len(calls) == after_first + 2
    w.close()


def test_a_step_costs_one_fsync_and_its_end_is_on_disk_before_the_next_act(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = journal_path(run_dir(tmp_path, RUN))
    synced: list[int] = []  # the journal's size at each fsync
    real = os.fsync

    def counting(fd: int) -> None:
        real(fd)
        synced.append(path.stat().st_size if path.exists() else 0)

    w = JournalWriter.create(run_dir(tmp_path, RUN), "ana")
    w.append(ev(EventType.RUN_STARTED))
    monkeypatch.setattr(os, "fsync", counting)
    for i in range(1, 4):  # started, attempt, finished: the started one before it acts
        w.append(ev(EventType.STEP_STARTED, i, host="db1", step=f"s{i}"))
        w.append(ev(EventType.STEP_ATTEMPT, i, host="db1", step=f"s{i}", outcome="ok"))
        w.append(ev(EventType.STEP_FINISHED, i, host="db1", step=f"s{i}", outcome="ok"))
    assert len(synced) == 3
    finished = path.stat().st_size
    w.append(ev(EventType.HOST_FINISHED, 9, host="db1", outcome="ok"))
    # the next record's fsync covers the last step's end, before the host is said done
    assert len(synced) == 4 and synced[-1] > finished
    w.close()


def test_concurrent_appends_keep_the_chain(tmp_path: Path) -> None:
    rdir = run_dir(tmp_path, RUN)
    with JournalWriter.create(rdir, "ana") as w:

        def work(host: str) -> None:
            for i in range(20):
                w.append(ev(EventType.STEP_PROGRESS, i, host=host, step="wait"))

        threads = [threading.Thread(target=work, args=(f"h{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    journal = read_journal(journal_path(rdir))
    assert len(journal.records) == 80 and verify(journal).ok


def test_concurrent_appends_each_return_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit never lets an append return before an fsync covered its record."""
    synced_size = 0  # bytes of the journal covered by the last completed fsync
    fsyncs = 0
    real = os.fsync

    def slow_fsync(fd: int) -> None:  # a slow disk, so that writers overlap
        nonlocal synced_size, fsyncs
        size = os.fstat(fd).st_size
        threading.Event().wait(0.002)
        real(fd)
        fsyncs += 1
        synced_size = max(synced_size, size)

    rdir = run_dir(tmp_path, RUN)
    seen: list[tuple[int, int]] = []  # (seq, bytes durable when append returned)
    with JournalWriter.create(rdir, "ana") as w:
        monkeypatch.setattr(os, "fsync", slow_fsync)

        def work(host: str) -> None:
            for i in range(25):
                record = w.append(ev(EventType.STEP_STARTED, i, host=host, step=f"s{i}"))
                seen.append((int(record["seq"]), synced_size))

        threads = [threading.Thread(target=work, args=(f"h{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ends: dict[int, int] = {}
    offset = 0
    for line in journal_path(rdir).read_bytes().splitlines(keepends=True):
        offset += len(line)
        ends[json.loads(line)["seq"]] = offset
    assert len(seen) == 200 and verify(read_journal(journal_path(rdir))).ok
    assert all(ends[seq] <= durable for seq, durable in seen)


def test_records_written_during_an_fsync_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight hosts append while the disk is busy: two fsyncs cover all eight records.

    The first fsync is held until every thread has written its record (a deadline,
    not a sleep), so the schedule is the same on any machine; without group
    commit each record would take its own fsync.
    """
    real = os.fsync
    fsyncs = 0

    def gated_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        deadline = time.monotonic() + 30
        while fsyncs == 1 and w.seq < 9:  # the disk is "busy" until all have written
            assert time.monotonic() < deadline, f"only {w.seq - 1} of 8 records written"
            threading.Event().wait(0.001)
        real(fd)

    rdir = run_dir(tmp_path, RUN)
    with JournalWriter.create(rdir, "ana") as w:
        w.append(ev(EventType.RUN_STARTED))  # the journal is created with its first record
        monkeypatch.setattr(os, "fsync", gated_fsync)
        threads = [
            threading.Thread(target=w.append, args=(ev(EventType.STEP_STARTED, 0, host=f"h{i}"),))
            for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert w.seq == 9 and fsyncs <= 2
    assert verify(read_journal(journal_path(rdir))).ok


def test_run_ids() -> None:
    rid = new_run_id("runbooks/Disk Replace.yaml", T0)
    assert rid.startswith("20261121-234112-disk-replace-") and validate_run_id(rid) == rid
    assert new_run_id("../../", T0).split("-")[2] == "run"
    assert new_run_id("x", T0) != new_run_id("x", T0) or True  # random suffix
    later = new_run_id("a", T0 + timedelta(seconds=1))
    assert sorted([later, rid]) == [rid, later]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../x",
        "/etc",
        "..",
        "a/b",
        RUN + "/..",
        "x" * 200,
        RUN.upper(),
        "20261121-234112-x-zzzz",
    ],
)
def test_run_id_validation_rejects(bad: str) -> None:
    with pytest.raises(InputError):
        validate_run_id(bad)
    with pytest.raises(InputError):
        run_dir(Path("/tmp/state"), bad)


def test_resolve_run(tmp_path: Path) -> None:
    write(tmp_path)
    other = "20261122-080000-dns-failover-00aa"
    with JournalWriter.create(run_dir(tmp_path, other), "ana") as w:
        w.append(Event(EventType.RUN_STARTED, other))
    assert resolve_run(tmp_path, RUN) == RUN
    assert resolve_run(tmp_path, "20261121") == RUN
    assert resolve_run(tmp_path, "latest") == other
    with pytest.raises(InputError, match="ambiguous"):
        resolve_run(tmp_path, "2026112")
    with pytest.raises(InputError, match="no run"):
        resolve_run(tmp_path, "2025")
    for bad in ("../runs", "/etc", ""):
        with pytest.raises(InputError):
            resolve_run(tmp_path, bad)


def test_state_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRP_STATE_DIR", str(tmp_path / "env"))
    assert state_dir(tmp_path / "arg") == tmp_path / "arg"
    assert state_dir(None) == tmp_path / "env"
    monkeypatch.delenv("DRP_STATE_DIR")
    assert state_dir(None).name == "drp"


def test_unfinished_run_without_lock_is_interrupted(tmp_path: Path) -> None:
    path = write(tmp_path, 3)
    assert replay(read_journal(path).records).status is RunStatus.INTERRUPTED


def test_unfinished_run_is_found_behind_newer_ended_ones(tmp_path: Path) -> None:
    """drp run's check: ended runs are recognised from their last line, the others replayed."""
    from types import SimpleNamespace

    from drp.cli.run import _unfinished

    def journal(run_id: str, *, ended: str | None, runbook: str = "disk-replace") -> None:
        with JournalWriter.create(run_dir(tmp_path, run_id), "ana") as w:
            start = Event(EventType.RUN_STARTED, run_id, ts=T0)
            w.append(dataclasses.replace(start, data={"runbook": runbook, "targets": ["db1"]}))
            w.append(Event(EventType.STEP_STARTED, run_id, ts=T0, host="db1", step="s1"))
            if ended:
                w.append(Event(EventType.RUN_FINISHED, run_id, ts=T0, outcome=ended))

    plan = SimpleNamespace(
        runbook=SimpleNamespace(name="disk-replace"), hosts=[SimpleNamespace(name="db1")]
    )
    journal("20261121-230000-disk-replace-aaaa", ended="paused")  # waits at a manual gate
    journal("20261121-231000-disk-replace-bbbb", ended=None)  # killed: interrupted
    journal("20261121-232000-disk-replace-cccc", ended="ok")
    journal("20261121-233000-disk-replace-dddd", ended="failed")
    journal("20261121-234000-kernel-rollback-eeee", ended=None, runbook="kernel-rollback")
    assert _unfinished(tmp_path, plan) == "20261121-231000-disk-replace-bbbb"  # type: ignore[arg-type]
    shutil.rmtree(run_dir(tmp_path, "20261121-231000-disk-replace-bbbb"))
    assert _unfinished(tmp_path, plan) == "20261121-230000-disk-replace-aaaa"  # type: ignore[arg-type]
    shutil.rmtree(run_dir(tmp_path, "20261121-230000-disk-replace-aaaa"))
    assert _unfinished(tmp_path, plan) is None  # type: ignore[arg-type]


# -- secrets: the redactor applied to events before they are journaled -------------------

SECRET = "it's a $ecret\\x"  # a single quote, spaces, a dollar and a backslash


def _written_forms(secret: str) -> list[str]:
    """How a leaked secret would look in the journal: each form, and each JSON-escaped."""
    quoted = shlex.quote(secret)
    shown = [secret, quoted, quoted[1:-1], shlex.join([f"pw={secret}"])[4:-1]]
    return sorted(
        {*shown, *(json.dumps(s, ensure_ascii=a)[1:-1] for s in shown for a in (False, True))}
    )


def test_redactor_masks_shell_quoted_and_escaped_forms() -> None:
    redact = Redactor.of([SECRET])
    command = f"echo password is {shlex.quote(SECRET)}"
    assert "'it'\"'\"'s a $ecret\\x'" in command
    assert redact.text(command) == f"echo password is {MASK}"
    line = shlex.join(["drp", "run", "book", "--param", f"password={SECRET}"])
    assert redact.text(line) == f"drp run book --param 'password={MASK}'"
    as_json = json.dumps({"stdout": SECRET, "ascii": "é" + SECRET}, ensure_ascii=True)
    assert SECRET not in redact.text(as_json) and "ecret" not in redact.text(as_json)
    assert redact.text(repr(SECRET)) == f'"{MASK}"'
    double_quoted = "it's a \\$ecret\\\\x"  # escaped as inside double quotes
    assert redact.text(f'echo "{double_quoted}"') == f'echo "{MASK}"'
    assert redact.text("it\\'s\\ a\\ \\$ecret\\\\x") == MASK  # printf %q style
    assert redact.text("it'\\''s a $ecret\\x") == MASK  # the other single-quote idiom


def test_redactor_masks_long_pieces_but_not_short_ones() -> None:
    redact = Redactor.of(["ab'cdefg hi$jklmn"])
    # a quoting drp does not know still cannot show the long pieces
    assert redact.text("ab?cdefg?hi?jklmn") == f"ab?{MASK}?hi?{MASK}"
    assert redact.text("cdefg hi$jklmn") == MASK  # the piece after the quote
    # short pieces, and secrets without special characters, are not split up
    assert redact.text("ab hi") == "ab hi"
    plain = Redactor.of(["hunter2hunter2"])
    assert plain.text("hunter2 hunter") == "hunter2 hunter"
    assert plain.text("x=hunter2hunter2;") == f"x={MASK};"


def test_redactor_walks_every_value_and_keeps_others() -> None:
    redact = Redactor.of([SECRET, None, ""])
    assert redact.secrets == (SECRET,)
    value = {
        "cmd": [f"a {shlex.quote(SECRET)}", (SECRET,)],
        SECRET: {SECRET},
        "path": Path(f"/tmp/{SECRET}"),
        "keep": Path("/tmp/x"),
        "n": 3,
        "ok": True,
        "none": None,
    }
    assert redact(value) == {
        "cmd": [f"a {MASK}", [MASK]],
        MASK: [MASK],
        "path": f"/tmp/{MASK}",
        "keep": Path("/tmp/x"),
        "n": 3,
        "ok": True,
        "none": None,
    }
    assert Redactor()(value) is value
    assert Redactor.of([SECRET]) == redact  # patterns are derived, not compared


def test_secret_with_shell_characters_never_reaches_the_journal_file(tmp_path: Path) -> None:
    redact = Redactor.of([SECRET])
    command = f"echo password is {shlex.quote(SECRET)}"
    line = shlex.join(["drp", "run", "x", "--param", f"password={SECRET}"])
    rdir = run_dir(tmp_path, RUN)
    with JournalWriter.create(rdir, "ana@laptop") as w:
        w.append(ev(EventType.RUN_STARTED, data=redact({"command_line": line})))
        w.append(
            ev(
                EventType.STEP_ATTEMPT,
                1,
                host="db1",
                step="s1",
                message=redact.text(f"ran {command}"),
                data=redact({"command": command, "stdout": f"password is {SECRET}\n"}),
            )
        )
    content = journal_path(rdir).read_bytes()
    assert MASK.encode() in content
    for form in _written_forms(SECRET):
        assert form.encode() not in content, form
    assert b"ecret" not in content  # nor a piece long enough to mean something


def test_a_built_record_is_what_a_reader_sees_and_owns_its_values() -> None:
    import json as _json
    from pathlib import PurePosixPath

    from drp.engine.events import Event, EventType
    from drp.journal.record import build_record

    nested = {"list": [1, {"deep": "x"}], "flag": True, "none": None, "n": 1.5}
    odd = {"tuple": (1, 2), "path": PurePosixPath("/etc"), "kind": EventType.STEP_STARTED}
    for data in (nested, odd):
        event = Event(type=EventType.STEP_STARTED, run_id="r", host="h", data=data)
        record = build_record(event, seq=1, operator="ana", prev="0" * 64)
        body = {k: v for k, v in record.items() if k != "hash"}
        assert body == _json.loads(_json.dumps(body)) and "hash" in record
    assert build_record(
        Event(type=EventType.STEP_STARTED, run_id="r", data=odd), seq=1, operator="", prev=""
    )["data"] == {"tuple": [1, 2], "path": "/etc", "kind": "step.started"}
    event = Event(type=EventType.STEP_STARTED, run_id="r", data=nested)
    record = build_record(event, seq=1, operator="", prev="")
    nested["list"][1]["deep"] = "changed later"  # type: ignore[index]
    assert record["data"]["list"][1] == {"deep": "x"}
