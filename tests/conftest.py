"""Shared pytest fixtures: a real OpenSSH sshd on loopback (see ``tests/sshd.py``)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer, start_sshd, stop_sshd


def pytest_configure(config: pytest.Config) -> None:
    """Deliver Ctrl-C to the suite and to what it starts, however it was started.

    A shell starts an asynchronous command (``scripts/test &``, ``nohup … &``, the
    lab tier beside the others) with SIGINT ignored, and an ignored signal stays
    ignored across fork and exec: drp, the fake console's shell and its ``sleep``
    would shrug off the Ctrl-C the interruption tests send.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the whole session, listening on 127.0.0.1-3 (user root, key auth)."""
    server, process = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        stop_sshd(process)


@pytest.fixture
def sshd_fresh(tmp_path: Path) -> Iterator[SshServer]:
    """A private sshd for tests that break it (stop the listener, kill every session)."""
    server, process = start_sshd(tmp_path / "sshd")
    try:
        yield server
    finally:
        stop_sshd(process)


SUDO_PREFIX = "drpt"  # test users and their sudoers rules: drpt<pid>x<random>


def _sweep_stale_sudo_users() -> None:
    """Remove users and sudoers rules left by a test session that was killed.

    Each name carries the pid of the pytest that made it; a rule whose pid is
    no longer alive belongs to a dead session (``finally`` never ran).
    """
    for rule in Path("/etc/sudoers.d").glob(f"{SUDO_PREFIX}*"):
        pid = rule.name[len(SUDO_PREFIX) :].partition("x")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            rule.unlink(missing_ok=True)
            subprocess.run(["userdel", "--remove", rule.name], check=False, capture_output=True)


@pytest.fixture(scope="session")
def sudo_user() -> Iterator[tuple[str, str]]:
    """A local user whose sudo rule asks for its password (needs root, like CI).

    It logs in to the test sshd with the same client key as root (one
    AuthorizedKeysFile for every user). The name is unique to this session
    (two test runs on one machine never share it), and the rule and user of a
    killed session are swept away by the next one.
    """
    if os.geteuid() != 0 or shutil.which("sudo") is None or shutil.which("useradd") is None:
        pytest.skip("needs root, sudo and useradd")
    _sweep_stale_sudo_users()
    name = f"{SUDO_PREFIX}{os.getpid()}x{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    rule = Path("/etc/sudoers.d") / name  # sudo reads files without '.' or '~' only
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        rule.write_text(f"{name} ALL=(ALL) ALL\n")
        rule.chmod(0o440)
        yield name, password
    finally:
        rule.unlink(missing_ok=True)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
