"""A step never runs twice at the same time: what an earlier drp left running is found again.

drp is killed (kill -9) or loses the link while a long step runs on the host;
the command goes on there. ``drp resume`` (another process) must find it from
the journal (its run id: the marker the wrapper left under ``~/.drp/attempts``)
and wait for it, or kill it with ``--kill-in-doubt``, before any guard, retry
or next step. The command itself logs ``OVERLAP`` on the host when it starts
while an earlier copy of itself still runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, alive, combined, new_lab, read_pid, stop, wait_until

pytestmark = pytest.mark.integration


def _kill_group_of(pid_file: Path) -> None:
    if pid_file.exists() and pid_file.read_text().strip().isdigit():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Iterator[Lab]:
    lab = new_lab(tmp_path, sshd)
    yield lab
    (tmp_path / "nap-go").touch()
    _kill_group_of(tmp_path / "nap.pid")  # never leave a remote loop behind


@pytest.fixture
def fresh_lab(tmp_path: Path, sshd_fresh: SshServer) -> Iterator[Lab]:
    lab = new_lab(tmp_path, sshd_fresh)
    yield lab
    (tmp_path / "nap-go").touch()
    _kill_group_of(tmp_path / "nap.pid")


def _log(lab: Lab) -> list[str]:
    path = lab.root / "nap-log"
    return path.read_text().split() if path.exists() else []


def _start_run(lab: Lab) -> tuple[subprocess.Popen[str], int]:
    process = lab.start(
        "run", str(lab.book("gated-nap")), "-i", str(lab.inventory), "--state-dir", str(lab.state)
    )
    try:
        return process, read_pid(lab.root / "nap.pid")
    except AssertionError:
        stop(process)
        raise


def _kill_drp_during_nap(lab: Lab) -> tuple[str, int]:
    """kill -9 of drp while nap runs: the host's copy of nap goes on."""
    process, pid = _start_run(lab)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    assert alive(pid)
    return lab.only_run(), pid


def _waiting_noted(lab: Lab, run_id: str) -> bool:
    return any(
        "earlier" in e.get("data", {}) and "waiting for" in e.get("message", "")
        for e in lab.of(run_id, "step.progress", step="nap")
    )


def _resume_waits_then_finishes(lab: Lab, run_id: str, first: int, *args: str) -> str:
    """A resume that must wait for the first copy: it does, then runs nap once more."""
    resumed = lab.start("resume", run_id, *args)
    try:
        assert wait_until(lambda: _waiting_noted(lab, run_id), 30), "no waiting note"
        assert alive(first) and _log(lab) == ["start"]  # no second copy beside the first
        (lab.root / "nap-go").touch()  # the first copy ends; only now may nap run again
        out, err = resumed.communicate(timeout=60)
    finally:
        stop(resumed)
    assert resumed.returncode == 0, out + err
    assert "waiting for the earlier action of step nap" in out
    return out


def test_kill_9_then_resume_retry_in_doubt_waits_for_the_first_copy(lab: Lab) -> None:
    run_id, first = _kill_drp_during_nap(lab)
    _resume_waits_then_finishes(lab, run_id, first, "--retry-in-doubt")
    assert _log(lab) == ["start", "end", "start", "end"]  # one after the other, never beside
    assert (lab.root / "last-done").exists()
    assert lab.drp("log", "verify", run_id).returncode == 0


def test_kill_9_then_plain_resume_says_the_first_attempt_still_runs(lab: Lab) -> None:
    run_id, first = _kill_drp_during_nap(lab)
    asked = lab.drp("resume", run_id)
    assert asked.returncode == 5, combined(asked)
    assert "first attempt is STILL RUNNING" in combined(asked)  # the in-doubt question says so
    assert "--kill-in-doubt" in combined(asked)
    assert alive(first) and _log(lab) == ["start"]
    question = lab.of(run_id, "step.waiting", step="nap")[-1]["message"]
    assert "STILL RUNNING" in question and f"process group {first}" in question


def test_resume_kill_in_doubt_kills_the_first_copy_before_the_retry(lab: Lab) -> None:
    run_id, first = _kill_drp_during_nap(lab)
    resumed = lab.start("resume", run_id, "--kill-in-doubt", "--retry-in-doubt")
    try:
        # the second copy starts only once the first is gone
        assert wait_until(lambda: _log(lab) == ["start", "start"], 30), _log(lab)
        assert not alive(first)
        (lab.root / "nap-go").touch()
        out, err = resumed.communicate(timeout=60)
    finally:
        stop(resumed)
    assert resumed.returncode == 0, out + err
    assert "OVERLAP" not in _log(lab)
    killed = [e for e in lab.of(run_id, "step.progress", step="nap") if "killed" in e["message"]]
    assert killed and killed[0]["data"]["earlier"]["pgid"] == first


def test_a_dropped_link_on_a_step_without_retry_then_resume(fresh_lab: Lab) -> None:
    lab = fresh_lab
    process, first = _start_run(lab)
    try:
        assert wait_until(lambda: lab.sshd.kill_sessions() >= 1, 10)
        out, err = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 3, out + err  # unreachable: nap had no retry policy
    assert alive(first)  # the host's copy goes on without its connection
    run_id = lab.only_run()
    plain = lab.drp("resume", run_id)
    assert plain.returncode == 5, combined(plain)
    assert "first attempt is STILL RUNNING" in combined(plain)
    assert _log(lab) == ["start"]
    _resume_waits_then_finishes(lab, run_id, first, "--retry-in-doubt")
    assert _log(lab) == ["start", "end", "start", "end"]
