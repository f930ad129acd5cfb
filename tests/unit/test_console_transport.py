"""The console transport against a local terminal: a relay program with a login and a bash.

``tests/console/fake_console.py`` stands in for ``virsh console`` / ``ipmitool
sol activate``: a program whose stdin/stdout is a terminal with ``login:``,
``Password:`` and an interactive bash behind it (a real pty: echo, CRLF,
Ctrl-C, job control). It runs in a second or two, without QEMU; the lab tier
(tests/lab/test_serial_console.py) does the same on a real serial port. Path
selection (:class:`PathTransport`) is tested with drp's FakeTransport.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from drp.engine.events import Event, EventType
from drp.engine.executor import Executor
from drp.engine.options import NoOperator, RunOptions
from drp.engine.plan import build_plan
from drp.errors import AuthError, Cancelled, CommandTimeout, ConnectError, StepFailed
from drp.inventory import load_inventory
from drp.inventory.model import Become, Console, Host
from drp.results import CommandResult
from drp.runbook.loader import load_runbook
from drp.runbook.params import resolve_params
from drp.testing import FakeTransport
from drp.transport.base import ConnectInfo
from drp.transport.command import wrap_become
from drp.transport.console import MAX_PUT, ConsoleTransport
from drp.transport.paths import PathTransport

FAKE = Path(__file__).resolve().parents[1] / "console" / "fake_console.py"
PASSWORD = "s3cret-Pw"


def fake_host(*, kmsg: bool = False) -> Host:
    console = Console(
        command=f"env FAKE_KMSG={int(kmsg)} {sys.executable} {FAKE}", user="ops", timeout=20
    )
    return Host("fake1", "192.0.2.1", console=console)


@pytest.fixture(autouse=True)
def _fake_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_USER", "ops")
    monkeypatch.setenv("FAKE_PASSWORD", PASSWORD)


@pytest.fixture
def transcript() -> io.BytesIO:
    return io.BytesIO()


@pytest.fixture
def console(transcript: io.BytesIO) -> Iterator[ConsoleTransport]:
    transport = ConsoleTransport(fake_host(), password=PASSWORD, transcript=transcript)
    try:
        yield transport
    finally:
        transport.close()


def test_login_exit_codes_stderr_and_stdin(console: ConsoleTransport) -> None:
    info = console.connect()
    assert info.via_console and "fake_console.py" in info.address
    result = console.run("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert console.run("false").exit_code == 1
    assert console.run("no-such-command-drp").exit_code == 127
    assert console.run("tr a-z A-Z", stdin="abc\n").stdout == "ABC\n"
    lines: list[str] = []
    console.run("printf 'a\\nb\\n'", on_output=lines.append)
    assert lines == ["a", "b"]


def test_output_is_exact_with_kernel_messages_landing_in_it(transcript: io.BytesIO) -> None:
    transport = ConsoleTransport(fake_host(kmsg=True), password=PASSWORD, transcript=transcript)
    try:
        result = transport.run("seq 1 40000; printf 'drp0123456789abcdef01234567:done:0\\n'")
    finally:
        transport.close()
    expected = "".join(f"{n}\n" for n in range(1, 40001)) + "drp0123456789abcdef01234567:done:0\n"
    assert result.stdout == expected
    assert b"fake: link is down" in transcript.getvalue()  # they did land on the console


def test_wrong_password_is_refused_and_not_shown() -> None:
    transport = ConsoleTransport(fake_host(), password="wrong-Pw-123")
    with pytest.raises(AuthError, match="refused for ops") as caught:
        transport.connect()
    assert "wrong-Pw-123" not in str(caught.value)
    transport.close()


def test_a_half_done_login_is_not_answered_with_our_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_HALF_LOGIN", "1")
    transport = ConsoleTransport(fake_host(), password=PASSWORD)
    try:
        assert transport.run("echo in").stdout == "in\n"
    finally:
        transport.close()


def test_no_password_says_where_it_comes_from() -> None:
    host = fake_host()
    assert host.console is not None
    host = replace(host, console=replace(host.console, password_env="X_PW"))
    with pytest.raises(AuthError, match=r"\$X_PW"):
        ConsoleTransport(host).connect()


def test_timeout_types_ctrl_c_and_the_shell_answers_again(console: ConsoleTransport) -> None:
    with pytest.raises(CommandTimeout, match="was killed"):
        console.run("sleep 300", timeout=1)
    assert console.run("echo back").stdout == "back\n"


def test_cancel_from_another_thread(console: ConsoleTransport) -> None:
    console.connect()
    timer = threading.Timer(1.0, console.cancel)
    timer.start()
    with pytest.raises(Cancelled, match="was killed"):
        console.run("sleep 300")
    timer.join()
    assert console.run("echo still here").stdout == "still here\n"


def test_put_and_get(console: ConsoleTransport, tmp_path: Path) -> None:
    data = os.urandom(100 * 1024)
    dest = tmp_path / "put.bin"
    console.put(data, str(dest), mode=0o640)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert dest.stat().st_mode & 0o777 == 0o640
    assert console.get(str(dest)) == data
    assert not [p for p in tmp_path.iterdir() if p.name != "put.bin"]  # no temp file left
    with pytest.raises(StepFailed, match="more than the console"):
        console.put(b"x" * (MAX_PUT + 1), str(dest))
    with pytest.raises(StepFailed, match="cannot read"):
        console.get(str(tmp_path / "missing"))


def test_close_logs_out_to_a_login_prompt(
    console: ConsoleTransport, transcript: io.BytesIO
) -> None:
    console.run("true")
    console.close()
    assert transcript.getvalue().rstrip().endswith(b"login:")


def test_a_console_that_cannot_open_is_unreachable() -> None:
    host = Host("h", "h", console=Console(socket="unix:/nonexistent/drp.sock", timeout=2))
    with pytest.raises(ConnectError, match="cannot open console"):
        ConsoleTransport(host).connect()


# -- path selection --------------------------------------------------------------------


def test_ssh_first_console_only_when_allowed_and_back_to_ssh() -> None:
    ssh, console = FakeTransport("h"), FakeTransport("h")
    paths = PathTransport(ssh, console)
    ssh.unreachable = True
    paths.allow_console(False)
    with pytest.raises(ConnectError, match="does not allow the console"):
        paths.run("a")
    paths.allow_console(True)
    paths.run("b")
    assert console.ran("^b$") and not ssh.ran("b")
    paths.run("c")  # same step: stays on the console without asking SSH again
    assert console.ran("^c$")
    ssh.unreachable = False
    paths.allow_console(True)  # the next step: SSH answers again
    paths.run("d")
    assert ssh.ran("^d$") and not console.ran("d")


def test_a_refused_ssh_key_is_not_worked_around() -> None:
    class Refusing(FakeTransport):
        def connect(self):  # type: ignore[no-untyped-def]
            raise AuthError("h", "authentication failed")

    console = FakeTransport("h")
    paths = PathTransport(Refusing("h"), console)
    paths.allow_console(True)
    with pytest.raises(AuthError):
        paths.run("x")
    assert not console.commands


# -- drp console HOST -------------------------------------------------------------------


def test_drp_console_is_interactive_and_journaled(tmp_path: Path) -> None:
    import json

    import pexpect

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "hosts:\n  fake1:\n    address: 192.0.2.1\n    console:\n"
        f"      command: {sys.executable} {FAKE}\n      user: ops\n"
        "      password_env: DRP_TEST_CONSOLE_PW\n"
    )
    env = {**os.environ, "DRP_TEST_CONSOLE_PW": PASSWORD}
    argv = ["console", "fake1", "-i", str(inventory), "--state-dir", str(tmp_path / "state")]
    session = pexpect.spawn("drp", argv, env=env, timeout=60, encoding="utf-8")
    session.expect("Ctrl-] ends the session")
    session.send("echo typed-by-the-$((40+2))-operator\r")
    session.expect("typed-by-the-42-operator")
    session.send("\x1d")
    session.expect("logged out; session journaled as (\\S+)")
    session.expect(pexpect.EOF)
    session.close()
    assert session.exitstatus == 0
    files = list((tmp_path / "state").rglob("events.jsonl"))
    assert len(files) == 1
    text = files[0].read_text()
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["type"] for e in events] == ["run.started", "host.connected", "run.finished"]
    assert events[-1]["outcome"] == "ok" and events[-1]["duration"] >= 0
    assert "typed-by" not in text and PASSWORD not in text


def test_drp_run_asks_the_console_password_once_and_masks_it(tmp_path: Path) -> None:
    """No ``password_env``: ``--ask-console-pass`` asks at the start, the console uses it."""
    import json

    import pexpect

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(  # port 1 on loopback: SSH refused at once, the console is left
        "hosts:\n  fake1:\n    address: 127.0.0.1\n    port: 1\n    connect_timeout: 2\n"
        f"    console:\n      command: {sys.executable} {FAKE}\n      user: ops\n"
    )
    book = tmp_path / "book.yaml"
    book.write_text("name: t\nconsole: true\nsteps:\n  - {id: a, run: 'echo on-the-$((40+2))'}\n")
    state = tmp_path / "state"
    argv = ["run", str(book), "-i", str(inventory), "-H", "fake1", "--yes"]
    session = pexpect.spawn(
        "drp",
        [*argv, "--ask-console-pass", "--state-dir", str(state)],
        env={**os.environ, "NO_COLOR": "1"},
        timeout=90,
        encoding="utf-8",
    )
    session.expect("console password")
    session.sendline(PASSWORD)
    session.expect(pexpect.EOF)
    out = session.before or ""
    session.close()
    assert session.exitstatus == 0, out
    (journal,) = state.rglob("events.jsonl")
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    attempts = [e for e in events if e["type"] == "step.attempt"]
    assert attempts and attempts[-1]["data"]["stdout"] == "on-the-42\n", attempts
    started = [e["data"]["path"] for e in events if e["type"] == "step.started"]
    assert started == ["console"]
    assert PASSWORD not in journal.read_text() and PASSWORD not in out

    # Without it (and no password_env), the same run stops on a clear error.
    refused = subprocess.run(
        ["drp", *argv, "--state-dir", str(tmp_path / "state2")],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
    )
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "--ask-console-pass" in refused.stdout + refused.stderr


# -- the engine: which steps may use the console, and the journal says which path -------


class ConsoleFake(FakeTransport):
    def connect(self) -> ConnectInfo:
        super().connect()
        return ConnectInfo(self.name, "unix:/run/console.sock", 0, via_console=True)


PATHS_BOOK = """\
name: t
targets: all
console: true
steps:
  - {id: a, run: do-a}
  - {id: l, local: plug-the-cable}
  - {id: b, run: do-b}
  - {id: c, run: do-c, console: false}
