"""Ctrl-C during a run, SIGKILL of drp mid-step, and resuming afterwards."""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import (
    Lab,
    alive,
    combined,
    kill_recorded,
    new_lab,
    read_pid,
    stop,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def hup_default() -> Iterator[None]:
    """drp as started from a terminal: SIGHUP at its default, even when these tests run
    under nohup (drp leaves an ignored SIGHUP ignored, on purpose)."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Iterator[Lab]:
    lab = new_lab(tmp_path, sshd)
    yield lab
    kill_recorded(tmp_path / "nap.pid")  # never leave a remote sleep behind


def _start_and_reach_nap(lab: Lab, book: str) -> tuple[subprocess.Popen[str], int]:
    process = lab.start(
        "run", str(lab.book(book)), "-i", str(lab.inventory), "--state-dir", str(lab.state)
    )
    try:
        pid = read_pid(lab.root / "nap.pid")
    except AssertionError:
        stop(process)
        raise
    return process, pid


def _first_count(lab: Lab) -> int:
    return len((lab.root / "first-count").read_text().split())


# -- 8. Ctrl-C --------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_or_a_stop_signal_kills_the_remote_command_and_resume_completes(
    lab: Lab, signum: int, hup_default: None
) -> None:
    """Ctrl-C, and what `timeout`, `systemctl stop` or a cancelled CI job send (SIGTERM)
    or a closed terminal (SIGHUP), where Python's default would end drp at once and
    leave the remote sleep running."""
    process, pid = _start_and_reach_nap(lab, "sleeper")
    try:
        os.kill(process.pid, signum)
        out, err = process.communicate(timeout=30)
    finally:
        stop(process)
    assert process.returncode == 130, out + err
    assert wait_until(lambda: not alive(pid), 10), f"remote sleep {pid} survived {signum!r}"
    run_id = lab.only_run()
    assert f"drp resume {run_id}" in err
    assert lab.outcome(run_id) == "interrupted"
    assert lab.of(run_id, "step.finished", step="nap")[-1]["outcome"] == "interrupted"

    # the signal stopped nap half-way: it is in doubt, never silently run again
    (lab.root / "nap-short").touch()
    asked = lab.drp("resume", run_id)
    assert asked.returncode == 5, combined(asked)
    assert "in doubt" in combined(asked) and "--retry-in-doubt" in combined(asked)
    assert (lab.root / "nap-runs").read_text().split() == ["x"]
    result = lab.drp("resume", run_id, "--retry-in-doubt")
    assert result.returncode == 0, combined(result)
    assert _first_count(lab) == 1
    assert (lab.root / "nap-runs").read_text().split() == ["x", "x"]
    assert (lab.root / "nap-done").exists() and (lab.root / "last-done").exists()
    assert lab.outcome(run_id) == "ok"
    assert lab.drp("log", "verify", run_id).returncode == 0


def test_the_operators_terminal_hanging_up_stops_the_run_cleanly(
    lab: Lab, hup_default: None
) -> None:
    """The SSH session to the bastion drops: SIGHUP, then every write to the terminal
    fails (EIO). The run stops as for Ctrl-C and its journal says so."""
    leader, follower = pty.openpty()
    # a session leader that takes the pty as its controlling terminal, then becomes drp
    take_tty = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    take_tty += "os.execvp(sys.argv[1], sys.argv[1:])"
    process = subprocess.Popen(
        [sys.executable, "-c", take_tty, *lab.args(
            "run", str(lab.book("sleeper")), "-i", str(lab.inventory),
            "--state-dir", str(lab.state),
        )],
        stdin=follower, stdout=follower, stderr=follower,
        env=lab.env(), cwd=lab.root, start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    try:
        pid = read_pid(lab.root / "nap.pid")
        os.close(leader)  # the terminal goes away
        process.wait(30)
    finally:
        stop(process)
    assert process.returncode == 130
    assert wait_until(lambda: not alive(pid), 10), f"remote sleep {pid} survived the hang-up"
    run_id = lab.only_run()
    assert lab.outcome(run_id) == "interrupted"
    assert not (lab.state / "drp-debug.log").exists()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_closed_output_stops_the_run_as_ctrl_c_does(lab: Lab, fmt: str) -> None:
    """`drp run … | head`, or a pager quit: the next line drp writes finds no reader.
    The run stops cleanly (remote commands killed, journal says interrupted), instead
    of the host that printed dying in the middle of its steps with exit 1."""
    process = lab.start(
        "run", str(lab.book("go-then-nap")), "-i", str(lab.inventory),
        "--state-dir", str(lab.state), "--format", fmt,
    )  # fmt: skip
    try:
        read_pid(lab.root / "waiting.pid")
        assert process.stdout is not None
        process.stdout.close()  # the reader goes away while wait-go runs
        (lab.root / "go").touch()  # wait-go ends: its line (or JSON event) has no reader
        err = process.stderr.read() if process.stderr else ""
        process.wait(30)
    finally:
        stop(process)
    assert process.returncode == 130, err
    assert "the output was closed" in err
    run_id = lab.only_run()
    assert f"drp resume {run_id}" in err
    assert lab.outcome(run_id) == "interrupted"
    assert lab.of(run_id, "step.finished", step="wait-go")[-1]["outcome"] == "ok"
    assert not (lab.root / "last-done").exists()
    nap = lab.root / "nap.pid"
    if nap.exists():  # nap had begun: Ctrl-C's rules, its sleep is killed on the host
        assert wait_until(lambda: not alive(int(nap.read_text())), 10)


# -- 9. kill -9 mid-step, then resume ---------------------------------------------------


def _kill_during_nap(lab: Lab, book: str) -> str:
    process, pid = _start_and_reach_nap(lab, book)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    with contextlib.suppress(ProcessLookupError):  # the host's sleep is an orphan now
        os.kill(pid, signal.SIGKILL)
    run_id = lab.only_run()
    assert lab.outcome(run_id) is None  # no run.finished: the journal stops mid-step
    return run_id


def test_resume_after_kill_retries_the_step_in_doubt(lab: Lab) -> None:
    run_id = _kill_during_nap(lab, "sleeper")
    (lab.root / "nap-short").touch()
    result = lab.drp("resume", run_id, "--retry-in-doubt")
    assert result.returncode == 0, combined(result)
    assert _first_count(lab) == 1  # step 1 was done: not run again
    assert (lab.root / "nap-runs").read_text().count("x") == 2
    assert (lab.root / "last-done").exists()
    verify = lab.drp("log", "verify", run_id)
    assert verify.returncode == 0, combined(verify)


def test_resume_after_kill_lets_the_guard_decide(lab: Lab) -> None:
    run_id = _kill_during_nap(lab, "sleeper-guarded")
    (lab.root / "nap-done").touch()  # the step had in fact finished its work
    result = lab.drp("resume", run_id)
    assert result.returncode == 0, combined(result)
    assert _first_count(lab) == 1
    assert (lab.root / "nap-runs").read_text().count("x") == 1  # the guard said: done
    skipped = lab.of(run_id, "step.finished", step="nap")[-1]
    assert skipped["outcome"] == "skipped"
    assert (lab.root / "last-done").exists()
    assert lab.drp("log", "verify", run_id).returncode == 0


def test_resume_after_kill_without_a_policy_pauses_on_the_step_in_doubt(lab: Lab) -> None:
    run_id = _kill_during_nap(lab, "sleeper")
    (lab.root / "nap-short").touch()
    result = lab.drp("resume", run_id)
    assert result.returncode == 5, combined(result)
    assert "in doubt" in combined(result)
    assert "--retry-in-doubt" in combined(result)  # says how to go on without a terminal
    assert (lab.root / "nap-runs").read_text().count("x") == 1  # not run again unasked
    assert not (lab.root / "last-done").exists()
    done = lab.drp("resume", run_id, "--retry-in-doubt")
    assert done.returncode == 0, combined(done)
    assert _first_count(lab) == 1 and (lab.root / "last-done").exists()
    assert (lab.root / "nap-runs").read_text().count("x") == 2


def test_a_step_stays_in_doubt_after_pausing_on_it(lab: Lab) -> None:
    run_id = _kill_during_nap(lab, "sleeper")
    (lab.root / "nap-short").touch()
    assert lab.drp("resume", run_id).returncode == 5
    again = lab.drp("resume", run_id)
    assert again.returncode == 5, combined(again)
    assert (lab.root / "nap-runs").read_text().count("x") == 1
