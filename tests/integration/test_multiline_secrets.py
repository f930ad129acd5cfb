"""Against a real sshd: a secret of several lines holding quotes, spaces, ``$`` and ``\\``
is masked whole and line by line wherever it appears, and a sudo password holding a line
break is refused at input (issue 16, class 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sshd import SshServer

from drp.redact import MASK, Redactor
from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration

SECRET = "Pa ss\"w$rd\\x1\nsec 'ond' $HOME `x`\n  th\\ird line\n"
LINES = [line.strip() for line in SECRET.splitlines()]


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def test_a_multi_line_secret_reaches_no_file_and_no_screen(lab: Lab) -> None:
    book = lab.runbook(
        """\
        name: ml
        targets: h1
        params:
          pw: {secret: true, required: true}
        steps:
          - id: show
            run: printf '%s\\n' {{ params.pw }}; printf '%s\\r\\n' {{ params.pw }}
            capture: seen
          - id: line
            run: printf '%s\\n' {{ params.pw }} | sed -n 2p
            capture:
              second: '(.*)'
          - id: again
            run: echo {{ captures.seen }} {{ captures.second }}; exit 3
        """
    )
    params = lab.root / "params.yaml"
    params.write_text(json.dumps({"pw": SECRET}))
    result = lab.run(book, "--params-file", str(params))
    assert result.returncode == 1, combined(result)
    run_id = lab.only_run()
    exported = lab.drp("log", "export", run_id, "--format", "csv").stdout
    shown = lab.drp("log", "show", run_id, "--output").stdout
    report = lab.drp("log", "report", run_id).stdout
    stored = lab.journal_file(run_id).read_text()
    for where, text in {
        "console": combined(result),
        "journal": stored,
        "journal (decoded)": "".join(json.dumps(e) for e in lab.events(run_id)),
        "export": exported,
        "log show": shown,
        "report": report,
    }.items():
        for line in LINES:
            assert line not in text, f"{line!r} in the {where}"
            assert json.dumps(line)[1:-1] not in text, f"{line!r} (JSON) in the {where}"
    assert MASK in stored
    finished = lab.of(run_id, "step.finished", step="line")[-1]
    assert finished["data"]["captures"]["second"] == MASK  # the whole line, not a remnant


def test_lines_of_a_secret_are_masked_in_every_form() -> None:
    redact = Redactor.of([SECRET])
    for line in LINES:
        for text in (line, f"x {line} y", json.dumps(line), repr(line), line + "\r\n"):
            assert line not in redact.text(text)
    assert redact.text(SECRET.replace("\n", "\r\n")) == MASK


@pytest.mark.parametrize("password", ["first\nrm -rf /tmp/x", "pw\r\n", "a\rb"])
def test_a_sudo_password_with_a_line_break_is_refused(
    lab: Lab, password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRP_BECOME_PASSWORD", password)
    result = lab.run(lab.book("hello"))
    assert result.returncode == 2, combined(result)
    assert "holds a line break" in result.stderr and "$DRP_BECOME_PASSWORD" in result.stderr
    assert password.split("\n", maxsplit=1)[0] not in result.stderr
    assert lab.run_ids() == []


def test_a_host_sudo_password_with_a_line_break_is_refused(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRP_TEST_ML_PW", "one\ntwo")
    lab.write_inventory(
        {"h1": {"address": "127.0.0.1", "become": {"password_env": "DRP_TEST_ML_PW"}}}
    )
    result = lab.run(lab.book("hello"))
    assert result.returncode == 2, combined(result)
    assert "$DRP_TEST_ML_PW (host h1) holds a line break" in result.stderr


def test_a_console_password_with_a_line_break_is_refused(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRP_TEST_ML_CONSOLE", "root\nreboot")
    console = {"socket": "unix:/nonexistent/console.sock", "password_env": "DRP_TEST_ML_CONSOLE"}
    lab.write_inventory({"h1": {"address": "127.0.0.1", "console": console}})
    result = lab.run(lab.book("hello"))
    assert result.returncode == 2, combined(result)
    said = result.stderr
    assert "console password from $DRP_TEST_ML_CONSOLE (host h1) holds a line break" in said
    assert "reboot" not in said
    assert lab.run_ids() == []
