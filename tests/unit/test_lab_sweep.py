"""The lab's sweep of work directories left by guests whose QEMU is gone (a killed run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from drplab.guest import sweep_stale_workdirs


def _workdir(tmp: Path, name: str, pid: int | None) -> Path:
    workdir = tmp / f"drplab-{name}"
    workdir.mkdir()
    (workdir / "disk0.qcow2").write_bytes(b"overlay")
    if pid is not None:
        (workdir / "qemu.pid").write_text(f"{pid}\n")
    return workdir


def test_only_the_directories_of_dead_guests_go(tmp_path: Path) -> None:
    gone_pid = subprocess.Popen(["true"])
    gone_pid.wait()
    dead_dir = _workdir(tmp_path, "lab1-dead", gone_pid.pid)
    live_dir = _workdir(tmp_path, "lab1-live", os.getpid())
    starting = _workdir(tmp_path, "lab1-starting", None)  # QEMU not started yet
    other = tmp_path / "not-a-lab-dir"
    other.mkdir()
    (other / "qemu.pid").write_text(f"{gone_pid.pid}\n")

    removed = sweep_stale_workdirs(tmp_path)

    assert removed == [dead_dir]
    assert not dead_dir.exists()
    assert live_dir.exists() and starting.exists() and other.exists()
