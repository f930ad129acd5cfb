"""``drp inventory trust``: a host key is recorded only after its fingerprint is checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    lab = new_lab(tmp_path, sshd)
    known = tmp_path / "known_hosts"  # empty: nothing trusted yet
    known.write_text("")
    lab.write_inventory({"h1": {"address": "127.0.0.1", "known_hosts": str(known)}})
    return lab


def _fingerprint(sshd: SshServer) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", f"{sshd.host_key_path}.pub"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


def test_unknown_key_is_refused_then_trusted_after_checking(lab: Lab) -> None:
    known = lab.root / "known_hosts"
    refused = lab.run(lab.book("hello"))
    assert refused.returncode == 3, combined(refused)
    assert "drp inventory trust h1" in combined(refused)

    wrong = lab.drp("inventory", "trust", "h1", "--expect", "SHA256:not-the-key")
    assert wrong.returncode == 3, combined(wrong)
    assert "does not match" in wrong.stderr and known.read_text() == ""

    asked = lab.drp("inventory", "trust", "h1")  # no terminal, no --expect: refuses to guess
    assert asked.returncode == 2 and known.read_text() == ""

    fingerprint = _fingerprint(lab.sshd)
    trusted = lab.drp("inventory", "trust", "h1", "--expect", fingerprint)
    assert trusted.returncode == 0, combined(trusted)
    assert fingerprint in trusted.stdout
    assert known.read_text().startswith(f"[127.0.0.1]:{lab.sshd.port} ssh-ed25519 ")

    ran = lab.run(lab.book("hello"), "--new")
    assert ran.returncode == 0, combined(ran)
