"""The state directory is drp's alone: no links followed, no foreign or world-writable
directories, and a journal appears only with its first record (issue 16, class 5 and 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drp.engine.events import Event, EventType
from drp.errors import JournalError
from drp.journal import JournalWriter, list_run_ids, run_dir
from drp.journal.paths import EVENTS, LOCK

RUN = "20261121-234112-disk-replace-7f3a"


def _started(state: Path) -> Path:
    rdir = run_dir(state, RUN)
    with JournalWriter.create(rdir, "ana") as w:
        w.append(Event(EventType.RUN_STARTED, RUN, data={"runbook": "x"}))
    return rdir


@pytest.mark.parametrize("name", [LOCK, EVENTS])
def test_a_planted_link_is_refused_and_its_target_untouched(tmp_path: Path, name: str) -> None:
    rdir = _started(tmp_path / "state")
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    if name == EVENTS:  # a journal that points elsewhere: a copy of the real one, linked
        target.write_bytes((rdir / EVENTS).read_bytes())
    before = target.read_bytes()
    (rdir / name).unlink()
    (rdir / name).symlink_to(target)
    with pytest.raises(JournalError, match="is a symbolic link: drp does not follow links"):
        JournalWriter.open_existing(rdir, "eve").close()
    assert target.read_bytes() == before


def test_a_world_writable_state_dir_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    with pytest.raises(JournalError, match=r"writable by every user \(mode 777\)"):
        JournalWriter.create(run_dir(state, RUN), "ana")
    assert not (state / "runs").exists() or not list((state / "runs").iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_state_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chown(state, 65534, 65534)
    with pytest.raises(JournalError, match="owned by another user"):
        JournalWriter.create(run_dir(state, RUN), "ana")


def test_a_linked_runs_dir_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (state / "runs").symlink_to(elsewhere)
    with pytest.raises(JournalError, match="symbolic link"):
        JournalWriter.create(run_dir(state, RUN), "ana")


def test_a_journal_appears_only_with_its_first_record(tmp_path: Path) -> None:
    rdir = run_dir(tmp_path, RUN)
    w = JournalWriter.create(rdir, "ana")
    assert not (rdir / EVENTS).exists() and list_run_ids(tmp_path) == []
    w.close()  # nothing written: no run at all
    assert sorted(p.name for p in rdir.iterdir()) == [LOCK]
    _started(tmp_path)
    assert list_run_ids(tmp_path) == [RUN]


def test_kill_9_before_the_first_record_leaves_no_empty_journal(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path; from drp.journal import JournalWriter, run_dir;"
        f"JournalWriter.create(run_dir(Path(sys.argv[1]), {RUN!r}), 'ana'); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    rdir = run_dir(tmp_path, RUN)
    assert not (rdir / EVENTS).exists() and list_run_ids(tmp_path) == []
    _started(tmp_path)  # the same id can start again: the leftover is cleared
    assert list_run_ids(tmp_path) == [RUN]


def test_an_empty_journal_is_named_as_such(tmp_path: Path) -> None:
    rdir = run_dir(tmp_path, RUN)
    rdir.mkdir(parents=True, mode=0o700)
    (rdir / EVENTS).write_bytes(b"")  # as drp before this fix could leave it
    with pytest.raises(JournalError, match="is empty: the drp that started it stopped before"):
        JournalWriter.open_existing(rdir, "ana")


def test_resume_and_log_list_name_an_empty_journal(tmp_path: Path) -> None:
    rdir = run_dir(tmp_path, RUN)
    rdir.mkdir(parents=True, mode=0o700)
    (rdir / EVENTS).write_bytes(b"")
    env = {**os.environ, "DRP_STATE_DIR": str(tmp_path), "COLUMNS": "200"}
    resumed = subprocess.run(
        ["drp", "resume", RUN], capture_output=True, text=True, env=env, check=False
    )
    assert resumed.returncode == 6, resumed.stderr
    assert f"the journal of run {RUN} is empty" in resumed.stderr
    listed = subprocess.run(
        ["drp", "log", "list"], capture_output=True, text=True, env=env, check=False
    )
    assert "(empty journal)" in listed.stdout
