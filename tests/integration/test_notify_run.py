"""Notifications from real runs: ``drp run`` pauses at a gate and a webhook is told how to
resume; ``drp resume`` finishes and says so; a channel that is down never holds a run up."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_servers import HookServer, closed_port, hook_server
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    with hook_server() as server:
        yield server


def team_config(lab: Lab, text: str) -> dict[str, str]:
    path = lab.root / "config.yaml"
    path.write_text(text)
    return {"DRP_CONFIG": str(path)}


def run(lab: Lab, book: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return lab.drp(
        "run", str(book), "-i", str(lab.inventory), "--state-dir", str(lab.state), env=env
    )


def test_a_gate_notifies_with_the_resume_command_and_the_resume_notifies_the_end(
    lab: Lab, hooks: HookServer
) -> None:
    token = f"T{uuid.uuid4().hex}"
    env = team_config(
        lab,
        "notify:\n  channels:\n    - name: ops-chat\n      webhook: {url_env: OPS_HOOK}\n",
    )
    env["OPS_HOOK"] = hooks.url(f"/hooks/{token}")

    paused = run(lab, lab.book("gate"), env)
    assert paused.returncode == 5, combined(paused)
    run_id = lab.only_run()
    bodies = hooks.bodies()
    assert [b["event"] for b in bodies] == ["paused", "finished"], bodies
    assert bodies[0]["command"] == f"drp resume {run_id} --approve swap-disk"
    assert bodies[0]["step"] == "swap-disk" and bodies[0]["host"] == "h1"
    assert "Replace the disk in bay 2" in bodies[0]["text"]
    assert bodies[1]["outcome"] == "paused"
    assert bodies[1]["command"] == f"drp resume {run_id}"
    sent = lab.of(run_id, "notify.sent")
    assert [e["data"]["event"] for e in sent] == ["paused", "finished"]
    assert all(e["data"]["channel"] == "ops-chat" for e in sent)

    done = lab.drp("resume", run_id, "--approve", "swap-disk", env=env)
    assert done.returncode == 0, combined(done)
    last = hooks.bodies()[-1]
    assert last["event"] == "finished" and last["outcome"] == "ok"
    assert len(hooks.bodies()) == 3  # an approval given on the command line waits for no one

    verified = lab.drp("log", "verify", run_id)
    assert verified.returncode == 0, combined(verified)
    shown = lab.drp("log", "show", run_id, "--events")
    assert shown.returncode == 0 and "notify.sent" in shown.stdout, combined(shown)
    for output in (paused, done, verified, shown):
        assert token not in combined(output)
    assert token.encode() not in lab.journal_file(run_id).read_bytes()


def test_a_channel_that_is_down_never_holds_the_run_up(lab: Lab) -> None:
    token = f"T{uuid.uuid4().hex}"
    env = team_config(
        lab,
        "notify:\n"
        "  bound: 1s\n"
        "  wait_at_end: 2s\n"
        "  channels:\n"
        "    - name: ops-chat\n"
        "      webhook: {url_env: OPS_HOOK, format: slack}\n"
        "      on: [finished]\n",
    )
    env["OPS_HOOK"] = f"http://127.0.0.1:{closed_port()}/hooks/{token}"
    book = lab.runbook(  # a step that prints the hook's URL: masked like any secret
        """
        name: leak
        targets: all
        steps:
          - id: show
            local: echo "the hook is $OPS_HOOK"
        """
    )
    started = time.monotonic()
    result = run(lab, book, env)
    took = time.monotonic() - started
    assert result.returncode == 0, combined(result)
    assert took < 20, took
    run_id = lab.only_run()
    failed = lab.of(run_id, "notify.failed")
    assert failed and failed[-1]["data"]["final"] is True, failed
    assert "cannot reach the server" in failed[-1]["data"]["error"]
    assert "notification to ops-chat (webhook) not delivered" in combined(result)
    assert lab.outcome(run_id) == "ok"
    assert lab.drp("log", "verify", run_id).returncode == 0
    assert lab.of(run_id, "step.attempt")[-1]["data"]["stdout"].startswith("the hook is ")
    assert token not in combined(result)
    assert token.encode() not in lab.journal_file(run_id).read_bytes()


def test_a_config_error_stops_the_run_before_it_starts(lab: Lab) -> None:
    env = team_config(
        lab, "notify:\n  channels:\n    - name: ops-chat\n      webhook: {url_env: NOT_SET_HOOK}\n"
    )
    result = run(lab, lab.book("hello"), env)
    assert result.returncode == 2, combined(result)
    assert f"{lab.root / 'config.yaml'}:4:" in combined(result)
    assert "$NOT_SET_HOOK is not set" in combined(result)
    assert lab.run_ids() == []


def test_a_runbooks_own_command_channel_gets_the_failure_and_the_end(lab: Lab) -> None:
    out = lab.root / "notices"
    script = (
        "import sys, json; d = json.load(sys.stdin); "
        f"open({str(out)!r}, 'a').write(d['event'] + ' ' + str(d['outcome']) + '\\n')"
    )
    book = lab.runbook(
        f"""
        name: breaks
        targets: all
        notify:
          channels:
            - name: pager
              command: [{sys.executable!r}, -c, {script!r}]
              on: [failed, finished]
        steps:
          - id: fails
            run: exit 3
        """
    )
    result = run(lab, book, {"DRP_CONFIG": ""})
    assert result.returncode == 1, combined(result)
    assert out.read_text().split("\n")[:2] == ["failed failed", "finished failed"]
    sent = lab.of(lab.only_run(), "notify.sent")
    assert [(e["data"]["channel"], e["data"]["event"]) for e in sent] == [
        ("pager", "failed"),
        ("pager", "finished"),
    ]
