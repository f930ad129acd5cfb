"""A manual gate: the run pauses, ``drp resume --approve`` finishes it, the report says who."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def test_manual_gate_pauses_then_approval_finishes_and_is_reported(lab: Lab) -> None:
    paused = lab.run(lab.book("gate"))
    assert paused.returncode == 5, combined(paused)
    run_id = lab.only_run()
    assert f"drp resume {run_id} --approve swap-disk" in combined(paused)
    assert "Replace the disk in bay 2" in combined(paused)
    assert (lab.root / "order").read_text().split() == ["prepared"]

    done = lab.drp("resume", run_id, "--approve", "swap-disk", "--operator", "alice@ops")
    assert done.returncode == 0, combined(done)
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]
    approved = lab.of(run_id, "step.approved", step="swap-disk")
    assert approved and approved[-1]["data"]["by"] == "alice@ops"

    report = lab.drp("log", "report", run_id, "--format", "md")
    assert report.returncode == 0, combined(report)
    assert "alice@ops" in report.stdout
    assert "swap-disk" in report.stdout


def test_resuming_a_finished_run_is_refused(lab: Lab) -> None:
    assert lab.run(lab.book("hello")).returncode == 0
    again = lab.drp("resume", lab.only_run())
    assert again.returncode == 6, combined(again)
    assert "nothing to resume" in combined(again)


def test_sensitive_capture_is_recovered_on_resume_not_replaced_by_its_mask(lab: Lab) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    (lab.root / "token").write_text(token + "\n")
    assert lab.run(lab.book("sensitive-resume")).returncode == 5
    run_id = lab.only_run()
    done = lab.drp("resume", run_id, "--approve", "gate")
    assert done.returncode == 0, combined(done)
    assert (lab.root / "used").read_text() == token  # not "<sensitive>"
    assert token not in combined(done)
    assert token.encode() not in lab.journal_file(run_id).read_bytes()


def test_a_changed_runbook_is_refused_unless_allowed_and_then_recorded(lab: Lab) -> None:
    book = lab.runbook(lab.book("gate").read_text(), "gate.yaml")
    assert lab.run(book).returncode == 5
    run_id = lab.only_run()
    book.write_text(book.read_text().replace("echo finished", "echo FINISHED"))

    refused = lab.drp("resume", run_id, "--approve", "swap-disk")
    assert refused.returncode == 6, combined(refused)
    assert "changed since run" in combined(refused) and "--allow-changed" in combined(refused)
    said = combined(refused).splitlines()  # what changed, as a diff of the runbook
    assert any(line.startswith("-") and "echo finished" in line for line in said), said
    assert any(line.startswith("+") and "echo FINISHED" in line for line in said), said
    assert (lab.root / "order").read_text().split() == ["prepared"]

    allowed = lab.drp("resume", run_id, "--approve", "swap-disk", "--allow-changed")
    assert allowed.returncode == 0, combined(allowed)
    assert (lab.root / "order").read_text().split() == ["prepared", "FINISHED"]
    resumed = lab.of(run_id, "run.resumed")[-1]["data"]
    started = lab.of(run_id, "run.started")[0]["data"]
    assert resumed["allow_changed"] is True
    assert resumed["runbook_sha256"] != started["runbook_sha256"]
    assert resumed["inventory_sha256"] == started["inventory_sha256"]
    assert lab.drp("log", "verify", run_id).returncode == 0


def test_a_run_started_with_a_relative_path_resumes_from_another_directory(lab: Lab) -> None:
    lab.runbook(lab.book("gate").read_text(), "gate.yaml")
    paused = lab.drp("run", "gate.yaml", "--state-dir", str(lab.state))  # cwd: lab.root
    assert paused.returncode == 5, combined(paused)
    run_id = lab.only_run()
    elsewhere = lab.root / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        lab.args("resume", run_id, "--approve", "swap-disk"),
        capture_output=True,
        text=True,
        timeout=60,
        env=lab.env(),
        stdin=subprocess.DEVNULL,
        cwd=elsewhere,
        check=False,
    )
    assert done.returncode == 0, combined(done)
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]


PARAM_GATE = """\
name: param-gate
targets: all
params:
  failed: {required: true}
steps:
  - id: remove
    run: echo removed {{ params.failed }} >> {{ vars.dir }}/order
  - id: swap-disk
    manual: Replace the disk, then approve.
  - id: partition
    run: echo partitioned {{ params.failed }} via {{ vars.tag }} >> {{ vars.dir }}/order
"""


def _paused_param_run(lab: Lab) -> str:
    lab.write_inventory({"h1": {"address": "127.0.0.1", "vars": {"tag": "one"}}})
    book = lab.runbook(PARAM_GATE, "param-gate.yaml")
    paused = lab.run(book, "-p", "failed=/dev/sdb")
    assert paused.returncode == 5, combined(paused)
    return lab.only_run()


def test_a_changed_param_on_resume_is_refused_key_by_key_unless_allowed(lab: Lab) -> None:
    run_id = _paused_param_run(lab)
    refused = lab.drp("resume", run_id, "--approve", "swap-disk", "-p", "failed=/dev/sda")
    assert refused.returncode == 6, combined(refused)
    assert "param failed: '/dev/sdb' → '/dev/sda'" in combined(refused)
    assert "--allow-changed" in combined(refused)
    assert (lab.root / "order").read_text().splitlines() == ["removed /dev/sdb"]

    same = lab.drp("resume", run_id, "--approve", "swap-disk", "-p", "failed=/dev/sda",
                   "--allow-changed")  # fmt: skip
    assert same.returncode == 0, combined(same)
    changes = lab.of(run_id, "run.resumed")[-1]["data"]["changes"]
    assert changes == ["param failed: '/dev/sdb' → '/dev/sda'"]


def test_a_changed_inventory_on_resume_is_refused_key_by_key(lab: Lab) -> None:
    run_id = _paused_param_run(lab)
    lab.write_inventory({"h1": {"address": "127.0.0.2", "vars": {"tag": "two"}}})
    refused = lab.drp("resume", run_id, "--approve", "swap-disk")
    assert refused.returncode == 6, combined(refused)
    text = combined(refused)
    assert "inventory host h1 address: '127.0.0.1' → '127.0.0.2'" in text
    assert "inventory host h1 vars.tag: 'one' → 'two'" in text
    assert (lab.root / "order").read_text().splitlines() == ["removed /dev/sdb"]

    allowed = lab.drp("resume", run_id, "--approve", "swap-disk", "--allow-changed")
    assert allowed.returncode == 0, combined(allowed)
    assert (lab.root / "order").read_text().splitlines()[-1] == "partitioned /dev/sdb via two"
    changes = lab.of(run_id, "run.resumed")[-1]["data"]["changes"]
    assert "inventory host h1 vars.tag: 'one' → 'two'" in changes


def test_an_unchanged_resume_is_not_refused(lab: Lab) -> None:
    run_id = _paused_param_run(lab)
    done = lab.drp("resume", run_id, "--approve", "swap-disk", "-p", "failed=/dev/sdb")
    assert done.returncode == 0, combined(done)
    assert lab.of(run_id, "run.resumed")[-1]["data"]["changes"] == []
