"""Host locks: two runs never change one host at once; ``drp unlock --force`` clears a stale one."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab, read_pid, stop

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Iterator[Lab]:
    lab = new_lab(tmp_path, sshd)
    yield lab
    pid_file = tmp_path / "nap.pid"
    if pid_file.exists() and pid_file.read_text().strip().isdigit():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_second_run_on_a_busy_host_is_refused_naming_the_first(lab: Lab) -> None:
    first = lab.start(
        "run", str(lab.book("sleeper")), "-i", str(lab.inventory), "--state-dir", str(lab.state)
    )
    try:
        read_pid(lab.root / "nap.pid")  # the first run holds h1 and sleeps
        first_id = lab.only_run()
        second = lab.run(lab.book("hello"))
        assert second.returncode == 7, combined(second)
        assert first_id in combined(second)
        assert "drp unlock h1 --force" in combined(second)
        assert not (lab.root / "mark-h1").exists()
    finally:
        stop(first)


def test_paused_run_keeps_the_lock_until_forced_unlock(lab: Lab) -> None:
    assert lab.run(lab.book("gate")).returncode == 5
    paused_id = lab.only_run()

    same = lab.run(lab.book("gate"))
    assert same.returncode == 7, combined(same)
    assert f"drp resume {paused_id}" in combined(same)

    other = lab.run(lab.book("hello"))  # another runbook: the host lock refuses it
    assert other.returncode == 7, combined(other)
    assert paused_id in combined(other)

    unlock = lab.drp("unlock", "h1", "--force", "-i", str(lab.inventory))
    assert unlock.returncode == 0, combined(unlock)
    assert paused_id in unlock.stdout

    fresh = lab.run(lab.book("gate"), "--new")
    assert fresh.returncode == 5, combined(fresh)
    assert (lab.root / "order").read_text().split() == ["prepared", "prepared"]


def test_lock_scripts_in_a_real_shell(tmp_path: Path) -> None:
    """acquire/release/force_release as the host's /bin/sh runs them."""
    from drp.engine.lock import Holder, acquire, force_release, release
    from drp.errors import LockedError
    from drp.transport.local import LocalTransport

    shell = LocalTransport()
    lock_dir = str(tmp_path / "var" / "lib" / "drp" / "lock")  # parents do not exist yet
    mine = Holder("run-1", "ana@laptop", "2026-11-22T03:00:00Z")
    acquire(shell.run, "db1", lock_dir, mine)
    acquire(shell.run, "db1", lock_dir, mine)  # the same run (a resume) keeps it
    with pytest.raises(LockedError, match="run run-1 by ana@laptop") as refused:
        acquire(shell.run, "db1", lock_dir, Holder("run-2", "bob@desk", "now"))
    assert "drp unlock db1 --force" in str(refused.value)
    assert not release(shell.run, lock_dir, "run-2")  # not its lock: left alone
    assert Path(lock_dir, "holder").is_file()
    assert release(shell.run, lock_dir, "run-1")
    assert not Path(lock_dir).exists()
    assert sorted(p.name for p in Path(lock_dir).parent.iterdir()) == []  # no temp dirs left
    acquire(shell.run, "db1", lock_dir, Holder("run-3", "bob@desk", "now"))
    assert force_release(shell.run, "db1", lock_dir) == Holder("run-3", "bob@desk", "now")
    assert not Path(lock_dir).exists()
