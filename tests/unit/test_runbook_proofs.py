"""Built-in runbooks are proved by a test that runs them for real, or marked DRAFT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drp.cli.app import app
from drp.runbook.catalog import PROVED_BY, builtin_dir, entries
from drp.runbook.loader import load_runbook

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = sorted(p.stem for p in builtin_dir().glob("*.yaml"))


@pytest.mark.parametrize("name", BUILTIN)
def test_a_builtin_runbook_is_proved_by_an_existing_test_or_a_draft(name: str) -> None:
    description = load_runbook(builtin_dir() / f"{name}.yaml").description
    if name not in PROVED_BY:
        assert description.lstrip().startswith("DRAFT"), f"{name}: not proved, not marked DRAFT"
        return
    assert "DRAFT" not in description, f"{name}: proved, still marked DRAFT"
    for test in PROVED_BY[name]:
        source = (ROOT / test).read_text(encoding="utf-8")
        assert f"{name}.yaml" in source or f'"{name}"' in source, f"{test} does not run {name}"


def test_drp_list_shows_proof_and_drafts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    (user / "mine.yaml").write_text("name: mine\nsteps:\n  - id: a\n    run: 'true'\n")
    monkeypatch.setenv("DRP_RUNBOOK_PATH", str(user))
    listed = CliRunner().invoke(app, ["list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if "│" in line}
    assert "proved by test_disk_replace.py" in rows["disk-replace"]
    assert "proved by" not in rows["mine"] and "DRAFT" not in rows["mine"]
    by_name = {e.name: e for e in entries()}
    for name in BUILTIN:
        expected = "proved by" if name in PROVED_BY else "DRAFT"
        assert by_name[name].status.startswith(expected)
        assert expected in rows[name]


def test_no_builtin_runbook_defaults_to_a_group_of_hosts() -> None:
    # every built-in runbook changes hosts: it runs only where the operator says (-H/-t)
    for path in sorted(builtin_dir().glob("*.yaml")):
        assert load_runbook(path).targets is None, f"{path.name} declares targets"


def test_drp_list_reads_only_the_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    # listed with its summary although its step is invalid: 'drp validate' checks, list reads
    (user / "odd.yaml").write_text("name: odd\nsummary: Half written\nsteps: [{id: a, rnu: x}]\n")
    (user / "broken.yaml").write_text("name: broken\nsummary: [unclosed\n")
    monkeypatch.setenv("DRP_RUNBOOK_PATH", str(user))
    listed = CliRunner().invoke(app, ["list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows["odd"]["summary"] == "Half written" and rows["odd"]["readable"] is True
    assert rows["broken"]["summary"] == "" and rows["broken"]["readable"] is False
    table = CliRunner().invoke(app, ["list"], env={"COLUMNS": "250"}).output
    assert "no summary: run drp validate" in next(r for r in table.splitlines() if "broken" in r)


def test_drp_list_imports_no_runbook_model() -> None:
    # start-up is what 'drp list' costs: the models, Jinja2 and paramiko stay unloaded
    code = (
        "import sys\nfrom drp.cli.app import main\ntry:\n    main(['list'])\n"
        "except SystemExit:\n    pass\n"
        "print([m for m in ('drp.runbook.model', 'jinja2', 'paramiko') if m in sys.modules],"
        " file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
