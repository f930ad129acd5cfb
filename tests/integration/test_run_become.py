"""``become`` end to end: a non-root login whose sudo asks for a password, and root to another user.

The host's own password comes from the variable its inventory ``become.password_env``
names; the host lock (in a directory only root may write) is taken and released
through sudo as the steps are; the password is nowhere in the state dir.
"""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import combined, new_lab

pytestmark = pytest.mark.integration

WHO = """
name: who
targets: all
defaults: {become: true}
steps:
  - id: as-root
    run: id -un
    capture: root_is
  - id: as-login
    become: false
    run: id -un
    capture: login_is
  - id: report
    become: false
    run: echo "root={{ captures.root_is | raw }} login={{ captures.login_is | raw }}"
"""


def _authorize(sshd: SshServer, user: str) -> None:
    """Let ``user`` log in with the test key (sshd reads ~/.ssh/authorized_keys as the user)."""
    home = Path(pwd.getpwnam(user).pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(Path(f"{sshd.client_key}.pub").read_text())
    for path in (ssh_dir, keys):
        shutil.chown(path, user, user)


def test_non_root_login_with_its_own_sudo_password(
    tmp_path: Path, sshd: SshServer, sudo_user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, password = sudo_user
    _authorize(sshd, name)
    lab = new_lab(tmp_path, sshd)
    lock_parent = tmp_path / "root-only"  # the test dir is root's (0700): no sudo, no lock
    lab.write_inventory(
        {
            "h1": {
                "address": "127.0.0.1",
                "user": name,
                "become": {"password_env": "DRP_TEST_H1_SUDO"},
                "vars": {"drp_lock_dir": str(lock_parent / "lock")},
            }
        }
    )
    monkeypatch.setenv("DRP_TEST_H1_SUDO", password)
    monkeypatch.delenv("DRP_BECOME_PASSWORD", raising=False)
    result = lab.run(lab.runbook(WHO))
    assert result.returncode == 0, combined(result)
    run_id = lab.only_run()
    assert f"root=root login={name}" in result.stdout
    assert lab.of(run_id, "lock.acquired") and lab.of(run_id, "lock.released")
    assert not (lock_parent / "lock").exists()
    for path in lab.state.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(errors="replace"), path


def test_wrong_host_password_fails_before_any_step(
    tmp_path: Path, sshd: SshServer, sudo_user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, password = sudo_user
    _authorize(sshd, name)
    lab = new_lab(tmp_path, sshd)
    lab.write_inventory(
        {"h1": {"address": "127.0.0.1", "user": name, "become": {"password_env": "DRP_TEST_PW"}}}
    )
    monkeypatch.setenv("DRP_TEST_PW", "not-" + password)
    result = lab.run(lab.runbook(WHO))
    assert result.returncode == 7, combined(result)  # the lock needs sudo: refused there
    assert "cannot take the lock" in combined(result)
    assert not lab.of(lab.only_run(), "step.started")


def test_root_login_becomes_the_user_the_inventory_names(tmp_path: Path, sshd: SshServer) -> None:
    lab = new_lab(tmp_path, sshd)
    lab.write_inventory({"h1": {"address": "127.0.0.1", "become": {"user": "nobody"}}})
    result = lab.run(
        lab.runbook(
            """
            name: nobody
            targets: all
            steps:
              - {id: who, become: true, run: id -un}
              - {id: me, become: false, run: id -un}
            """
        )
    )
    assert result.returncode == 0, combined(result)
    run_id = lab.only_run()
    outputs = [
        e["data"]["stdout"].strip()
        for e in lab.events(run_id)
        if e["type"] == "step.attempt" and e["data"].get("phase") == "action"
    ]
    assert outputs == ["nobody", "root"], outputs


def test_unlock_removes_a_lock_of_roots_through_sudo(
    tmp_path: Path, sshd: SshServer, sudo_user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, password = sudo_user
    _authorize(sshd, name)
    lab = new_lab(tmp_path, sshd)
    lock = tmp_path / "root-only" / "lock"
    lab.write_inventory(
        {
            "h1": {
                "address": "127.0.0.1",
                "user": name,
                "become": {"user": "postgres", "password_env": "DRP_TEST_H1_SUDO"},
                "vars": {"drp_lock_dir": str(lock)},
            }
        }
    )
    monkeypatch.setenv("DRP_TEST_H1_SUDO", password)
    gate = "name: g\ntargets: all\nsteps:\n  - {id: wait-here, manual: swap the disk}\n"
    assert lab.run(lab.runbook(gate)).returncode == 5  # paused: the run keeps its lock
    assert (lock / "holder").is_file()
    unlocked = lab.drp("unlock", "h1", "--force", "-i", str(lab.inventory))
    assert unlocked.returncode == 0, combined(unlocked)
    assert not lock.exists()  # removed as root, not as the login nor as postgres
