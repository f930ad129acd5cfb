"""Shell completion through the installed ``drp`` (typer's bash protocol, as the script
``drp --install-completion`` installs drives it): runbook names, hosts and groups, run ids,
and the manual steps ``--approve`` takes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from integration.support import DRP

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory" / "example.yaml"


def _complete(line: str, state: Path, cwd: Path) -> list[str]:
    words = line.split(" ")
    done = subprocess.run(
        [DRP],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={
            **os.environ,
            "_DRP_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
            "DRP_STATE_DIR": str(state),
        },
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.split()


def test_completion_knows_runbooks_hosts_groups_runs_and_steps(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_id = "20261206-101010-disk-replace-ab12"
    journal = state / "runs" / run_id / "events.jsonl"
    journal.parent.mkdir(parents=True)
    record = {
        "type": "run.started",
        "data": {
            "runbook_path": str(ROOT / "runbooks" / "disk-replace.yaml"),
            "incident": "2019-09-disk",
        },
    }
    journal.write_text(json.dumps(record) + "\n")

    assert _complete("drp run disk-r", state, tmp_path) == ["disk-replace"]
    assert "kernel-rollback" in _complete("drp show ", state, tmp_path)
    assert _complete(f"drp run disk-replace -i {EXAMPLE} -H d", state, tmp_path) == ["db1"]
    groups = _complete(f"drp plan disk-replace -i {EXAMPLE} -t data", state, tmp_path)
    assert groups == ["databases"]
    assert _complete("drp resume 2026", state, tmp_path) == [run_id]
    assert _complete("drp log show 2026", state, tmp_path) == [run_id]
    assert _complete("drp log report --incident 2019", state, tmp_path) == ["2019-09-disk"]
    assert _complete("drp run disk-replace --incident 20", state, tmp_path) == ["2019-09-disk"]
    assert _complete(f"drp run -i {EXAMPLE} disk-replace --approve ", state, tmp_path) == [
        "datacenter-swap"
    ]
    assert _complete(f"drp resume {run_id} --approve data", state, tmp_path) == ["datacenter-swap"]
    # a broken inventory completes nothing, quietly
    broken = tmp_path / "broken.yaml"
    broken.write_text("hosts: [\n")
    assert _complete(f"drp run disk-replace -i {broken} -H ", state, tmp_path) == []


def test_install_completion_is_offered() -> None:
    shown = subprocess.run(
        [DRP, "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "--install-completion" in shown.stdout and "--show-completion" in shown.stdout
