"""Command-line polish through the installed ``drp``: the dry run's one-line summary, a
closed output (``| head -1``) is exit 0, errors name where they come from (never
``<input>``), and ``drp validate`` tells an inventory from a runbook."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from integration.support import DRP, run_drp

pytestmark = pytest.mark.integration

BOOK = """\
name: mixed
targets: all
steps:
  - id: look
    run: uname -a
  - id: wipe
    run: wipefs -a /dev/sdz
    confirm: "wipe /dev/sdz on {{ host.name }}?"
  - id: swap
    manual: Swap the disk.
  - id: restart
    reboot: true
"""


def _drp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_drp(cwd, *args, timeout=120)


def _files(tmp_path: Path, hosts: int) -> tuple[Path, Path]:
    book = tmp_path / "mixed.yaml"
    book.write_text(BOOK)
    inventory = tmp_path / "inventory.yaml"
    document = {
        "hosts": {f"h{i}": {"address": f"10.0.{i // 250}.{i % 250 + 1}"} for i in range(hosts)}
    }
    inventory.write_text(yaml.safe_dump(document))
    return book, inventory


def test_the_dry_run_starts_with_a_one_line_summary(tmp_path: Path) -> None:
    book, inventory = _files(tmp_path, 2)
    for command in (["run", str(book), "--dry-run"], ["plan", str(book)]):
        shown = _drp(tmp_path, *command, "-i", str(inventory))
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[0] == (
            "8 steps on 2 hosts: 2 destructive, 2 manual gates, 2 reboots"
        )


@pytest.mark.parametrize("command", [["plan"], ["run", "--dry-run"]])
def test_a_closed_output_ends_a_plan_with_exit_0(tmp_path: Path, command: list[str]) -> None:
    book, inventory = _files(tmp_path, 400)  # far more than a pipe holds: drp meets the close
    process = subprocess.Popen(
        [DRP, command[0], str(book), *command[1:], "-i", str(inventory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "DRP_STATE_DIR": str(tmp_path)},
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()  # `| head -1`
    process.stdout.close()
    code = process.wait(120)
    err = process.stderr.read()
    assert first.startswith("1600 steps on 400 hosts")
    assert code == 0, err
    assert "Traceback" not in err and "internal error" not in err


def test_command_line_errors_never_start_with_input(tmp_path: Path) -> None:
    book, inventory = _files(tmp_path, 1)
    both = _drp(tmp_path, "run", str(book), "-i", str(inventory), "-H", "h0", "-t", "all")
    assert both.returncode == 2, both.stderr
    assert "give --host or --targets, not both" in both.stderr
    assert "<input>" not in both.stderr
    fmt = _drp(tmp_path, "run", str(book), "-i", str(inventory), "-f", "yaml", "--dry-run")
    assert fmt.returncode == 2
    assert "<input>" not in fmt.stderr and "--format: unknown format 'yaml'" in fmt.stderr


def test_validate_tells_an_inventory_from_a_runbook(tmp_path: Path) -> None:
    inventory = tmp_path / "only-defaults.yaml"
    inventory.write_text(
        textwrap.dedent("""\
        known_hosts: ~/.ssh/known_hosts
        host:  # a typo of hosts: still an inventory's mistake, not a runbook's
          db1: {address: 10.0.0.1}
        """)
    )
    checked = _drp(tmp_path, "validate", str(inventory))
    out = checked.stdout + checked.stderr
    assert checked.returncode == 2
    assert "unknown key 'host'" in out and "did you mean 'hosts'" in out
    assert "name: required key is missing" not in out
    book, good = _files(tmp_path, 1)
    fine = _drp(tmp_path, "validate", str(good), str(book))
    assert fine.returncode == 0, fine.stderr
    assert "(inventory, 1 hosts" in fine.stdout and "(runbook)" in fine.stdout


def test_show_rewraps_prose_and_keeps_lists(tmp_path: Path) -> None:
    book = tmp_path / "prose.yaml"
    book.write_text(
        textwrap.dedent("""\
        name: prose
        targets: all
        description: |
          This runbook repairs the thing
          when it breaks at night.

          It does:
          - one step
          - another step
        steps:
          - id: a
            run: "true"
        """)
    )
    shown = run_drp(tmp_path, "show", str(book), env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "This runbook repairs the thing when it breaks at night." in shown.stdout
    assert "It does:\n- one step\n- another step" in shown.stdout
