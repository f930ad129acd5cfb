"""LocalTransport: the Transport contract on this machine (subprocess, process groups)."""

from __future__ import annotations

import os
import shlex
import threading
import time
import uuid
from pathlib import Path

import pytest
from sshd import process_gone

from drp.errors import Cancelled, CommandTimeout, StepFailed
from drp.transport.local import LocalTransport

pytestmark = pytest.mark.integration


def _wait_until(predicate: object, seconds: float = 10.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def _read_pid(path: Path) -> int:
    assert _wait_until(lambda: path.exists() and path.read_text().strip())
    return int(path.read_text().strip())


def test_connect_reports_local() -> None:
    info = LocalTransport("ops").connect()
    assert (info.host, info.address, info.port, info.via_fallback) == ("ops", "local", 0, False)


def test_run_returns_stdout_stderr_and_exit_code() -> None:
    result = LocalTransport().run("echo out; echo err >&2; exit 4")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 4)
    assert result.host == "local" and result.duration > 0 and result.started.tzinfo


def test_stdin_and_on_output() -> None:
    transport = LocalTransport()
    assert transport.run("cat", stdin="a\nb\n").stdout == "a\nb\n"
    assert transport.run("cat; echo end").stdout == "end\n"  # no stdin: EOF at once
    big = "y" * 500_000
    assert transport.run("wc -c", stdin=big).stdout.strip() == str(len(big))
    seen: list[str] = []
    transport.run("echo 1; sleep 0.05; echo 2; printf 3", on_output=seen.append)
    assert seen == ["1", "2", "3"]


def test_shell_metacharacters_arrive_literally() -> None:
    victim = f"/tmp/pwned-{uuid.uuid4().hex}"
    value = f"$(id) `id` ; touch {victim} | cat"
    assert LocalTransport().run(f"printf %s {shlex.quote(value)}").stdout == value
    assert not Path(victim).exists()


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile, child = tmp_path / "main.pid", tmp_path / "child.pid"
    command = f"sleep 300 & echo $! > {child}; sh -c 'echo $$ > {pidfile}; exec sleep 300'"
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"after 0.5s.*sleep 300"):
        LocalTransport().run(command, timeout=0.5)
    assert time.monotonic() - started < 6
    for pid in (_read_pid(pidfile), _read_pid(child)):
        assert _wait_until(lambda pid=pid: process_gone(pid)), f"pid {pid} survived"


def test_term_ignoring_command_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "stubborn.pid"
    command = f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.1; done"
    with pytest.raises(CommandTimeout):
        LocalTransport().run(command, timeout=0.5)
    assert _wait_until(lambda: process_gone(_read_pid(pidfile)))


def test_cancel_from_another_thread(tmp_path: Path) -> None:
    transport = LocalTransport()
    pidfile = tmp_path / "cancel.pid"
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            transport.run(f"sh -c 'echo $$ > {pidfile}; exec sleep 300'")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    pid = _read_pid(pidfile)
    transport.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    assert _wait_until(lambda: process_gone(pid))
    assert transport.run("echo after").stdout == "after\n"


def test_put_is_atomic_with_mode_and_get_round_trips(tmp_path: Path) -> None:
    transport = LocalTransport()
    dest = tmp_path / "app.conf"
    dest.write_text("old")
    transport.put(b"new\x00bytes", str(dest), mode=0o600)
    assert dest.read_bytes() == b"new\x00bytes"
    assert dest.stat().st_mode & 0o7777 == 0o600
    assert list(tmp_path.iterdir()) == [dest]
    assert transport.get(str(dest)) == b"new\x00bytes"


def test_put_keeps_existing_mode_and_defaults_to_umask(tmp_path: Path) -> None:
    transport = LocalTransport()
    script = tmp_path / "run.sh"
    script.write_text("old")
    script.chmod(0o751)
    transport.put(b"#!/bin/sh\n", str(script))
    assert script.stat().st_mode & 0o7777 == 0o751
    fresh = tmp_path / "fresh"
    transport.put(b"x", str(fresh))
    umask = os.umask(0o022)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o7777 == 0o666 & ~umask


def test_put_and_get_failures_are_step_failures(tmp_path: Path) -> None:
    transport = LocalTransport()
    with pytest.raises(StepFailed, match="put"):
        transport.put(b"x", str(tmp_path / "missing" / "dir" / "file"))
    with pytest.raises(StepFailed, match="get"):
        transport.get(str(tmp_path / "absent"))


def test_close_is_harmless() -> None:
    transport = LocalTransport()
    transport.close()
    transport.close()
    assert transport.run("true").ok
