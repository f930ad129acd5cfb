"""``drp run`` end to end against a real sshd: retries, timeouts, fallback, host keys,
quoting, secrets, fan-out and rollback."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sshd import SshServer
from typer.testing import CliRunner

from drp.cli.app import app
from integration.support import Lab, alive, combined, new_lab, read_pid, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def _actions(lab: Lab, run_id: str, step: str) -> list[dict]:
    return [e for e in lab.of(run_id, "step.attempt", step=step) if e["data"]["phase"] == "action"]


# -- 1. retry ---------------------------------------------------------------------------


def test_exit_failures_are_retried_until_success(lab: Lab) -> None:
    result = lab.run(lab.book("retry-exit"))
    assert result.returncode == 0, combined(result)
    run_id = lab.only_run()
    attempts = _actions(lab, run_id, "flaky")
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "ok"]
    assert (lab.root / "flaky").read_text().strip() == "3"
    assert lab.of(run_id, "step.finished", step="flaky")[-1]["outcome"] == "ok"


def test_exit_failure_not_listed_fails_at_once(lab: Lab) -> None:
    result = lab.run(lab.book("retry-no-exit"))
    assert result.returncode == 1, combined(result)
    run_id = lab.only_run()
    assert len(_actions(lab, run_id, "flaky")) == 1
    assert (lab.root / "flaky").read_text().strip() == "1"
    assert lab.outcome(run_id) == "failed"


# -- 3. timeout -------------------------------------------------------------------------


def test_timeout_fails_the_step_and_kills_the_remote_process(lab: Lab) -> None:
    result = lab.run(lab.book("timeout"))
    assert result.returncode == 1, combined(result)
    pid = read_pid(lab.root / "stuck.pid")
    assert wait_until(lambda: not alive(pid), 10), f"remote sleep {pid} survived the timeout"
    run_id = lab.only_run()
    attempt = _actions(lab, run_id, "stuck")[-1]
    assert attempt["outcome"] == "failed"
    assert "time" in attempt["data"]["error"].lower()
    assert lab.of(run_id, "step.finished", step="stuck")[-1]["outcome"] == "failed"


# -- 4. fallback address ----------------------------------------------------------------


def test_unreachable_primary_falls_back(lab: Lab) -> None:
    port = lab.sshd.port
    lab.write_inventory(
        {"h1": {"address": "127.0.0.9", "port": port, "fallback": [f"127.0.0.2:{port}"]}}
    )
    result = lab.run(lab.book("hello"))
    assert result.returncode == 0, combined(result)
    run_id = lab.only_run()
    connected = lab.of(run_id, "host.connected", host="h1")
    assert connected and connected[0]["data"]["via_fallback"] is True
    assert connected[0]["data"]["address"] == "127.0.0.2"
    assert (lab.root / "mark-h1").read_text().strip() == "h1"


# -- 5. unknown host key ----------------------------------------------------------------


def test_unknown_host_key_is_refused(lab: Lab) -> None:
    empty = lab.root / "empty_known_hosts"
    empty.write_text("")
    lab.write_inventory({"h1": {"address": "127.0.0.1", "known_hosts": str(empty)}})
    result = lab.run(lab.book("hello"))
    assert result.returncode == 3, combined(result)
    assert "drp inventory trust" in combined(result)
    assert not (lab.root / "mark-h1").exists()
    run_id = lab.only_run()
    assert not lab.of(run_id, "step.started")
    assert lab.outcome(run_id) == "unreachable"


# -- 6. shell metacharacters (in-process, through typer's CliRunner) --------------------


def test_param_with_shell_metacharacters_is_one_literal_word(lab: Lab) -> None:
    pwned = Path(f"/tmp/pwned-{uuid.uuid4().hex}")  # must NOT appear
    value = f"x; touch {pwned}"
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(lab.book("quoting")),
            "-i",
            str(lab.inventory),
            "--state-dir",
            str(lab.state),
            "--param",
            f"msg={value}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (lab.root / "msg").read_text() == value
    assert not pwned.exists()


# -- 13. secrets ------------------------------------------------------------------------


def test_secrets_never_reach_state_dir_or_console(lab: Lab) -> None:
    import re
    import shlex

    from drp.redact import MASK

    def leaked_forms(secret: str) -> set[str]:
        """As a file or a console could show it: as is, shell-quoted (alone, inside a
        larger word, in a command line), JSON-escaped, and its long unquoted pieces."""
        quoted = shlex.quote(secret)
        shown = {secret, quoted, quoted[1:-1], shlex.join([f"password={secret}"])}
        shown |= {json.dumps(s, ensure_ascii=a)[1:-1] for s in set(shown) for a in (False, True)}
        pieces = re.split(r"[^\w@%+=:,./-]", secret, flags=re.ASCII)
        return shown | {p for p in pieces if len(p) >= 8}

    # a single quote, spaces, a dollar and a backslash: shell quoting rewrites it
    password = f"it's a $pw\\ {uuid.uuid4().hex}"
    token = f"tok-{uuid.uuid4().hex}"
    (lab.root / "token").write_text(token + "\n")
    result = lab.run(lab.book("secrets"), "--param", f"password={password}")
    assert result.returncode == 0, combined(result)
    forms = leaked_forms(password) | {token}
    assert shlex.quote(password) != password and len(forms) > 6
    output = combined(result)
    for form in forms:
        assert form not in output, form
    files = [p for p in lab.state.rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in files)
    for path in files:
        data = path.read_bytes()
        for form in forms:
            assert form.encode() not in data, (path, form)
    # and the run did use them (the journal shows the masks instead)
    run_id = lab.only_run()
    started = lab.of(run_id, "step.started", step="use-password")[-1]
    assert started["data"]["command"] == f"echo password is {MASK}"
    assert f"password={MASK}" in lab.of(run_id, "run.started")[0]["data"]["command_line"]
    assert lab.of(run_id, "step.finished", step="use-token")[-1]["outcome"] == "ok"
    shown = lab.drp("log", "show", run_id, "--output")
    assert shown.returncode == 0, combined(shown)
    for form in forms:
        assert form not in combined(shown), form


# -- 15. fan-out ------------------------------------------------------------------------


def test_fan_out_to_three_hosts_with_json_output(lab: Lab) -> None:
    lab.write_inventory({"h1": "127.0.0.1", "h2": "127.0.0.2", "h3": "127.0.0.3"})
    result = lab.run(lab.book("hello"), "--format", "json")
    assert result.returncode == 0, combined(result)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert events[0]["type"] == "run.started"
    assert events[-1]["type"] == "run.finished" and events[-1]["outcome"] == "ok"
    assert events[-1]["data"]["hosts"] == {"h1": "ok", "h2": "ok", "h3": "ok"}
    for name in ("h1", "h2", "h3"):
        assert (lab.root / f"mark-{name}").read_text().strip() == name
        finished = [e for e in events if e["type"] == "step.finished" and e.get("host") == name]
        assert [(e["step"], e["outcome"]) for e in finished] == [
            ("mark", "ok"),
            ("second", "ok"),
        ]
    connected = {e["host"]: e["data"]["address"] for e in events if e["type"] == "host.connected"}
    assert connected == {"h1": "127.0.0.1", "h2": "127.0.0.2", "h3": "127.0.0.3"}


# -- 16. rollback -----------------------------------------------------------------------


def test_rollback_runs_undo_commands_newest_first(lab: Lab) -> None:
    result = lab.run(lab.book("rollback"))
    assert result.returncode == 1, combined(result)
    order = (lab.root / "order").read_text().split()
    assert order == ["do-one", "do-two", "do-three", "undo-three", "undo-two", "undo-one"]
    run_id = lab.only_run()
    rolled = [e["step"] for e in lab.of(run_id, "rollback.finished")]
    assert rolled == ["three", "two", "one"]
    assert not lab.of(run_id, "step.started", step="four")
