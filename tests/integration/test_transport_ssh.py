"""SshTransport against a real OpenSSH sshd on loopback (fixture in tests/sshd.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest
import yaml
from sshd import SshServer, process_gone

from drp.errors import Cancelled, CommandTimeout, ConnectError, HostKeyError, InventoryError
from drp.inventory.loader import load_inventory
from drp.inventory.model import Address, Become
from drp.results import CommandResult
from drp.transport.command import SudoLine, take_pid_marker, wrap_become
from drp.transport.hostkeys import fingerprint, record_host_key, scan_host_key
from drp.transport.kill import Orphan as _Orphan
from drp.transport.ssh import SshTransport

pytestmark = pytest.mark.integration


def _wait_until(predicate: object, seconds: float = 10.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def _read_pid(path: Path, seconds: float = 10.0) -> int:
    assert _wait_until(lambda: path.exists() and path.read_text().strip(), seconds)
    return int(path.read_text().strip())


@pytest.fixture
def ssh(sshd: SshServer) -> Iterator[SshTransport]:
    transport = SshTransport(sshd.host())
    yield transport
    transport.close()


# -- running commands -------------------------------------------------------------------


def test_run_returns_stdout_stderr_and_exit_code(ssh: SshTransport) -> None:
    result = ssh.run("echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    assert result.host == "h1" and result.command.startswith("echo out")
    assert result.started.tzinfo is not None and result.duration > 0
    assert not result.ok


def test_pid_marker_is_not_in_stderr(ssh: SshTransport) -> None:
    result = ssh.run("echo only >&2")
    assert result.stderr == "only\n"
    assert "drp-pid" not in result.stderr


def test_fifty_commands_share_one_connection(sshd: SshServer, ssh: SshTransport) -> None:
    before = sshd.accepted_logins()
    ssh.connect()
    transport = ssh._transport()
    for index in range(50):
        assert ssh.run(f"echo {index}").stdout == f"{index}\n"
    assert ssh._transport() is transport
    assert ssh.connect().address == "127.0.0.1"  # idempotent: no new login
    assert sshd.accepted_logins() - before == 1


def test_the_socket_notices_a_dead_link(ssh: SshTransport) -> None:
    """No Nagle delay, quick ACKs, TCP keepalives, a dead link dropped after DEAD_LINK_SECONDS."""
    import socket

    from drp.transport.sockets import DEAD_LINK_SECONDS, QuickAckSocket

    ssh.connect()
    sock = ssh._transport().sock
    assert isinstance(sock, socket.socket)
    if hasattr(socket, "TCP_QUICKACK"):
        assert isinstance(sock, QuickAckSocket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    user_timeout = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
    assert user_timeout == DEAD_LINK_SECONDS * 1000


def test_stdin_is_delivered(ssh: SshTransport) -> None:
    assert ssh.run("cat", stdin="line one\nline two\n").stdout == "line one\nline two\n"
    big = "x" * 300_000 + "\n"
    assert ssh.run("wc -c", stdin=big).stdout.strip() == str(len(big))


def test_commands_without_stdin_see_eof(ssh: SshTransport) -> None:
    assert ssh.run("cat; echo done", timeout=10).stdout == "done\n"


def test_on_output_gets_lines_in_order(ssh: SshTransport) -> None:
    seen: list[str] = []
    result = ssh.run(
        "for i in 1 2 3; do echo line$i; sleep 0.05; done; printf tail", on_output=seen.append
    )
    assert seen == ["line1", "line2", "line3", "tail"]
    assert result.stdout == "line1\nline2\nline3\ntail"


def test_output_is_decoded_with_replacement(ssh: SshTransport) -> None:
    assert ssh.run(r"printf 'caf\303\251 \377\n'").stdout == "café \ufffd\n"


def test_shell_metacharacters_arrive_literally(ssh: SshTransport, tmp_path: Path) -> None:
    victim = f"/tmp/pwned-{uuid.uuid4().hex}"
    value = f"a'b\"c $(id) `id` ; touch {victim} && echo *"
    result = ssh.run(f"printf %s {shlex.quote(value)}")
    assert result.stdout == value
    assert not Path(victim).exists()


def test_timeout_kills_the_process_group_on_the_host(ssh: SshTransport, tmp_path: Path) -> None:
    pidfile = tmp_path / "sleep.pid"
    child = tmp_path / "child.pid"
    command = f"sleep 300 & echo $! > {child}; sh -c 'echo $$ > {pidfile}; exec sleep 300'"
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"1s.*sleep 300"):
        ssh.run(command, timeout=1)
    assert time.monotonic() - started < 8
    for pid in (_read_pid(pidfile), _read_pid(child)):
        assert _wait_until(lambda pid=pid: process_gone(pid)), f"pid {pid} survived"
    assert ssh.run("echo still usable").stdout == "still usable\n"


def test_timeout_escalates_to_kill_when_term_is_ignored(ssh: SshTransport, tmp_path: Path) -> None:
    pidfile = tmp_path / "stubborn.pid"
    command = f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.1; done"
    with pytest.raises(CommandTimeout):
        ssh.run(command, timeout=1)
    pid = _read_pid(pidfile)
    assert _wait_until(lambda: process_gone(pid))


def test_exit_by_signal_gives_minus_one(ssh: SshTransport) -> None:
    assert ssh.run("kill -KILL $$").exit_code == -1


def test_cancel_from_another_thread(ssh: SshTransport, tmp_path: Path) -> None:
    pidfile = tmp_path / "cancel.pid"
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            ssh.run(f"sh -c 'echo $$ > {pidfile}; exec sleep 300'")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    pid = _read_pid(pidfile)
    ssh.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    assert _wait_until(lambda: process_gone(pid))
    assert ssh.run("echo after").stdout == "after\n"


# -- connection failures ------------------------------------------------------------------


def test_dropped_connection_raises_connect_error_then_reconnects(sshd_fresh: SshServer) -> None:
    sshd = sshd_fresh
    transport = SshTransport(sshd.host())
    try:
        transport.connect()
        outcome: list[BaseException] = []

        def runner() -> None:
            try:
                transport.run("sleep 5")
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=runner)
        thread.start()
        # the remote shell has reported its PID: the command runs on the host
        assert _wait_until(lambda: any(r.pid for r in list(transport._runs.values())))
        assert sshd.kill_sessions() >= 1
        thread.join(10)
        assert len(outcome) == 1 and type(outcome[0]) is ConnectError, outcome
        with pytest.raises(ConnectError):
            transport._transport()  # marked closed
        assert transport.connect().address == "127.0.0.1"
        assert transport.run("echo back").stdout == "back\n"
    finally:
        transport.close()


def test_idle_connection_that_died_is_reopened_without_an_error(sshd_fresh: SshServer) -> None:
    sshd = sshd_fresh
    transport = SshTransport(sshd.host())
    try:
        assert transport.run("echo one").stdout == "one\n"
        before = sshd.accepted_logins()
        assert sshd.kill_sessions() >= 1  # the link dies while nothing runs
        assert transport.run("echo two").stdout == "two\n"  # no ConnectError: it never left
        assert sshd.accepted_logins() == before + 1
    finally:
        transport.close()


def test_connect_refused_everywhere_lists_each_address(sshd: SshServer) -> None:
    host = sshd.host(address="127.0.0.9", fallback=(Address("127.0.0.8", sshd.port),))
    with pytest.raises(ConnectError) as caught:
        SshTransport(host).connect()
    message = str(caught.value)
    assert "127.0.0.9" in message and "127.0.0.8" in message
    assert not isinstance(caught.value, HostKeyError)


def test_unreachable_primary_uses_fallback(sshd: SshServer) -> None:
    host = sshd.host(address="127.0.0.9", fallback=(Address("127.0.0.2", sshd.port),))
    transport = SshTransport(host)
    try:
        info = transport.connect()
        assert info.via_fallback and info.address == "127.0.0.2" and info.port == sshd.port
        assert transport.run("echo via-fallback").stdout == "via-fallback\n"
    finally:
        transport.close()


def test_unknown_host_key_is_refused_with_fingerprint_and_fix(
    sshd: SshServer, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError) as caught:
        SshTransport(sshd.host("db1", known_hosts=str(empty))).connect()
    message = str(caught.value)
    expected = fingerprint(sshd.host_public_key.split()[1])
    assert "db1" in message and "ssh-ed25519" in message and expected in message
    assert "drp inventory trust db1" in message
    assert empty.read_text() == ""  # never auto-added


def test_missing_known_hosts_file_is_an_unknown_key(sshd: SshServer, tmp_path: Path) -> None:
    with pytest.raises(HostKeyError, match="drp inventory trust"):
        SshTransport(sshd.host(known_hosts=str(tmp_path / "absent"))).connect()


def test_changed_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    other = paramiko.Ed25519Key.from_private_key_file(str(sshd.client_key))  # any other key
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {other.get_base64()}\n")
    with pytest.raises(HostKeyError) as caught:
        SshTransport(sshd.host(known_hosts=str(known))).connect()
    message = str(caught.value)
    assert "CHANGED" in message
    assert fingerprint(other.get_base64()) in message
    assert fingerprint(sshd.host_public_key.split()[1]) in message


def test_known_hosts_edited_during_a_run_is_read_again(sshd: SshServer, tmp_path: Path) -> None:
    """The parsed file is shared between connections, but never outlives an edit."""
    other = paramiko.Ed25519Key.from_private_key_file(str(sshd.client_key))
    name = f"[127.0.0.1]:{sshd.port}"
    right = f"{name} {sshd.host_public_key}\n"
    wrong = f"{name} ssh-ed25519 {other.get_base64()}\n"
    assert len(right) == len(wrong)  # an edit in place that keeps the size
    known = tmp_path / "known_hosts"
    host = sshd.host(known_hosts=str(known))
    for content, trusted in ((right, True), (wrong, False), (right, True)):
        known.write_text(content)
        transport = SshTransport(host)
        try:
            if trusted:
                transport.connect()
            else:
                with pytest.raises(HostKeyError, match="CHANGED"):
                    transport.connect()
        finally:
            transport.close()


def test_unreadable_known_hosts_is_a_host_key_error(sshd: SshServer, tmp_path: Path) -> None:
    with pytest.raises(HostKeyError, match="cannot read"):
        SshTransport(sshd.host(known_hosts=str(tmp_path))).connect()  # a directory


def test_host_key_error_does_not_fall_back(sshd: SshServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.2]:{sshd.port} {sshd.host_public_key}\n")  # only the fallback
    host = sshd.host(known_hosts=str(known), fallback=(Address("127.0.0.2", sshd.port),))
    with pytest.raises(HostKeyError):
        SshTransport(host).connect()


def test_authentication_failure_is_a_connect_error(sshd: SshServer, tmp_path: Path) -> None:
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with pytest.raises(ConnectError, match="authentication failed"):
        SshTransport(sshd.host(key=str(key))).connect()


def test_jump_host(sshd: SshServer) -> None:
    bastion = sshd.host("bastion", "127.0.0.3")
    transport = SshTransport(sshd.host("db1", "127.0.0.1", jump=bastion))
    try:
        info = transport.connect()
        assert info.via_jump == "bastion" and info.address == "127.0.0.1"
        result = transport.run("echo $SSH_CONNECTION")
        assert result.stdout.split()[0] == "127.0.0.1"  # arrived from the bastion's sshd
        assert transport.run("echo again").stdout == "again\n"
    finally:
        transport.close()


def test_jump_host_with_unreachable_primary_uses_fallback(sshd: SshServer) -> None:
    bastion = sshd.host("bastion", "127.0.0.3")
    host = sshd.host("db1", "127.0.0.9", jump=bastion, fallback=(Address("127.0.0.2", sshd.port),))
    transport = SshTransport(host)
    try:
        info = transport.connect()
        assert info.via_fallback and info.via_jump == "bastion" and info.address == "127.0.0.2"
    finally:
        transport.close()


def test_unreachable_jump_host_is_a_connect_error_for_the_target(sshd: SshServer) -> None:
    bastion = sshd.host("bastion", "127.0.0.9")
    with pytest.raises(ConnectError) as caught:
        SshTransport(sshd.host("db1", jump=bastion)).connect()
    assert caught.value.host == "db1"
    assert "jump host bastion" in str(caught.value)
    assert not isinstance(caught.value, HostKeyError)


def test_unknown_jump_host_key_names_the_bastion(sshd: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    bastion = sshd.host("bastion", "127.0.0.3", known_hosts=str(empty))
    with pytest.raises(HostKeyError, match="drp inventory trust bastion"):
        SshTransport(sshd.host("db1", jump=bastion)).connect()


def test_inventory_written_by_the_fixture_connects(sshd: SshServer, tmp_path: Path) -> None:
    path = sshd.write_inventory(tmp_path / "inventory.yaml", {"web1": "127.0.0.2"}, {"env": "t"})
    host = load_inventory(path).get("web1")
    assert host.vars["env"] == "t"
    transport = SshTransport(host)
    try:
        assert transport.run("echo ok").stdout == "ok\n"
    finally:
        transport.close()


# -- files --------------------------------------------------------------------------------


def test_put_is_atomic_with_mode_and_get_round_trips(ssh: SshTransport, tmp_path: Path) -> None:
    dest = tmp_path / "conf" / "app.conf"
    dest.parent.mkdir()
    dest.write_text("old\n")
    payload = bytes(range(256)) * 1000
    ssh.put(payload, str(dest), mode=0o640)
    assert dest.read_bytes() == payload
    assert dest.stat().st_mode & 0o7777 == 0o640
    assert list(dest.parent.iterdir()) == [dest]  # no temp file left behind
    assert ssh.get(str(dest)) == payload


def test_put_keeps_existing_mode_when_none_given(ssh: SshTransport, tmp_path: Path) -> None:
    dest = tmp_path / "script.sh"
    dest.write_text("#!/bin/sh\n")
    dest.chmod(0o750)
    ssh.put(b"#!/bin/sh\necho hi\n", str(dest))
    assert dest.stat().st_mode & 0o7777 == 0o750
    assert ssh.run(str(dest)).stdout == "hi\n"


def test_put_replaces_without_a_partial_file_visible(ssh: SshTransport, tmp_path: Path) -> None:
    dest = tmp_path / "watched"
    dest.write_bytes(b"A" * 1_000_000)
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(len(dest.read_bytes()))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            ssh.put(b"B" * 2_000_000, str(dest))
            ssh.put(b"A" * 1_000_000, str(dest))
    finally:
        stop.set()
        watcher.join()
    assert seen <= {1_000_000, 2_000_000}


def test_put_into_missing_directory_fails_cleanly(ssh: SshTransport, tmp_path: Path) -> None:
    from drp.errors import StepFailed

    with pytest.raises(StepFailed, match="put"):
        ssh.put(b"x", str(tmp_path / "no" / "such" / "file"))
    with pytest.raises(StepFailed, match="get"):
        ssh.get(str(tmp_path / "absent"))


def test_close_is_idempotent_and_connect_reopens(sshd: SshServer) -> None:
    transport = SshTransport(sshd.host())
    transport.close()
    transport.connect()
    transport.close()
    transport.close()
    assert transport.run("echo reopened").stdout == "reopened\n"
    transport.close()


# -- host keys --------------------------------------------------------------------------


def test_scan_host_key_matches_ssh_keygen(sshd: SshServer) -> None:
    key_type, blob, printed = scan_host_key(sshd.host())
    keygen = subprocess.run(
        ["ssh-keygen", "-lf", f"{sshd.host_key_path}.pub"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert printed == keygen[1]
    assert (key_type, blob) == tuple(sshd.host_public_key.split())


def test_scan_through_jump_host(sshd: SshServer) -> None:
    host = sshd.host("db1", jump=sshd.host("bastion", "127.0.0.3"))
    assert scan_host_key(host)[1] == sshd.host_public_key.split()[1]


def test_recorded_key_lets_transport_connect(sshd: SshServer, tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    host = sshd.host("db1", "127.0.0.2", known_hosts=str(known))
    with pytest.raises(HostKeyError):
        SshTransport(host).connect()
    key_type, blob, _ = scan_host_key(host)
    line = record_host_key(known, host, key_type, blob)
    assert line == f"[127.0.0.2]:{sshd.port} {key_type} {blob}"
    assert known.stat().st_mode & 0o777 == 0o600
    record_host_key(known, host, key_type, blob)  # idempotent
    assert known.read_text().count(blob) == 1
    transport = SshTransport(host)
    try:
        assert transport.run("echo trusted").stdout == "trusted\n"
    finally:
        transport.close()


def test_record_replaces_a_changed_key(sshd: SshServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    other = paramiko.Ed25519Key.from_private_key_file(str(sshd.client_key))
    name = f"[127.0.0.1]:{sshd.port}"
    known.write_text(f"{name},otherhost ssh-ed25519 {other.get_base64()}\nkeep ssh-rsa AAAA\n")
    host = sshd.host(known_hosts=str(known))
    key_type, blob, _ = scan_host_key(host)
    record_host_key(known, host, key_type, blob)
    assert known.read_text().splitlines() == [
        f"otherhost ssh-ed25519 {other.get_base64()}",
        "keep ssh-rsa AAAA",
        f"{name} {key_type} {blob}",
    ]
    SshTransport(host).close()
    transport = SshTransport(host)
    try:
        transport.connect()
    finally:
        transport.close()


def test_record_uses_plain_name_on_port_22(sshd: SshServer, tmp_path: Path) -> None:
    host = dataclasses.replace(sshd.host(), port=22)
    line = record_host_key(tmp_path / "kh", host, "ssh-ed25519", "AAAA")
    assert line == "127.0.0.1 ssh-ed25519 AAAA"


# -- pure helpers ---------------------------------------------------------------------------


def test_pid_marker_round_trip() -> None:
    pid, rest = take_pid_marker(b"before\n\x1edrp-pid:4242\nafter\n")
    assert (pid, rest) == (4242, b"before\nafter\n")
    assert take_pid_marker(b"no marker\n") == (None, b"no marker\n")


def test_wrap_become_with_and_without_password() -> None:
    line, stdin = wrap_become("echo 'hi'", Become(user="postgres"), "s3cret")
    assert "sudo -k -A -u postgres -- /bin/sh -c" in line and "s3cret" not in line
    assert stdin.startswith("s3cret\necho 'hi'\ndrp-end-")  # the command travels on stdin
    line, stdin = wrap_become("id -u", Become(), None)
    assert line.startswith("sudo -n -u root -- /bin/sh -c") and "id -u" not in line
    assert stdin.startswith("id -u\ndrp-end-")
    _, stdin = wrap_become("cat", Become(), "pw", stdin="data\n")
    assert stdin.startswith("pw\ncat\ndrp-end-") and stdin.endswith("\ndata\n")


def _needs_sudo(ssh: SshTransport) -> None:
    if ssh.run("command -v sudo").exit_code != 0:
        pytest.skip("sudo is not installed on this host")


def test_wrap_become_runs_through_sudo(ssh: SshTransport) -> None:
    _needs_sudo(ssh)
    line, stdin = wrap_become("id -un; cat", Become(user="root"), None, stdin="payload\n")
    result = ssh.run(line, stdin=stdin)
    assert result.stdout == "root\npayload\n", result


def test_become_password_never_reaches_the_command_when_sudo_needs_none(
    ssh: SshTransport,
) -> None:
    """Root (like a NOPASSWD rule) is not asked: the command's stdin is its own, whole."""
    _needs_sudo(ssh)
    line, stdin = wrap_become("id -un; cat", Become(user="root"), "pw-123", stdin="payload\n")
    result = ssh.run(line, stdin=stdin)
    assert result.stdout == "root\npayload\n", result
    assert "pw-123" not in result.stdout + result.stderr


