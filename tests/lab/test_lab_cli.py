"""The lab's command line, as lab/README.md has an operator use it to rehearse by hand.

``python -m drplab up`` starts a detached guest; ``pull``, ``insert`` and ``reset``
reach it from other processes (QMP through ``Guest.attach``), ``ssh`` logs in, and
``down`` stops it and removes its inventory entry. (``night`` is the function the
replay test runs: ``drplab.breaks.night_of_september_2019``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from drplab.util import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]

LAB = Path(__file__).resolve().parents[2] / "lab"


def drplab(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(LAB)}
    return subprocess.run(
        [sys.executable, "-m", "drplab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def on_guest(name: str, command: str) -> str:
    result = drplab("ssh", name, "-o", "BatchMode=yes", command, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_up_pull_insert_reset_down_from_the_command_line(tmp_path: Path) -> None:
    name = f"cli{os.getpid()}"  # the run directory is the cache's: a name of this session
    inventory = tmp_path / "inventory.yaml"
    up = drplab("up", "--name", name, "--inventory", str(inventory))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert name in yaml.safe_load(inventory.read_text())["hosts"]
        assert "running" in drplab("status", name).stdout
        assert "[UU]" in on_guest(name, "cat /proc/mdstat")

        pulled = drplab("pull", name, "disk1", timeout=120)
        assert pulled.returncode == 0 and "disk1 pulled" in pulled.stdout, pulled.stderr
        on_guest(name, "echo written-degraded > /root/after-pull && sync")
        assert "[U_]" in on_guest(name, "cat /proc/mdstat")
        again = drplab("pull", name, "disk1", timeout=120)
        assert again.returncode != 0 and "disk1" in again.stdout + again.stderr

        inserted = drplab("insert", name, "disk3", "--serial", "DRPLAB-CLI0", timeout=120)
        assert inserted.returncode == 0, inserted.stdout + inserted.stderr
        wait_until(
            lambda: (
                drplab("ssh", name, "test -b /dev/disk/by-id/virtio-DRPLAB-CLI0").returncode == 0
            ),
            60,
            what="the inserted disk in the guest",
        )

        boot = on_guest(name, "cat /proc/sys/kernel/random/boot_id")
        reset = drplab("reset", name)
        assert reset.returncode == 0 and "back in" in reset.stdout, reset.stdout + reset.stderr
        assert on_guest(name, "cat /proc/sys/kernel/random/boot_id") != boot
        assert on_guest(name, "cat /root/after-pull").strip() == "written-degraded"
    finally:
        down = drplab("down", name, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert name not in (yaml.safe_load(inventory.read_text()) or {}).get("hosts", {})
    missing = drplab("pull", name, "disk0", timeout=60)
    assert missing.returncode == 1 and f"no lab host named {name}" in missing.stderr
