"""The console transport against a real serial console: the lab guest's QEMU serial port.

One guest for the whole module (a boot costs ~45 s, minutes under load): the
tests share it and leave it as they found it (logged out, at a login prompt).
The lab's own console reader is released first: a QEMU socket serves one
client at a time, as a console server does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from drp_cli import RUNBOOKS
from drplab import Guest, LabImage
from drplab.breaks import GOOD_INTERFACES, break_network

from drp.errors import AuthError, CommandTimeout
from drp.inventory import Host, load_inventory
from drp.transport.console import ConsoleTransport

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

PASSWORD_ENV = "DRP_LAB_CONSOLE_PASSWORD"
ON_TTY = "ps -o tty= -p $$"  # the controlling terminal: ttyS0 on the console, ? over SSH


def release_console(guest: Guest) -> None:
    """Close the lab's own reader of the console socket so drp can connect to it."""
    reader = guest._console  # the lab keeps no public way to let go of it
    if reader is not None:
        reader.close()
        guest._console = None


def console_inventory(guest: Guest, path: Path, *, connect_timeout: float = 5) -> Path:
    """The lab inventory with a ``console:`` on the guest's serial socket, and no other path.

    The lab's inventory also reaches the guest through its management port (eth1,
    a ``fallback:``); ``set_link(False)`` unplugs eth0 only. These tests prove the
    console as the last path left, so the fallback goes.
    """
    guest.write_inventory(path, host="lab1")
    data = yaml.safe_load(path.read_text())
    data["hosts"]["lab1"].pop("fallback", None)
    data["hosts"]["lab1"]["connect_timeout"] = connect_timeout
    data["hosts"]["lab1"]["console"] = {
        "socket": f"unix:{guest.console_socket}",
        "user": "root",
        "password_env": PASSWORD_ENV,
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def guest(lab_image: LabImage) -> Iterator[Guest]:
    g = Guest(lab_image, name="i14console")
    try:
        g.start()
        release_console(g)
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="module")
def host(guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Host:
    path = console_inventory(guest, tmp_path_factory.mktemp("inv") / "inventory.yaml")
    return load_inventory(path).get("lab1")


@pytest.fixture(scope="module")
def transcript() -> io.BytesIO:
    return io.BytesIO()


@pytest.fixture(scope="module")
def console(host: Host, transcript: io.BytesIO) -> Iterator[ConsoleTransport]:
    transport = ConsoleTransport(host, password=guest_password(), transcript=transcript)
    try:
        yield transport
    finally:
        transport.close()


def guest_password() -> str:
    return "drplab"  # the lab image's root password on the serial console (lab/README.md)


def test_login_and_exit_codes(console: ConsoleTransport) -> None:
    info = console.connect()
    assert info.via_console and info.address.startswith("unix:")
    ok = console.run("echo hello; echo oops >&2")
    assert (ok.exit_code, ok.stdout, ok.stderr) == (0, "hello\n", "oops\n")
    assert console.run("false").exit_code == 1
    missing = console.run("no-such-command-drp")
    assert missing.exit_code == 127
    assert "not found" in missing.stderr
    assert console.run("id -un").stdout == "root\n"
    assert console.run("exit 42").exit_code == 42


def test_output_holding_marker_text_crlf_and_ansi(console: ConsoleTransport) -> None:
    tricky = (
        "drp0123456789abcdef01234567:done:0\n"
        "drp0123456789abcdef01234567:0:aGVsbG8=:" + "0" * 64 + "\n"
        "root@host:~# \n"  # (not the hostname drplab: the password, masked like every secret)
        "line with CRLF\r\n"
        "\x1b[1;31mred\x1b[0m\n"
        "[   12.345678] not a kernel message: command output\n"
        "no newline at the end"
    )
    result = console.run(f"printf '%s' {sh_quote(tricky)}")
    assert result.exit_code == 0
    assert result.stdout == tricky


def test_stdin_is_passed(console: ConsoleTransport) -> None:
    result = console.run("tr a-z A-Z", stdin="abc\nxyz\n")
    assert result.stdout == "ABC\nXYZ\n"


def test_one_megabyte_of_output(console: ConsoleTransport) -> None:
    result = console.run("yes 0123456789abcdef | head -c 1048576", timeout=600)
    assert result.exit_code == 0
    assert len(result.stdout) == 1048576
    assert result.stdout == ("0123456789abcdef\n" * 61681)[:1048576]


def test_binary_bytes(console: ConsoleTransport, guest: Guest) -> None:
    every = bytes(range(256)) * 4
    console.put(every, "/root/drp-binary.bin")
    assert console.get("/root/drp-binary.bin") == every
    result = console.run("cat /root/drp-binary.bin; rm /root/drp-binary.bin")
    assert result.exit_code == 0
    assert result.stdout == every.decode("utf-8", errors="replace")  # as SSH decodes it


def test_timeout_sends_ctrl_c_and_the_shell_comes_back(
    console: ConsoleTransport, guest: Guest
) -> None:
    with pytest.raises(CommandTimeout, match="was killed"):
        console.run("sleep 777", timeout=3)
    assert console.run("echo back").stdout == "back\n"
    assert guest.ssh("pgrep -x sleep -a | grep 777").returncode == 1  # nothing left running


def test_kernel_messages_in_the_middle_of_output(
    console: ConsoleTransport, guest: Guest, transcript: io.BytesIO
) -> None:
    start = len(transcript.getvalue())
    stop = threading.Event()
    script = (
        "i=0; while [ $i -lt 400 ]; do i=$((i+1)); "
        'echo "<2>drp-kmsg-$i: noise on the console" > /dev/kmsg; sleep 0.02; done'
    )

    def noise() -> None:
        while not stop.is_set():
            guest.ssh(script, timeout=120)

    thread = threading.Thread(target=noise, daemon=True)
    thread.start()
    try:
        expected = "".join(f"line {n} of the output\n" for n in range(6000))
        loop = 'i=0; while [ $i -lt 6000 ]; do echo "line $i of the output"; i=$((i+1)); done'
        result = console.run(loop, timeout=600)
    finally:
        stop.set()
        thread.join(timeout=180)
    assert result.exit_code == 0
    assert result.stdout == expected
    shown = transcript.getvalue()[start:]
    assert re.search(rb"drp-kmsg-\d+: noise", shown), "no kernel message reached the console"


def test_put_of_100_kb_with_checksum(console: ConsoleTransport, guest: Guest) -> None:
    data = os.urandom(100 * 1024)
    console.put(data, "/root/drp-put.bin", mode=0o600)
    remote = guest.ssh("sha256sum /root/drp-put.bin; stat -c %a /root/drp-put.bin", check=True)
    digest, mode = remote.stdout.split("\n")[0].split()[0], remote.stdout.split("\n")[1]
    assert digest == hashlib.sha256(data).hexdigest()
    assert mode == "600"
    assert guest.ssh("rm /root/drp-put.bin").returncode == 0


def test_wrong_password_is_a_clear_error(host: Host, console: ConsoleTransport) -> None:
    console.close()  # one client at a time on the serial socket
    wrong = ConsoleTransport(host, password="not-the-password")
    with pytest.raises(AuthError, match="refused") as caught:
        wrong.connect()
    assert "not-the-password" not in str(caught.value)
    wrong.close()


def test_console_is_left_at_a_login_prompt(
    host: Host, guest: Guest, console: ConsoleTransport
) -> None:
    console.close()
    transport = ConsoleTransport(host, password=guest_password())
    assert transport.run(ON_TTY).stdout == "ttyS0\n"
    transport.close()
    assert at_login_prompt(guest)


def at_login_prompt(guest: Guest, timeout: float = 60) -> bool:
    """Type Enter on the console: a login prompt answers (not a shell)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(guest.console_socket))
        sock.settimeout(1.0)
        seen = b""
        deadline = time.monotonic() + timeout
        sock.sendall(b"\r")
        while time.monotonic() < deadline:
            try:
                seen += sock.recv(4096)
            except TimeoutError:
                sock.sendall(b"\r")
            if re.search(rb"login: $", seen):
                return b"# " not in seen.split(b"login:")[-1]
            if re.search(rb"[#$] $", seen):
                return False
    return False


def sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# -- drp run: no network at all, steps over the console, then back to SSH -------------

RUNBOOK = """\
name: console-rehearsal
console: true
steps:
  - id: over-console
    run: ps -o tty= -p $$; touch /root/drp-console-step
  - id: cable
    local: "while [ ! -e {flag} ]; do sleep 0.2; done"
  - id: over-ssh
    run: ps -o tty= -p $$
"""


def journal(state: Path) -> list[dict[str, Any]]:
    found = sorted((state / "runs").glob("*/events.jsonl"))
    if not found:
        return []
    lines = found[-1].read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def ssh_down(guest: Guest) -> bool:
    return guest.ssh("true", timeout=30, connect_timeout=3).returncode != 0


def test_drp_run_goes_over_the_console_and_back_to_ssh(
    guest: Guest, host: Host, tmp_path: Path, console: ConsoleTransport
) -> None:
    console.close()  # the module's session logs out: one client on the serial socket
    inventory = console_inventory(guest, tmp_path / "inventory.yaml", connect_timeout=4)
    flag = tmp_path / "cable-back"
    book = tmp_path / "console-rehearsal.yaml"
    book.write_text(RUNBOOK.format(flag=flag))
    state = tmp_path / "state"
    env = {**os.environ, PASSWORD_ENV: guest_password(), "COLUMNS": "200", "NO_COLOR": "1"}
    guest.set_link(False)
    try:
        wait_for("SSH to stop answering", lambda: ssh_down(guest), 120)
        argv = ["drp", "run", str(book), "-i", str(inventory), "-H", "lab1", "--yes"]
        proc = subprocess.Popen(
            [*argv, "--state-dir", str(state)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def console_step_done() -> bool:
            assert proc.poll() is None, proc.communicate()[0]
            return any(
                e["type"] == "step.finished" and e["step"] == "over-console" for e in journal(state)
            )

        wait_for("the console step", console_step_done, 600)
    finally:
        guest.set_link(True)
    guest.wait_ssh(timeout=300)
    flag.touch()
    out, _ = proc.communicate(timeout=600)
    print(out)
    assert proc.returncode == 0, out
    events = journal(state)
    started = {e["step"]: e["data"] for e in events if e["type"] == "step.started"}
    assert started["over-console"]["path"] == "console"
    assert started["over-ssh"]["path"] == "ssh"
    outputs = {
        e["step"]: e["data"]["stdout"]
        for e in events
        if e["type"] == "step.attempt" and e["data"].get("phase") == "action"
    }
    assert outputs["over-console"].strip() == "ttyS0"
    assert outputs["over-ssh"].strip() == "?"
    connected = [e["data"] for e in events if e["type"] == "host.connected"]
    assert connected[0]["via_console"] is True
    assert "serial console" in out and "back over SSH" in out
    assert guest.ssh("test -e /root/drp-console-step && rm /root/drp-console-step").returncode == 0
    assert at_login_prompt(guest)


def test_drp_run_with_a_wrong_console_password(guest: Guest, tmp_path: Path) -> None:
    inventory = console_inventory(guest, tmp_path / "inventory.yaml", connect_timeout=4)
    book = tmp_path / "console-rehearsal.yaml"
    book.write_text(RUNBOOK.format(flag=tmp_path / "never"))
    state = tmp_path / "state"
    env = {**os.environ, PASSWORD_ENV: "not-the-password", "NO_COLOR": "1"}
    guest.set_link(False)
    try:
        wait_for("SSH to stop answering", lambda: ssh_down(guest), 120)
        result = subprocess.run(
            [
                "drp",
                "run",
                str(book),
                "-i",
                str(inventory),
                "-H",
                "lab1",
                "--yes",
                "--state-dir",
                str(state),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        guest.set_link(True)
    print(result.stdout, result.stderr)
    assert result.returncode == 3
    assert "console login refused" in result.stdout + result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    events = journal(state)
    assert not [e for e in events if e["type"] in ("step.started", "step.finished")]
    assert "not-the-password" not in json.dumps(events)
    guest.wait_ssh(timeout=300)
    assert at_login_prompt(guest)


SLOW_BOOK = """\
name: console-kill
console: true
steps:
  - id: first
    run: echo x >> /root/drp-first-runs
  - id: slow
    run: echo x >> /root/drp-slow-runs; sleep 45
"""


def test_kill_9_during_a_console_step_then_resume(guest: Guest, tmp_path: Path) -> None:
    inventory = console_inventory(guest, tmp_path / "inventory.yaml", connect_timeout=4)
    book = tmp_path / "console-kill.yaml"
    book.write_text(SLOW_BOOK)
    state = tmp_path / "state"
    env = {**os.environ, PASSWORD_ENV: guest_password(), "NO_COLOR": "1"}
    common = ["-i", str(inventory), "--state-dir", str(state)]
    said = (tmp_path / "run.out").open("w")
    guest.set_link(False)
    try:
        wait_for("SSH to stop answering", lambda: ssh_down(guest), 120)
        proc = subprocess.Popen(
            ["drp", "run", str(book), "-H", "lab1", "--yes", *common],
            env=env,
            stdout=said,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def slow_started() -> bool:
            assert proc.poll() is None, (tmp_path / "run.out").read_text()
            return any(e["type"] == "step.started" and e["step"] == "slow" for e in journal(state))

        wait_for("the slow step", slow_started, 600)
        began = time.monotonic()  # give the command time to reach the host (no harm if not)
        wait_for("the command to be typed", lambda: time.monotonic() - began > 8, 60)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        said.close()
        run_id = next((state / "runs").iterdir()).name
        resumed = subprocess.run(
            ["drp", "resume", run_id, "--retry-in-doubt", *common],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        guest.set_link(True)
    print(resumed.stdout, resumed.stderr)
    assert resumed.returncode == 0
    events = journal(state)
    slow = [
        e["data"]["path"] for e in events if e["type"] == "step.started" and e["step"] == "slow"
    ]
    assert slow == ["console", "console"]  # started twice: killed, then retried in doubt
    guest.wait_ssh(timeout=300)
    counts = guest.ssh("wc -l < /root/drp-first-runs; wc -l < /root/drp-slow-runs", check=True)
    first, slow_runs = counts.stdout.split()
    assert first == "1"  # done before the kill: not run again
    assert slow_runs in ("1", "2")  # run again (once more if the killed attempt had begun)
    assert guest.ssh("pgrep -f 'sleep 45'").returncode == 1  # nothing left running
    guest.ssh("rm -f /root/drp-first-runs /root/drp-slow-runs")
    assert at_login_prompt(guest)


# -- network-repair with no network path at all: console, then SSH again -----------


def test_network_repair_over_the_console_with_no_network_at_all(
    guest: Guest, console: ConsoleTransport, tmp_path: Path
) -> None:
    """Incident A, step 5: eth0 misconfigured, no management NIC, only the console.

    The known-good configuration goes in over the console with its automatic revert;
    SSH on the primary address comes back and the revert is cancelled over SSH. The
    test checks the machine itself: its own SSH login on the primary port, the live
    configuration, and no revert timer left.
    """
    console.close()  # one client on the serial socket: the module's session logs out
    inventory = console_inventory(guest, tmp_path / "inventory.yaml", connect_timeout=4)
    state = tmp_path / "state"
    env = {**os.environ, PASSWORD_ENV: guest_password(), "NO_COLOR": "1"}
    break_network(guest, "wrong-address")  # through eth1, which is unplugged next
    guest.set_link(False, mgmt=True)
    try:
        assert guest.ssh("true", timeout=20, connect_timeout=4, mgmt=True).returncode != 0
        assert ssh_down(guest)
        result = subprocess.run(
            [
                "drp", "run", str(RUNBOOKS / "network-repair.yaml"), "-i", str(inventory),
                "-H", "lab1", "--yes", "-p", "confirm_within=150s", "-p", "reboot_check=false",
                "--state-dir", str(state),
            ],
            env=env, capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        print(result.stdout, result.stderr)
        assert result.returncode == 0, result.stdout + result.stderr
        # The test's own checks, on the primary port (eth1 is still unplugged).
        live = guest.ssh("cat /etc/network/interfaces", check=True, timeout=30).stdout
        assert live == GOOD_INTERFACES
        timers = guest.ssh("systemctl list-timers --all --no-pager", check=True).stdout
        assert "drp-net-revert-" not in timers, timers
    finally:
        guest.set_link(True, mgmt=True)
        if guest.ssh("true", timeout=20, connect_timeout=4).returncode != 0:  # leave it working
            guest.ssh(
                "cp /etc/network/interfaces.drp-good /etc/network/interfaces; "
                "systemctl restart networking",
                mgmt=True,
                timeout=120,
            )
    events = journal(state)
    paths = {e["step"]: e["data"]["path"] for e in events if e["type"] == "step.started"}
    assert paths["apply-with-revert"] == "console", paths
    assert paths["confirm"] == "ssh", paths
    connected = [e["data"] for e in events if e["type"] == "host.connected"]
    assert connected[0]["via_console"] is True, connected
    assert "serial console" in result.stdout and "back over SSH" in result.stdout
    assert at_login_prompt(guest)
