"""``drp new NAME`` through the installed CLI: a skeleton that validates, plans, matches the
schema it names for editors, and never overwrites a runbook by accident."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from integration.support import run_drp

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "example.yaml"


def _drp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_drp(cwd, *args, timeout=120)


def test_a_new_runbook_validates_plans_and_names_its_schema(tmp_path: Path) -> None:
    made = _drp(tmp_path, "new", "nginx-restart")
    assert made.returncode == 0, made.stderr
    path = tmp_path / "runbooks" / "nginx-restart.yaml"
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=./drp-runbook.schema.json\n")
    schema = json.loads((tmp_path / "runbooks" / "drp-runbook.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(text), schema)
    kinds = {
        next(k for k in ("run", "put", "wait", "manual", "reboot") if k in s)
        for s in yaml.safe_load(text)["steps"]
    }
    assert kinds == {"run", "put", "wait", "manual", "reboot"}
    checked = _drp(tmp_path, "validate", str(path))
    assert checked.returncode == 0, checked.stderr
    planned = _drp(
        tmp_path, "plan", "nginx-restart", "-H", "db1", "-i", str(EXAMPLE), "-p", "service=nginx"
    )
    assert planned.returncode == 0, planned.stderr
    assert "1 destructive, 1 manual gate, 1 reboot" in planned.stdout.splitlines()[0]
    listed = _drp(tmp_path, "list")
    assert "nginx-restart" in listed.stdout


def test_new_never_overwrites_and_refuses_a_bad_name(tmp_path: Path) -> None:
    assert _drp(tmp_path, "new", "fix").returncode == 0
    path = tmp_path / "runbooks" / "fix.yaml"
    path.write_text("# mine\n")
    again = _drp(tmp_path, "new", "fix")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert path.read_text() == "# mine\n"
    assert _drp(tmp_path, "new", "fix", "--force").returncode == 0
    bad = _drp(tmp_path, "new", "Bad Name")
    assert bad.returncode == 2 and "invalid runbook name" in bad.stderr
    assert "Traceback" not in bad.stderr