def test_become_password_through_real_sudo(ssh: SshTransport, sudo_user: tuple[str, str]) -> None:
    """As a user that sudo asks: the right password works once, a wrong one fails once."""
    name, password = sudo_user

    def as_user(pw: str) -> CommandResult:
        line, stdin = wrap_become("id -un; cat", Become(user="root"), pw, stdin="payload\n")
        return ssh.run(f"su -l {name} -s /bin/sh -c {shlex.quote(line)}", stdin=stdin)

    ok = as_user(password)
    assert (ok.exit_code, ok.stdout) == (0, "root\npayload\n"), ok
    wrong = as_user("not-" + password)
    assert wrong.exit_code != 0 and "root" not in wrong.stdout, wrong
    assert "1 incorrect password attempt" in wrong.stderr, wrong  # one try, no lockout
    left = ssh.run(f"ls -A ~{name}").stdout
    assert ".drp-askpass" not in left, left  # the helper is gone, run or not


def test_sudo_password_is_masked_in_output(sshd: SshServer) -> None:
    transport = SshTransport(sshd.host(), sudo_password="hunter2")
    try:
        result = transport.run("echo pw=hunter2; echo hunter2 >&2")
        assert "hunter2" not in result.stdout + result.stderr
    finally:
        transport.close()


# -- killing: through sudo for become, "killed" only when confirmed -------------------------


