"""drp installed as a user installs it (not editable): the README's first command works."""

from __future__ import annotations

import shutil
import subprocess
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
            ".git",
            ".venv",
            ".test-venv",
            "__pycache__",
            "*.egg-info",
            "build",
            ".*_cache",
            "lab",
            "tests",
        ),
    )
    # The README's first command, as written: a venv (never pip into the system
    # Python, which PEP 668 refuses on Debian 12 / Ubuntu 24.04), then its pip, its drp.
    first = _readme_first_command()
    make_venv, install, dry_run = first.split(" && ")
    assert make_venv == "python3 -m venv .venv"
    assert install == ".venv/bin/pip install ."
    assert dry_run.startswith(".venv/bin/drp run ")
    system = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # the distribution's python3
    assert not (source / ".venv").exists()  # made by the command, not copied
    subprocess.run(["bash", "-c", make_venv], cwd=source, env=system, check=True)
    # The new venv sees the dependencies of the environment running the tests (no
    # network needed) through a .pth file: `--system-site-packages` would show it
    # the *base* interpreter's packages when the tests themselves run in a venv.
    venv = source / ".venv"
    purelib = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outer = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(purelib, "outer-environment.pth").write_text("".join(f"{p}\n" for p in sorted(outer)))
    offline = {**system, "PIP_NO_INDEX": "1", "PIP_NO_DEPS": "1", "PIP_NO_BUILD_ISOLATION": "0"}
    installed = subprocess.run(
        ["bash", "-c", install], cwd=source, env=offline, capture_output=True, check=False
    )
    assert installed.returncode == 0, installed.stderr
    rehearsal = subprocess.run(
        ["bash", "-c", dry_run],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
        env={**system, "COLUMNS": "200"},
    )
    assert rehearsal.returncode == 0, rehearsal.stderr
    assert "datacenter-swap" in rehearsal.stdout
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
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert readme.returncode == 0, readme.stderr
    assert "datacenter-swap" in readme.stdout and "put: /var/lib/drp/md-inspect.sh" in readme.stdout


def _readme_first_command() -> str:
    """The first line of the README's first ``sh`` block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1]
    return block.splitlines()[0]


def test_the_readme_never_pips_into_the_system_python() -> None:
    """Every pip and drp of the first command is the venv's (PEP 668 refuses the system's)."""
    first = _readme_first_command()
    words = first.replace("&&", " ").split()
    assert "python3" in words and "venv" in words
    for word in words:
        if word.endswith(("pip", "pip3", "drp")):
            assert word.startswith(".venv/bin/"), word
    assert "sudo" not in words and "--break-system-packages" not in words
