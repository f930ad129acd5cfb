"""``console:`` in the inventory: its forms, its errors (located), and ``drp inventory show``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from drp.errors import InventoryError
from drp.inventory import load_inventory


def write(tmp_path: Path, console: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(f"hosts:\n  db1:\n    address: 192.0.2.1\n    console: {console}\n")
    return path


def test_a_socket_console_with_defaults(tmp_path: Path) -> None:
    host = load_inventory(write(tmp_path, "{socket: 'tcp:consoles.example:7001'}")).get("db1")
    assert host.console is not None
    assert (host.console.socket, host.console.user, host.console.command) == (
        "tcp:consoles.example:7001",
        "root",
        None,
    )
    assert host.console.timeout == 30.0


@pytest.mark.parametrize(
    ("console", "said"),
    [
        ("{socket: 'unix:/s', password: hunter2}", "never goes in the inventory"),
        ("{socket: 'udp:h:1'}", "is not 'unix:/path' or 'tcp:HOST:PORT'"),
        ("{socket: 'unix:/s', command: 'virsh console db1'}", "either command: or socket:"),
        ("{user: root}", "either command: or socket:"),
        ("{command: x, shell_prompt: '[#'}", "prompt pattern"),
        ("{command: x, timeout: soon}", "timeout"),
    ],
)
def test_console_mistakes_are_located(tmp_path: Path, console: str, said: str) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(write(tmp_path, console))
    text = str(caught.value)
    assert said in text
    assert "inventory.yaml:4:" in text  # the line of console:
    assert "hunter2" not in text


def test_inventory_show_tells_where_the_password_comes_from(tmp_path: Path) -> None:
    path = write(tmp_path, "{command: 'virsh console db1', user: ops, password_env: DB1_PW}")
    shown = subprocess.run(
        ["drp", "inventory", "show", "db1", "-i", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "command: virsh console db1" in shown
    assert "user: ops" in shown
    assert "password: from $DB1_PW" in shown
