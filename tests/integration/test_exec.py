"""``drp exec PATTERN -- COMMAND`` through the installed CLI against the real sshd: the
command runs on every matching host, each host's output is shown, and it is a journaled
run like any other."""

from __future__ import annotations

from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd, {"h1": "127.0.0.1", "h2": "127.0.0.1", "other": "127.0.0.1"})


def _exec(lab: Lab, *args: str) -> tuple[int, str, str]:
    done = lab.drp("exec", "-i", str(lab.inventory), "--state-dir", str(lab.state), *args)
    return done.returncode, done.stdout, done.stderr


def test_exec_runs_on_the_matching_hosts_and_is_journaled(lab: Lab) -> None:
    code, out, err = _exec(lab, "h*", "--", "echo", "hello {{ not a template }}")
    assert code == 0, out + err
    assert "--- h1 (exit 0)\nhello {{ not a template }}" in out
    assert "--- h2 (exit 0)\nhello {{ not a template }}" in out
    assert "other" not in out
    run = lab.only_run()
    assert run.split("-")[2] == "exec"
    assert {e["host"] for e in lab.of(run, "step.finished", outcome="ok")} == {"h1", "h2"}
    shown = lab.drp("log", "show", run, "--state-dir", str(lab.state))
    assert shown.returncode == 0, combined(shown)
    assert lab.drp("log", "verify", run, "--state-dir", str(lab.state)).returncode == 0


def test_a_failing_command_still_runs_everywhere_and_fails_the_run(lab: Lab) -> None:
    code, out, err = _exec(lab, "all", "--", "sh -c 'echo out; echo oops >&2; exit 3'")
    assert code == 1, out + err
    for host in ("h1", "h2", "other"):
        assert f"--- {host} (exit 3)\nout" in out
    assert err.count("oops") == 3


def test_exec_with_no_matching_host_or_no_command_is_an_input_error(lab: Lab) -> None:
    code, _, err = _exec(lab, "nosuch", "--", "true")
    assert code == 2 and "no host or group matches 'nosuch'" in err
    code, _, err = _exec(lab, "all", "--", " ")
    assert code == 2 and "no command" in err
    assert "Traceback" not in err
