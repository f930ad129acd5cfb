"""``drp log verify``'s scan (two halves, no record objects) finds exactly what reading
the journal and verifying its chain finds: every kind of damage, on every line, in
either half, and the same anchors (index witness, sessions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_checkpoint import more_sessions, write

from drp.journal import read_journal, verify
from drp.journal.anchors import Heads, check_anchors, check_run
from drp.journal.index import Head, append_head, read_index
from drp.journal.record import dump_line, record_hash
from drp.journal.scan import scan, verify_aside

Edit = Callable[[list[bytes], int], list[bytes]]


def _record_edit(change: dict[str, object], rehash: bool) -> Edit:
    def edit(lines: list[bytes], i: int) -> list[bytes]:
        record = json.loads(lines[i])
        record.update(change)
        if rehash:
            record.pop("hash")
            record["hash"] = record_hash(record)
        return [*lines[:i], dump_line(record).encode(), *lines[i + 1 :]]

    return edit


EDITS: dict[str, Edit] = {
    "changed without its hash": _record_edit({"message": "nothing happened"}, rehash=False),
    "changed and re-hashed": _record_edit({"message": "nothing happened"}, rehash=True),
    "prev rewritten": _record_edit({"prev": "0" * 64}, rehash=True),
    "seq rewritten": _record_edit({"seq": 9999}, rehash=True),
    "another run": _record_edit({"run": "20261121-000000-other-0000"}, rehash=True),
    "a bad timestamp": _record_edit({"ts": "2026-11-21 23:41:12"}, rehash=True),
    "not in the writer's form": lambda lines, i: [
        *lines[:i],
        json.dumps(json.loads(lines[i])).encode(),
        *lines[i + 1 :],
    ],
    "removed": lambda lines, i: [*lines[:i], *lines[i + 1 :]],
    "swapped with the next": lambda lines, i: [
        *lines[:i],
        *lines[i + 1 : i + 2],
        lines[i],
        *lines[i + 2 :],
    ],
    "not UTF-8": lambda lines, i: [*lines[:i], b"\xff" + lines[i], *lines[i + 1 :]],
    "emptied": lambda lines, i: [*lines[:i], b"", *lines[i + 1 :]],
}


def _same_findings(path: Path, state: Path, halves_from: int) -> None:
    index = read_index(state)
    wanted = {e.head.seq for e in index.for_run(path.parent.name)}
    scanned = scan(path, path.read_bytes(), wanted, halves_from=halves_from)
    journal = read_journal(path)
    if scanned is None:  # declined: only for a line that is not a record, said by the read
        assert journal.bad_lines or journal.torn is not None
        return
    assert scanned.result == verify(journal)
    heads = Heads(scanned.run_id, scanned.hash_at(), scanned.result.records)
    fast = check_anchors(heads, scanned.session_records, state, [], False, index)
    assert fast == check_run(journal, path.parent, state, None, index)


@pytest.mark.parametrize("halves_from", [2, 10**9], ids=["two halves", "one pass"])
@pytest.mark.parametrize("name", list(EDITS))
def test_the_scan_finds_what_the_read_and_verify_find(
    tmp_path: Path, name: str, halves_from: int
) -> None:
    path = write(tmp_path, more_sessions())
    records = read_journal(path).records
    append_head(tmp_path, Head(records[0].run, 9, records[8].hash), "session-end")
    append_head(tmp_path, Head(records[0].run, len(records), records[-1].hash), "session-end")
    original = path.read_bytes().split(b"\n")[:-1]
    for i in range(len(original)):
        path.write_bytes(b"".join(line + b"\n" for line in EDITS[name](original, i)))
        _same_findings(path, tmp_path, halves_from)


def test_an_intact_journal_verifies_in_two_halves_as_in_one(tmp_path: Path) -> None:
    path = write(tmp_path, more_sessions())
    one = scan(path, path.read_bytes(), halves_from=10**9)
    two = scan(path, path.read_bytes(), halves_from=2)
    assert one is not None and two is not None
    assert one.result.ok and one.result.finished and one.result == two.result
    assert one.session_records == two.session_records
    _same_findings(path, tmp_path, 2)


def test_a_torn_last_line_is_left_to_the_ordinary_read(tmp_path: Path) -> None:
    path = write(tmp_path, more_sessions())
    path.write_bytes(path.read_bytes()[:-10])
    assert scan(path, path.read_bytes(), halves_from=2) is None
    assert read_journal(path).torn is not None


@pytest.mark.parametrize("name", list(EDITS))
def test_the_chain_checked_aside_is_what_verify_finds(tmp_path: Path, name: str) -> None:
    """``drp log show`` checks the chain in a child while it parses the journal."""
    path = write(tmp_path, more_sessions())
    original = path.read_bytes().split(b"\n")[:-1]
    for i in range(len(original)):
        path.write_bytes(b"".join(line + b"\n" for line in EDITS[name](original, i)))
        verdict = verify_aside(path.read_bytes())()
        journal = read_journal(path)
        if verdict is None:
            assert journal.bad_lines or journal.torn is not None
        else:
            assert verdict == verify(journal)