@pytest.fixture(scope="module")
def nopasswd_user() -> Iterator[str]:
    """A local user whose sudo rule needs no password (needs root, like CI)."""
    if os.geteuid() != 0 or shutil.which("sudo") is None or shutil.which("useradd") is None:
        pytest.skip("needs root, sudo and useradd")
    name = "drp-nopasswd-test"
    subprocess.run(["userdel", "--force", "--remove", name], check=False, capture_output=True)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    # a password nobody uses: sshd refuses an account without one (locked) even with a key
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    rule = Path(f"/etc/sudoers.d/{name}")
    rule.write_text(f"{name} ALL=(ALL) NOPASSWD: ALL\n")
    rule.chmod(0o440)
    try:
        yield name
    finally:
        rule.unlink(missing_ok=True)
        subprocess.run(["userdel", "--force", "--remove", name], check=False, capture_output=True)


def _authorize(sshd: SshServer, user: str) -> None:
    """Let ``user`` log in with this sshd's client key (sshd reads ~/.ssh as the user)."""
    ssh_dir = Path(pwd.getpwnam(user).pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(Path(f"{sshd.client_key}.pub").read_text())
    for path in (ssh_dir, keys):
        shutil.chown(path, user, user)


def _owner(pid: int) -> int:
    return Path(f"/proc/{pid}").stat().st_uid


def _stubborn(pidfile: Path, child: Path) -> str:
    """A command that ignores TERM and has a child: only KILL, from someone allowed, stops it.

    (sudo relays a TERM the SSH user sends it to the command, so a command that
    obeys TERM would not show whether the kill went through sudo.)
    """
    return (
        f"trap '' TERM; echo $$ > {pidfile}; sleep 300 & echo $! > {child}; "
        "while :; do sleep 0.1; done"
    )


def _kill_leftovers(*pids: int | None) -> None:
    """Test hygiene when an assertion failed: nothing of the test (its group) outlives it."""
    for pid in pids:
        if pid is not None and not process_gone(pid):
            with contextlib.suppress(ProcessLookupError):
                group = os.getpgid(pid)
                if group != os.getpgrp():
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    return thread, errors


def test_timeout_kills_a_become_command_through_sudo(
    sshd: SshServer, nopasswd_user: str, tmp_path: Path
) -> None:
    """The SSH user may not signal root's processes: drp kills them through sudo -n."""
    _authorize(sshd, nopasswd_user)
    pidfile, childfile = tmp_path / "root.pid", tmp_path / "child.pid"
    line, stdin = wrap_become(_stubborn(pidfile, childfile), Become(), None)
    assert isinstance(line, SudoLine) and line.become == Become()
    transport = SshTransport(sshd.host(user=nopasswd_user))
    pids: list[int] = []
    try:
        thread, errors = _in_thread(lambda: transport.run(line, timeout=2, stdin=stdin))
        pids = [_read_pid(pidfile), _read_pid(childfile)]
        assert [_owner(pid) for pid in pids] == [0, 0]
        thread.join(20)
        assert len(errors) == 1 and isinstance(errors[0], CommandTimeout), errors
        assert re.search(r"timed out after 2s and was killed: sudo -n", str(errors[0]))
        gone = [process_gone(pid) for pid in pids]  # confirmed before run() returned
        assert gone == [True, True], f"root's {pids} survived"
        assert transport.run("id -un").stdout == f"{nopasswd_user}\n"
    finally:
        transport.close()
        _kill_leftovers(*pids)


def test_cancel_kills_a_become_command_through_sudo_with_its_password(
    sshd: SshServer, sudo_user: tuple[str, str], tmp_path: Path
) -> None:
    """sudo asks this user for a password: the kill goes through sudo with it, like the command."""
    name, password = sudo_user
    _authorize(sshd, name)
    pidfile, childfile = tmp_path / "root.pid", tmp_path / "child.pid"
    line, stdin = wrap_become(_stubborn(pidfile, childfile), Become(), password)
    transport = SshTransport(sshd.host(user=name), sudo_password=password)
    pids: list[int] = []
    try:
        thread, errors = _in_thread(lambda: transport.run(line, stdin=stdin))
        pids = [_read_pid(pidfile), _read_pid(childfile)]
        assert [_owner(pid) for pid in pids] == [0, 0]
        transport.cancel()
        thread.join(20)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], Cancelled), errors
        assert "cancelled; killed:" in str(errors[0]) and password not in str(errors[0])
        assert [process_gone(pid) for pid in pids] == [True, True], f"root's {pids} survived"
        assert ".drp-askpass" not in transport.run(f"ls -A ~{name}").stdout
    finally:
        transport.close()
        _kill_leftovers(*pids)


