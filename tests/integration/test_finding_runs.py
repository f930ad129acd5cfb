"""Finding runs: whole run ids in a pipe, JSON listings, resume from another directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import DRP, Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.setenv("DRP_SIGN_KEY", "none")
    return new_lab(tmp_path, sshd)


def test_log_list_in_a_pipe_never_cuts_a_run_id_and_has_json(lab: Lab) -> None:
    assert lab.run(lab.book("hello")).returncode == 0
    run_id = lab.only_run()
    env = lab.env() | {"COLUMNS": "80"}
    listed = subprocess.run(
        [DRP, "log", "list"], env=env, capture_output=True, text=True, check=True
    )
    assert run_id in listed.stdout, listed.stdout  # whole, not '20261…'
    row = next(line for line in listed.stdout.splitlines() if run_id in line)
    assert "hello" in row and "ok" in row  # one line per run: nothing wrapped
    data = json.loads(lab.drp("log", "list", "--format", "json").stdout)
    assert [r["run"] for r in data] == [run_id] and data[0]["verified"] is True
    assert data[0]["started"].endswith("Z")
    inventory = json.loads(lab.drp("inventory", "list", "--format", "json").stdout)
    assert [h["name"] for h in inventory] == ["h1"]
    books = json.loads(lab.drp("list", "--format", "json", "--runbook-path", str(lab.root)).stdout)
    assert {"disk-replace", "dns-failover"} <= {b["name"] for b in books}


def test_a_run_started_with_a_relative_inventory_resumes_from_elsewhere(
    lab: Lab, tmp_path: Path
) -> None:
    env = lab.env()
    env.pop("DRP_INVENTORY")
    started = subprocess.run(
        [DRP, "run", str(lab.book("gate")), "-i", "inventory.yaml"],
        env=env,
        cwd=lab.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 5, combined(started)  # paused at the gate
    run_id = lab.only_run()
    assert lab.of(run_id, "run.started")[0]["data"]["inventory"] == str(lab.inventory)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(
        [DRP, "resume", "latest", "--approve", "swap-disk"],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, combined(resumed)
