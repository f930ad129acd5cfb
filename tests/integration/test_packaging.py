"""drp installed as a user installs it (not editable): the README's first command works."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_a_plain_install_ships_the_builtin_runbooks(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "__pycache__", "*.egg-info", "build", ".*_cache", "lab", "tests"
        ),
    )
    venv = tmp_path / "venv"
    # The new venv sees the dependencies of the environment running the tests (no
    # network needed) through a .pth file: `--system-site-packages` would show it
    # the *base* interpreter's packages when the tests themselves run in a venv.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outer = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(purelib, "outer-environment.pth").write_text("".join(f"{p}\n" for p in sorted(outer)))
    subprocess.run(
        [venv / "bin" / "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(source)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"  # no runbooks/ directory around
    elsewhere.mkdir()
    drp = str(venv / "bin" / "drp")
    listed = subprocess.run(
        [drp, "list"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert listed.returncode == 0, listed.stderr
    for name in (
        "disk-replace",
        "raid-rebuild",
        "kernel-rollback",
        "network-repair",
        "dns-failover",
        "dns-failback",
    ):
        assert name in listed.stdout
    assert listed.stdout.count("built-in") >= 6
    readme = subprocess.run(
        [
            drp,
            "run",
            "disk-replace",
            "--inventory",
            str(ROOT / "inventory" / "example.yaml"),
            "--host",
            "db1",
            "--param",
            "failed=/dev/sdb",
            "--dry-run",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert readme.returncode == 0, readme.stderr
    assert "datacenter-swap" in readme.stdout and "put: /var/lib/drp/md-inspect.sh" in readme.stdout
