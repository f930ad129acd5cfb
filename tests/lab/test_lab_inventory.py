"""Inventory and known_hosts writing (no guest needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from drplab import known_hosts_line, write_inventory, write_known_hosts
from drplab.inventory import remove_inventory_host

pytestmark = pytest.mark.lab

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILCsZ5xH/xNNrMWJnZdIMCPxjLq90En9txn/RaUAOssr"


def test_known_hosts_line_uses_bracket_form_for_other_ports() -> None:
    assert known_hosts_line(KEY, 40222) == f"[127.0.0.1]:40222 {KEY}"
    assert known_hosts_line(KEY, 22, "192.0.2.1") == f"192.0.2.1 {KEY}"


def test_write_inventory_merges_and_removes(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "known_hosts: ~/.ssh/known_hosts\nhosts:\n  db1:\n    address: 203.0.113.10\n"
    )
    kh = write_known_hosts(tmp_path / "known_hosts", [known_hosts_line(KEY, 40222)])
    key = tmp_path / "id_ed25519"
    write_inventory(inventory, "lab1", port=40222, key=key, known_hosts=kh)
    data = yaml.safe_load(inventory.read_text())
    assert data["known_hosts"] == "~/.ssh/known_hosts"
    assert data["hosts"]["db1"] == {"address": "203.0.113.10"}
    assert data["hosts"]["lab1"] == {
        "address": "127.0.0.1",
        "port": 40222,
        "user": "root",
        "key": str(key),
        "known_hosts": str(kh),
        "vars": {"lab": True},
    }
    assert kh.read_text() == f"[127.0.0.1]:40222 {KEY}\n"
    assert remove_inventory_host(inventory, "lab1")
    assert not remove_inventory_host(inventory, "lab1")
    assert set(yaml.safe_load(inventory.read_text())["hosts"]) == {"db1"}
