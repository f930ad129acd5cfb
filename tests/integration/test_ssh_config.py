"""The operator's ssh_config, honoured through the installed ``drp`` against the real sshd.

An inventory ``address: labalias`` is what ``ssh labalias`` reaches: HostName, Port,
User, IdentityFile, IdentitiesOnly, UserKnownHostsFile, ServerAliveInterval and
ProxyJump come from the ssh_config, and the inventory wins where both speak.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def _ssh_config(lab: Lab, extra: str = "") -> Path:
    sshd = lab.sshd
    path = lab.root / "ssh_config"
    path.write_text(
        f"""
Host labalias lab-*
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    IdentitiesOnly yes
    UserKnownHostsFile {sshd.known_hosts}
    ServerAliveInterval 7

Host jumpalias
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {sshd.known_hosts}

Host behindjump
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {sshd.known_hosts}
    ProxyJump jumpalias
{extra}"""
    )
    return path


def _inventory(lab: Lab, hosts: dict[str, dict[str, Any]], **top: Any) -> Path:
    for name, host in hosts.items():
        host.setdefault("vars", {})["drp_lock_dir"] = str(lab.root / f"lock-{name}")
    document = {**top, "vars": {"dir": str(lab.root)}, "hosts": hosts}
    lab.inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    return lab.inventory


def _run_as(lab: Lab, home: Path) -> subprocess.CompletedProcess[str]:
    """``drp run hello`` with ``home`` as HOME (where ~/.ssh/config is)."""
    return lab.drp("run", str(lab.book("hello")), "-i", str(lab.inventory), env={"HOME": str(home)})


def _connected(lab: Lab) -> dict[str, dict[str, Any]]:
    run = lab.only_run()
    return {e["host"]: e.get("data", e) for e in lab.of(run, "host.connected")}


def test_an_ssh_config_alias_gives_address_port_user_key_and_known_hosts(lab: Lab) -> None:
    config = _ssh_config(lab)
    _inventory(
        lab, {"h1": {"address": "labalias"}, "h2": {"address": "lab-two"}}, ssh_config=str(config)
    )
    result = lab.run(lab.book("hello"))
    assert result.returncode == 0, combined(result)
    assert (lab.root / "mark-h1").read_text() == "h1\n"
    assert (lab.root / "mark-h2").read_text() == "h2\n"  # a Host pattern, not only an alias
    connected = _connected(lab)
    assert connected["h1"]["address"] == "127.0.0.1"
    assert connected["h1"]["port"] == lab.sshd.port


def test_the_default_ssh_config_is_the_users_own(lab: Lab, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    _ssh_config(lab).rename(home / ".ssh" / "config")
    _inventory(lab, {"h1": {"address": "labalias"}})
    result = _run_as(lab, home)
    assert result.returncode == 0, combined(result)
    # without it, the alias is a name nobody resolves
    empty = tmp_path / "nohome"
    empty.mkdir()
    again = _run_as(lab, empty)
    assert again.returncode == 3, combined(again)
    assert "labalias" in combined(again)


def test_a_proxyjump_reaches_the_host_through_the_bastion(lab: Lab) -> None:
    config = _ssh_config(lab)
    _inventory(lab, {"h1": {"address": "behindjump"}}, ssh_config=str(config))
    result = lab.run(lab.book("hello"))
    assert result.returncode == 0, combined(result)
    assert _connected(lab)["h1"]["via_jump"] == "jumpalias"


def test_the_inventory_wins_where_both_speak(lab: Lab) -> None:
    # the ssh_config sends labalias to a port nobody listens on and as a user with no key
    config = _ssh_config(
        lab, extra="Host wrongport\n    HostName 127.0.0.1\n    Port 1\n    User nobody\n"
    )
    sshd = lab.sshd
    _inventory(
        lab,
        {
            "h1": {
                "address": "wrongport",
                "port": sshd.port,
                "user": "root",
                "key": str(sshd.client_key),
                "known_hosts": str(sshd.known_hosts),
            }
        },
        ssh_config=str(config),
    )
    result = lab.run(lab.book("hello"))
    assert result.returncode == 0, combined(result)
    assert _connected(lab)["h1"]["port"] == sshd.port
    # and the ssh_config's word is taken where the inventory is silent: Port 1 refuses
    _inventory(
        lab, {"h1": {"address": "wrongport", "key": str(sshd.client_key)}}, ssh_config=str(config)
    )
    refused = lab.run(lab.book("hello"))
    assert refused.returncode == 3, combined(refused)
    assert "127.0.0.1:1" in combined(refused)


def test_ssh_config_none_reads_none_and_a_missing_file_is_located(lab: Lab) -> None:
    _inventory(lab, {"h1": {"address": "labalias"}}, ssh_config="none")
    home = lab.root / "home"
    (home / ".ssh").mkdir(parents=True)
    _ssh_config(lab).rename(home / ".ssh" / "config")
    ignored = _run_as(lab, home)
    assert ignored.returncode == 3, combined(ignored)
    _inventory(lab, {"h1": {"address": "labalias"}}, ssh_config="missing_config")
    missing = lab.drp("validate", str(lab.inventory))
    assert missing.returncode == 2, combined(missing)
    assert "ssh_config file not found" in combined(missing)
    assert "Traceback" not in combined(missing)
