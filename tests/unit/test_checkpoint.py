"""The verified-prefix checkpoint: the fold it keeps is the full fold, and anything that
does not match it (an edited prefix, a tail whose chain breaks) falls back to reading and
verifying the whole journal, which reports the break as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_journal_state import E, ev, events

from drp.cli.resume import _read_for_resume
from drp.engine.events import Event
from drp.errors import JournalError
from drp.journal import JournalWriter, journal_path, read_journal, replay, run_dir
from drp.journal.checkpoint import CHECKPOINT, Checked, load_checkpoint, read_checked
from drp.journal.record import dump_line, record_hash
from drp.journal.state import Fold

RUN = "20261121-234112-disk-replace-7f3a"


def more_sessions() -> list[Event]:
    """A first session that pauses, and a resume that approves, rolls back and ends."""
    return [
        *events(),
        ev(E.RUN_FINISHED, 13, outcome="paused"),
        ev(E.RUN_RESUMED, 20, data={"params": {"failed": "/dev/sdc"}, "incident": "inc-7"}),
        ev(E.STEP_APPROVED, 21, host="db1", step="swap", data={"by": "bob"}),
        ev(E.STEP_FINISHED, 22, host="db1", step="swap", outcome="ok", data={"captures": {}}),
        ev(E.ROLLBACK_FINISHED, 23, host="db2", step="inspect", outcome="ok"),
        ev(E.HOST_FINISHED, 24, host="db1", outcome="ok"),
        ev(E.RUN_FINISHED, 25, outcome="failed"),
    ]


def write(state: Path, evs: list[Event]) -> Path:
    with JournalWriter.create(run_dir(state, RUN), "ana@laptop") as writer:
        for event in evs:
            writer.append(event)
    return journal_path(run_dir(state, RUN))


def test_a_fold_kept_after_any_record_and_fed_the_rest_is_the_full_fold(tmp_path: Path) -> None:
    records = read_journal(write(tmp_path, more_sessions())).records
    for locked in (False, True):
        full = replay(records, locked=locked)
        for cut in range(1, len(records) + 1):
            fold = Fold()
            for record in records[:cut]:
                fold.feed(record)
            again = Fold.from_json(json.loads(json.dumps(fold.to_json())))
            for record in records[cut:]:
                again.feed(record)
            assert again.state(locked=locked) == full, cut


def test_the_writer_keeps_a_checkpoint_of_what_it_wrote(tmp_path: Path) -> None:
    path = write(tmp_path, more_sessions())
    content = path.read_bytes()
    checkpoint = load_checkpoint(path.parent)
    assert checkpoint is not None
    assert (checkpoint.length, checkpoint.seq) == (len(content), len(more_sessions()))
    checked = read_checked(path, content)
    assert checked is not None and not checked.tail.records
    assert checked.fold.state() == replay(read_journal(path).records)
    assert checked.hash_at()(5) == read_journal(path).records[4].hash


def test_records_after_the_checkpoint_are_chain_checked_and_folded(tmp_path: Path) -> None:
    evs = more_sessions()
    path = write(tmp_path, evs[:10])
    with JournalWriter.open_existing(path.parent, "bob") as writer:  # no fold: no new one
        for event in evs[10:]:
            writer.append(event)
    checkpoint = load_checkpoint(path.parent)
    assert checkpoint is not None and checkpoint.seq == 10
    checked = read_checked(path, path.read_bytes())
    assert checked is not None and len(checked.tail.records) == len(evs) - 10
    assert checked.fold.state() == replay(read_journal(path).records)
    assert checked.records == len(evs)


def _edit_line(path: Path, number: int, change: dict[str, object], rehash: bool) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[number - 1])
    record.update(change)
    if rehash:
        record.pop("hash")
        record["hash"] = record_hash(record)
    lines[number - 1] = dump_line(record)
    path.write_text("".join(line + "\n" for line in lines))


def test_an_edited_prefix_is_not_vouched_for_and_resume_reports_the_break(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, events())
    # same length, same parse shape: only the SHA-256 of the prefix can tell
    _edit_line(path, 4, {"outcome": "no"}, rehash=False)
    assert read_checked(path, path.read_bytes()) is None
    seen, _journal, _state, fold = _read_for_resume(tmp_path, path.parent, checkpoint=True)
    assert not isinstance(seen, Checked)
    with pytest.raises(JournalError, match=r"damaged, refusing to append.*hash mismatch"):
        JournalWriter.open_existing(path.parent, "bob", seen=seen, fold=fold)


@pytest.mark.parametrize(
    ("change", "rehash", "problem"),
    [
        ({"outcome": "no"}, False, "hash mismatch"),
        ({"prev": "0" * 64}, True, "prev mismatch"),
        ({"seq": 99}, True, "sequence gap"),
    ],
)
def test_a_tail_whose_chain_breaks_after_the_checkpoint_falls_back(
    tmp_path: Path, change: dict[str, object], rehash: bool, problem: str
) -> None:
    evs = events()
    path = write(tmp_path, evs[:5])
    with JournalWriter.open_existing(path.parent, "bob") as writer:
        for event in evs[5:]:
            writer.append(event)
    _edit_line(path, 7, change, rehash)
    assert read_checked(path, path.read_bytes()) is None
    seen, _journal, _state, fold = _read_for_resume(tmp_path, path.parent, checkpoint=True)
    with pytest.raises(JournalError, match=problem):
        JournalWriter.open_existing(path.parent, "bob", seen=seen, fold=fold)


def test_a_line_rewritten_in_another_form_after_the_checkpoint_falls_back(
    tmp_path: Path,
) -> None:
    evs = events()
    path = write(tmp_path, evs[:5])
    with JournalWriter.open_existing(path.parent, "bob") as writer:
        for event in evs[5:]:
            writer.append(event)
    lines = path.read_text().splitlines()
    lines[6] = json.dumps(json.loads(lines[6]))  # same record, spaces after the separators
    path.write_text("".join(line + "\n" for line in lines))
    assert read_checked(path, path.read_bytes()) is None


def test_resume_through_the_checkpoint_and_the_full_read_decide_the_same(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, events())
    seen, _j, through, _f = _read_for_resume(tmp_path, path.parent, checkpoint=True)
    assert isinstance(seen, Checked)
    _s, _j, whole, _f = _read_for_resume(tmp_path, path.parent, checkpoint=False)
    assert through == whole
    for host in ("db1", "db2"):
        assert through.done_steps(host) == whole.done_steps(host)
        assert through.in_doubt(host) == whole.in_doubt(host)
        assert through.captures(host) == whole.captures(host)


def test_a_resume_that_lost_a_race_keeps_no_stale_checkpoint(tmp_path: Path) -> None:
    """The writer takes the caller's fold only if the file still holds the bytes it was
    folded from: otherwise the checkpoint it would write could name the wrong steps."""
    evs = events()
    path = write(tmp_path, evs[:6])
    seen, _j, _state, fold = _read_for_resume(tmp_path, path.parent, checkpoint=False)
    with JournalWriter.open_existing(path.parent, "other") as writer:  # wrote meanwhile
        writer.append(evs[6])  # an attempt: the fold counts it
    with JournalWriter.open_existing(path.parent, "bob", seen=seen, fold=fold) as writer:
        writer.append(evs[7])
    checked = read_checked(path, path.read_bytes())
    assert checked is not None
    assert checked.fold.state() == replay(read_journal(path).records)


def test_a_damaged_checkpoint_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, events())
    (path.parent / CHECKPOINT).write_text('{"version": 1, "run": 3}')
    assert read_checked(path, path.read_bytes()) is None
    seen, _j, state, _f = _read_for_resume(tmp_path, path.parent, checkpoint=True)
    assert not isinstance(seen, Checked)
    assert state == replay(read_journal(path).records)
