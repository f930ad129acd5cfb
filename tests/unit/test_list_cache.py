"""``drp log list``'s cache trusts a journal's file status (size, mtime, ctime, inode)
only once the journal had settled when the entry was made; a changed journal is read
again, even one edited to the same size with its mtime put back."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from drp.engine.events import Event, EventType
from drp.journal import JournalWriter, run_dir
from drp.report import list_runs, listing
from drp.report.sample import write_sample

OTHER = "20261122-080000-dns-failover-00aa"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """The sample run, and a finished run of another runbook by carol@ops."""
    write_sample(tmp_path)
    with JournalWriter.create(run_dir(tmp_path, OTHER), "carol@ops") as w:
        w.append(Event(EventType.RUN_STARTED, OTHER, data={"runbook": "dns-failover"}))
        w.append(Event(EventType.RUN_FINISHED, OTHER, outcome="ok"))
    return tmp_path


def _cache(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / listing.CACHE).read_text())
    return data


def _doctor(state: Path, **change: Any) -> None:
    """Change OTHER's cache entry: its summary says so, so the listing shows whether the
    entry was used."""
    data = _cache(state)
    data["runs"][OTHER]["summary"]["runbook"] = "from-the-cache"
    data["runs"][OTHER].update(change)
    (state / listing.CACHE).write_text(json.dumps(data))


def _same_size_edit(journal: Path) -> None:
    """One byte changed, the size and the mtime put back as they were."""
    before = journal.stat()
    journal.write_bytes(journal.read_bytes().replace(b"carol@ops", b"carol@opz", 1))
    os.utime(journal, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert journal.stat().st_size == before.st_size
    assert journal.stat().st_mtime_ns == before.st_mtime_ns


def test_a_settled_entry_is_used_on_the_file_status_alone(state: Path) -> None:
    list_runs(state)
    entry = _cache(state)["runs"][OTHER]
    assert entry["stat"][0] == (run_dir(state, OTHER) / "events.jsonl").stat().st_size
    _doctor(state, made=time.time_ns() + 10**10, key="not the journal's hash")
    # settled and the status unchanged: the entry is used, the journal is not hashed
    assert list_runs(state)[0].runbook == "from-the-cache"


def test_a_journal_edited_to_the_same_size_and_mtime_is_read_again(state: Path) -> None:
    list_runs(state)
    _doctor(state, made=time.time_ns() + 10**10)  # as if settled long ago
    _same_size_edit(run_dir(state, OTHER) / "events.jsonl")
    other = list_runs(state)[0]  # the ctime moved: read again
    assert other.runbook == "dns-failover" and not other.verified


def test_an_entry_made_while_the_journal_was_fresh_is_checked_by_its_hash(state: Path) -> None:
    """On a file system whose clock ticks coarsely, an edit within the same tick may
    leave the status as it was: an entry made then is checked by the journal's hash."""
    list_runs(state)
    journal = run_dir(state, OTHER) / "events.jsonl"
    _same_size_edit(journal)
    now = listing.journal_stat(run_dir(state, OTHER))
    assert now is not None
    _doctor(state, stat=now, made=max(now[1], now[2]))  # same status, not settled
    other = list_runs(state)[0]
    assert other.runbook == "dns-failover" and not other.verified