def test_a_kill_that_cannot_be_confirmed_is_not_reported_as_one(
    sshd: SshServer, nopasswd_user: str, tmp_path: Path
) -> None:
    """sudo inside a command drp was not told about: the kill fails, and the error says so."""
    _authorize(sshd, nopasswd_user)
    pidfile, childfile = tmp_path / "root.pid", tmp_path / "child.pid"
    transport = SshTransport(sshd.host(user=nopasswd_user))
    pids: list[int] = []
    try:
        with pytest.raises(CommandTimeout) as caught:
            transport.run(f"sudo -n sh -c {shlex.quote(_stubborn(pidfile, childfile))}", timeout=1)
        message = str(caught.value)
        assert re.search(r"could not confirm the kill of process group \d+ on h1 \(", message)
        assert "it outlived KILL" in message and "was killed" not in message
        pids = [_read_pid(pidfile), _read_pid(childfile)]
        assert not any(process_gone(pid) for pid in pids)  # true: root's command still runs
    finally:
        transport.close()
        _kill_leftovers(*pids)


def test_a_timeout_before_the_pid_arrived_does_not_claim_a_kill(
    ssh: SshTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "silent.pid"
    from drp.transport.attempts import reader

    monkeypatch.setattr(  # a wrapper that never reports the PID
        "drp.transport.ssh_commands.bootstrap",
        lambda run, token, label, user, end, **_: f"exec /bin/sh -c {shlex.quote(reader(end))}",
    )
    pid = None
    try:
        with pytest.raises(CommandTimeout) as caught:
            ssh.run(f"echo $$ > {pidfile}; exec sleep 300", timeout=0.5)
        assert "could not kill it on h1: its process id never arrived" in str(caught.value)
        assert "was killed" not in str(caught.value)
        pid = _read_pid(pidfile)
    finally:
        _kill_leftovers(pid)


# -- what a lost connection left running ----------------------------------------------------


def _pid_arrived(transport: SshTransport) -> bool:
    """The remote shell's PID line reached the transport (it can only kill what it knows)."""
    return any(run.pid for run in list(transport._runs.values()))


def _live(*pids: int) -> str:
    """A command printing which of ``pids`` still run on the host (zombies do not count)."""
    return "; ".join(
        f's=$(ps -o stat= -p {pid}); case "$s" in ""|Z*) ;; *) echo {pid};; esac' for pid in pids
    )


def test_a_command_left_running_by_a_lost_connection_is_killed_on_reconnect(
    sshd_fresh: SshServer, tmp_path: Path
) -> None:
    sshd = sshd_fresh
    leader, child = tmp_path / "leader.pid", tmp_path / "child.pid"
    transport = SshTransport(sshd.host())
    pids: list[int] = []
    try:
        thread, errors = _in_thread(
            lambda: transport.run(f"echo $$ > {leader}; sleep 300 & echo $! > {child}; wait")
        )
        pids = [_read_pid(leader), _read_pid(child)]
        assert _wait_until(lambda: _pid_arrived(transport))
        assert sshd.kill_sessions() >= 1
        thread.join(10)
        assert len(errors) == 1 and type(errors[0]) is ConnectError, errors
        assert f"process group {pids[0]} may still run" in str(errors[0])
        assert not any(process_gone(pid) for pid in pids)  # the first attempt runs on
        result = transport.run(_live(*pids))
        assert result.stdout == ""  # gone before the next command started
        assert result.stderr.startswith(
            f"drp: killed process group {pids[0]} on h1, left running by a lost connection: "
            "echo $$ > "
        ), result.stderr
        assert transport.run("echo again").stderr == ""  # reported once
    finally:
        transport.close()
        _kill_leftovers(*pids)


def test_a_become_command_left_running_is_killed_through_sudo_on_reconnect(
    sshd_fresh: SshServer, nopasswd_user: str, tmp_path: Path
) -> None:
    sshd = sshd_fresh
    _authorize(sshd, nopasswd_user)
    pidfile, childfile = tmp_path / "root.pid", tmp_path / "child.pid"
    line, stdin = wrap_become(_stubborn(pidfile, childfile), Become(), None)
    transport = SshTransport(sshd.host(user=nopasswd_user))
    pids: list[int] = []
    try:
        thread, errors = _in_thread(lambda: transport.run(line, stdin=stdin))
        pids = [_read_pid(pidfile), _read_pid(childfile)]
        assert [_owner(pid) for pid in pids] == [0, 0]
        assert _wait_until(lambda: _pid_arrived(transport))
        assert sshd.kill_sessions() >= 1
        thread.join(10)
        assert len(errors) == 1 and type(errors[0]) is ConnectError, errors
        assert not any(process_gone(pid) for pid in pids)
        result = transport.run(_live(*pids))
        assert result.stdout == ""
        assert result.stderr.startswith("drp: killed process group "), result.stderr
    finally:
        transport.close()
        _kill_leftovers(*pids)


def _etime_seconds(pid: int) -> int:
    text = subprocess.run(
        ["ps", "-o", "etime=", "-p", str(pid)], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not text:
        return -1
    *rest, seconds = text.replace("-", ":").split(":")
    return int(seconds) + 60 * int(rest[-1]) if rest else int(seconds)


def test_a_reused_process_group_id_is_left_alone(ssh: SshTransport) -> None:
    """Only a group as old as the lost command is killed: a younger one reused the id."""
    old = subprocess.Popen(["sleep", "300"], start_new_session=True)  # group id = its pid
    since = time.monotonic()
    young = None
    try:
        assert _wait_until(lambda: _etime_seconds(old.pid) >= 3, 10)
        young = subprocess.Popen(["sleep", "300"], start_new_session=True)
        for pid in (old.pid, young.pid):
            ssh._orphans.append(_Orphan(pid, since, f"lost command {pid}"))
        result = ssh.run("echo next")
        assert result.stdout == "next\n"
        assert f"drp: killed process group {old.pid} on h1" in result.stderr, result.stderr
        assert (
            f"drp: process group {young.pid} on h1, left running by a lost connection, "
            f"had already ended: lost command {young.pid}"
        ) in result.stderr
        assert old.wait(5) is not None  # killed
        assert young.poll() is None  # never touched
    finally:
        for process in (old, young):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_an_orphan_drp_cannot_kill_keeps_it_from_running_anything(
    sshd: SshServer, nopasswd_user: str
) -> None:
    """A group the SSH user may not signal (drp did not know it ran through sudo): stop."""
    _authorize(sshd, nopasswd_user)
    root_owned = subprocess.Popen(["sleep", "300"], start_new_session=True)
    marker = Path(f"/tmp/drp-test-{uuid.uuid4().hex}")
    transport = SshTransport(sshd.host(user=nopasswd_user))
    try:
        transport._orphans.append(_Orphan(root_owned.pid, time.monotonic(), "sudo the-first-try"))
        with pytest.raises(ConnectError) as caught:
            transport.run(f"touch {marker}")
        message = str(caught.value)
        assert "could not confirm the kill of what a lost connection left running" in message
        assert f"process group {root_owned.pid} on h1" in message and "not permitted" in message
        assert not marker.exists()  # the second copy never started
        assert root_owned.poll() is None
        root_owned.kill()
        root_owned.wait()
        result = transport.run(f"touch {marker}")  # tried again: now it is gone
        assert marker.exists()
        assert "had already ended: sudo the-first-try" in result.stderr
    finally:
        transport.close()
        marker.unlink(missing_ok=True)
        if root_owned.poll() is None:
            root_owned.kill()
            root_owned.wait()


# -- fallback addresses with their own jump host (or none) ----------------------------------


def _fallback_inventory(sshd: SshServer, path: Path, fallback: list[object]) -> Path:
    """db1 behind a dead bastion (127.0.0.9), with ``fallback`` entries; bastion2 is alive."""
    entry = {
        "port": sshd.port,
        "user": "root",
        "key": str(sshd.client_key),
        "known_hosts": str(sshd.known_hosts),
        "connect_timeout": "5s",
    }
    document = {
        "hosts": {
            "bastion": {"address": "127.0.0.9", **entry},
            "bastion2": {"address": "127.0.0.3", **entry},
            "db1": {"address": "127.0.0.1", "jump": "bastion", "fallback": fallback, **entry},
        }
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_fallback_with_jump_none_connects_directly_when_the_bastion_is_dead(
    sshd: SshServer, tmp_path: Path
) -> None:
    path = _fallback_inventory(
        sshd,
        tmp_path / "inventory.yaml",
        [f"127.0.0.8:{sshd.port}", {"address": f"127.0.0.2:{sshd.port}", "jump": "none"}],
    )
    host = load_inventory(path).get("db1")
    inherited, direct = host.fallback
    assert host.jump_for(inherited) == host.jump and not inherited.direct  # the plain form
    assert direct.direct and host.jump_for(direct) is None
    before = sshd.accepted_logins()
    transport = SshTransport(host)
    try:
        info = transport.connect()
        assert (info.address, info.via_fallback, info.via_jump) == ("127.0.0.2", True, None)
        assert transport.run("echo direct").stdout == "direct\n"
        assert sshd.accepted_logins() - before == 1  # no bastion login on the way
    finally:
        transport.close()


def test_fallback_with_its_own_jump_host(sshd: SshServer, tmp_path: Path) -> None:
    path = _fallback_inventory(
        sshd, tmp_path / "inventory.yaml", [{"address": "127.0.0.2", "jump": "bastion2"}]
    )
    host = load_inventory(path).get("db1")
    assert host.jump_for(host.fallback[0]).name == "bastion2"
    assert host.fallback[0].port == sshd.port  # the host's port, as for the plain form
    before = sshd.accepted_logins()
    transport = SshTransport(host)
    try:
        info = transport.connect()
        assert (info.address, info.via_fallback, info.via_jump) == ("127.0.0.2", True, "bastion2")
        assert transport.run("echo $SSH_CONNECTION").stdout.split()[2] == "127.0.0.2"
        assert sshd.accepted_logins() - before == 2  # bastion2, then db1 through it
    finally:
        transport.close()


def test_every_path_failing_names_each_way_in(sshd: SshServer, tmp_path: Path) -> None:
    path = _fallback_inventory(
        sshd, tmp_path / "inventory.yaml", [{"address": "127.0.0.8", "jump": "none"}]
    )
    with pytest.raises(ConnectError) as caught:
        SshTransport(load_inventory(path).get("db1")).connect()
    message = str(caught.value)
    assert "127.0.0.1" in message and "jump host bastion" in message
    assert f"127.0.0.8:{sshd.port} direct (" in message
    assert "unreachable via jump host" not in message  # not every path went through it


def test_fallback_jump_problems_are_located(sshd: SshServer, tmp_path: Path) -> None:
    path = _fallback_inventory(
        sshd,
        tmp_path / "inventory.yaml",
        [{"address": "127.0.0.2", "jump": "db1"}, {"adress": "127.0.0.2"}, 5],
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    text = str(caught.value)
    assert "hosts.db1.fallback[1].adress: unknown key 'adress' (did you mean 'address'?)" in text
    assert "hosts.db1.fallback[2]: a fallback is 'addr', 'addr:port' or {address" in text
    assert "valid string" not in text  # a mapping is not also reported as a bad string
    path = _fallback_inventory(
        sshd, tmp_path / "inventory.yaml", [{"address": "127.0.0.2", "jump": "db1"}]
    )
    with pytest.raises(InventoryError, match=r"hosts\.db1\.fallback\[0\]\.jump: jump host cycle"):
        load_inventory(path)


def test_a_session_reuses_one_marker_and_its_last_command_clears_them(sshd: SshServer) -> None:
    run_id = f"markers-{uuid.uuid4().hex[:12]}"
    transport = SshTransport(sshd.host(), run_id=run_id)
    try:
        where = transport.run("echo $HOME").stdout.strip()
        markers = Path(where) / ".drp" / "attempts" / run_id
        for _ in range(3):
            assert transport.run("true").ok
        # the commands that ended left one empty marker between them, not one each
        assert [p.stat().st_size for p in markers.iterdir()] == [0]
        assert transport.run("true", last=True).ok
        assert not markers.exists()  # nothing of this run is left in ~/.drp/attempts
    finally:
        transport.close()


def test_a_login_shell_that_is_bin_sh_runs_the_wrapper_itself(
    sshd: SshServer, sudo_user: tuple[str, str], ssh: SshTransport
) -> None:
    name, _ = sudo_user  # its login shell is /bin/sh; root's (the `ssh` fixture) is not
    _authorize(sshd, name)
    transport = SshTransport(sshd.host(user=name), run_id=f"direct-{uuid.uuid4().hex[:8]}")
    pidfile = Path(pwd.getpwnam(name).pw_dir) / f"direct-{uuid.uuid4().hex[:8]}.pid"
    try:
        # $0 names the shell running the wrapper: /bin/sh started by `exec /bin/sh -c` while
        # the login shell is unknown, then sshd's own `sh -c`: no second shell per command
        assert transport.run("echo $0").stdout == "/bin/sh\n"
        second = transport.run("echo $0; cat; exit 4", stdin="piped\n")
        assert (second.stdout, second.stderr, second.exit_code) == ("sh\npiped\n", "", 4)
        with pytest.raises(CommandTimeout):  # and it is still killed on timeout
            transport.run(f"echo $$ > {pidfile}; exec sleep 300", timeout=1)
        assert process_gone(_read_pid(pidfile))
        assert [ssh.run("echo $0").stdout, ssh.run("echo $0").stdout] == ["/bin/sh\n"] * 2
    finally:
        transport.close()
        pidfile.unlink(missing_ok=True)
