"""A refused login or host key gives a way forward, through the installed ``drp`` and the
real sshd: which keys were tried (``key:``, ssh-agent, ssh_config, default files) and which
inventory key to set; a host-key failure is not told to wait until the host answers.
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

from integration.support import Lab, combined, new_lab, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@contextlib.contextmanager
def _agent(directory: Path, *keys: Path) -> Iterator[str]:
    """A real ssh-agent holding ``keys``; yields its socket (killed at the end)."""
    socket = directory / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL)
    try:
        assert wait_until(socket.exists), "ssh-agent did not start"
        for key in keys:
            subprocess.run(
                ["ssh-add", "-q", str(key)],
                check=True,
                env={**os.environ, "SSH_AUTH_SOCK": str(socket)},
                capture_output=True,
            )
        yield str(socket)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(10)


def _run(lab: Lab, home: Path, agent: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "SSH_AUTH_SOCK": agent or ""}  # an empty one: no agent
    return lab.drp("run", str(lab.book("hello")), "-i", str(lab.inventory), env=env)


def _home(lab: Lab) -> Path:
    home = lab.root / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    return home


def test_a_refused_key_says_which_keys_were_tried_and_what_to_set(lab: Lab) -> None:
    wrong = _keygen(lab.root / "wrong_key")
    lab.write_inventory({"h1": {"address": "127.0.0.1", "key": str(wrong)}})
    result = _run(lab, _home(lab))
    out = " ".join(combined(result).split())  # the console wraps long lines
    assert result.returncode == 3, out
    assert f"keys tried: {wrong} (the inventory's key:)" in out
    assert "no ssh-agent" in out
    assert "hosts: h1: key: PATH" in out and "ssh-add" in out and "IdentityFile" in out
    assert "once it answers" not in out
    assert "refused the login or the host key" in out


def test_agent_keys_are_counted_and_used(lab: Lab) -> None:
    wrong = _keygen(lab.root / "agent_wrong")
    home = _home(lab)
    _keygen(home / ".ssh" / "id_ed25519")  # a default file, also the wrong one
    lab.write_inventory({"h1": {"address": "127.0.0.1", "key": None}})
    with _agent(lab.root, wrong) as socket:
        refused = _run(lab, home, socket)
    out = " ".join(combined(refused).split())
    assert refused.returncode == 3, out
    assert "ssh-agent (1 key)" in out
    assert f"{home}/.ssh/id_ed25519 (the default files)" in out
    # the key the host knows, in the agent: no key: needed at all
    with _agent(lab.root, lab.sshd.client_key) as socket:
        resumed = lab.drp(
            "resume", lab.only_run(), env={"HOME": str(home), "SSH_AUTH_SOCK": socket}
        )
    assert resumed.returncode == 0, combined(resumed)
    assert (lab.root / "mark-h1").read_text() == "h1\n"


def test_an_unknown_host_key_is_not_told_to_wait(lab: Lab) -> None:
    empty = lab.root / "empty_known_hosts"
    empty.write_text("")
    lab.write_inventory({"h1": {"address": "127.0.0.1", "known_hosts": str(empty)}})
    result = _run(lab, _home(lab))
    out = " ".join(combined(result).split())
    assert result.returncode == 3, out
    assert "drp inventory trust h1" in out
    assert "once it answers" not in out
    assert "refused the login or the host key" in out
