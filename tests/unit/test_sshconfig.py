"""The ssh_config merge (paramiko's parser): what fills a host, what the inventory keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from drp.errors import InventoryError
from drp.inventory import load_inventory
from drp.inventory.sshconfig import open_ssh_config


def _load(tmp_path: Path, config: str, inventory: str) -> dict[str, object]:
    (tmp_path / "ssh_config").write_text(config)
    path = tmp_path / "inventory.yaml"
    path.write_text("ssh_config: ssh_config\n" + inventory)
    return dict(load_inventory(path).hosts)


def test_a_proxyjump_chain_is_followed_hop_by_hop(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("x")
    hosts = _load(
        tmp_path,
        f"Host db\n  HostName 10.0.0.5\n  ProxyJump ops@gw1:2201,gw2\n"
        f"Host gw2\n  HostName 192.0.2.2\n  User jump\n  IdentityFile {key}\n"
        "  IdentityFile /nonexistent/key\n",
        "hosts:\n  db1: {address: db}\n",
    )
    db1 = hosts["db1"]
    assert db1.address == "10.0.0.5"  # type: ignore[attr-defined]
    gw2 = db1.jump  # type: ignore[attr-defined]
    assert (gw2.address, gw2.user, gw2.identity_files) == ("192.0.2.2", "jump", (str(key),))
    gw1 = gw2.jump
    assert (gw1.address, gw1.port, gw1.user, gw1.jump) == ("gw1", 2201, "ops", None)


def test_the_inventory_wins_and_defaults_count_as_the_inventory(tmp_path: Path) -> None:
    hosts = _load(
        tmp_path,
        "Host *\n  User cfguser\n  Port 2222\n  ServerAliveInterval 9\n  IdentitiesOnly yes\n"
        "  ProxyJump bastion\n",
        "defaults: {user: root}\nhosts:\n  a: {port: 22, jump: none}\n  b: {}\n",
    )
    a, b = hosts["a"], hosts["b"]
    assert (a.user, a.port, a.jump) == ("root", 22, None)  # type: ignore[attr-defined]
    assert (b.user, b.port, b.keepalive, b.identities_only) == ("root", 2222, 9.0, True)  # type: ignore[attr-defined]
    assert b.jump.address == "bastion"  # type: ignore[attr-defined]


def test_no_default_file_is_no_config_and_a_named_missing_one_is_a_problem(tmp_path: Path) -> None:
    assert open_ssh_config(None, tmp_path) is None or (Path.home() / ".ssh/config").is_file()
    assert open_ssh_config("none", tmp_path) is None
    with pytest.raises(InventoryError, match="ssh_config file not found"):
        open_ssh_config("missing", tmp_path)