"""


def run_paths(
    tmp_path: Path, ssh: FakeTransport, console: FakeTransport, local: FakeTransport | None = None
) -> list[Event]:
    book = tmp_path / "book.yaml"
    book.write_text(PATHS_BOOK)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  h1: {address: 192.0.2.1, user: root}\n")
    runbook = load_runbook(book)
    inv = load_inventory(inventory)
    plan = build_plan(runbook, inv, resolve_params(runbook, {}, inv))
    events: list[Event] = []
    Executor(
        plan,
        RunOptions(run_id="20260101-000000-t-0000", operator="tester", lock=False),
        emit=events.append,
        operator=NoOperator(),
        transports=lambda host: PathTransport(ssh, console),
        local=local or FakeTransport("local"),
    ).execute()
    return events


def paths_of(events: list[Event]) -> dict[str, str]:
    return {e.step or "": e.data["path"] for e in events if e.type is EventType.STEP_STARTED}


def test_steps_use_the_console_only_when_allowed(tmp_path: Path) -> None:
    ssh, console = FakeTransport("h1", unreachable=True), ConsoleFake("h1")
    events = run_paths(tmp_path, ssh, console)
    assert paths_of(events) == {"a": "console", "l": "local", "b": "console", "c": "unreachable"}
    assert console.ran("^do-") == ["do-a", "do-b"]
    connected = [e for e in events if e.type is EventType.HOST_CONNECTED]
    assert connected[0].data["via_console"] is True
    finished = {e.step: e.outcome for e in events if e.type is EventType.STEP_FINISHED}
    assert finished == {"a": "ok", "l": "ok", "b": "ok", "c": "unreachable"}


def test_back_to_ssh_as_soon_as_it_answers(tmp_path: Path) -> None:
    ssh, console = FakeTransport("h1", unreachable=True), ConsoleFake("h1")

    class Cable(FakeTransport):
        def run(self, command: str, **kwargs: Any) -> CommandResult:
            ssh.unreachable = False  # the local step plugs the cable back
            return super().run(command, **kwargs)

    events = run_paths(tmp_path, ssh, console, Cable("local"))
    assert paths_of(events) == {"a": "console", "l": "local", "b": "ssh", "c": "ssh"}
    assert console.ran("^do-") == ["do-a"] and ssh.ran("^do-") == ["do-b", "do-c"]


@pytest.mark.skipif(shutil.which("sudo") is None, reason="needs sudo")
def test_become_through_sudo_over_the_console(console: ConsoleTransport) -> None:
    """A sudo-wrapped line (password on stdin, then the command's stdin) runs as over SSH."""
    line, stdin = wrap_become("id -un; cat", Become("root"), "the-sudo-Pw", stdin="given\n")
    result = console.run(line, stdin=stdin)
    assert result.exit_code == 0
    assert result.stdout == "root\ngiven\n"
    assert "the-sudo-Pw" not in result.stdout + result.stderr
