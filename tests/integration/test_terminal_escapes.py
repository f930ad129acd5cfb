"""Host output reaches the operator's terminal shown, never obeyed (issue 16, class 3).

A host that prints ``ESC[2J`` (clear the screen) or ``ESC]52;c;…`` (write the
clipboard) must not get the operator's terminal to do it, through ``drp run``
on a pipe or a terminal, ``drp log show --output``, reports or error messages;
the journal keeps the exact bytes.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import time
from pathlib import Path

import pytest
from sshd import SshServer

from drp.terminal import visible
from integration.support import DRP, Lab, combined, new_lab

pytestmark = pytest.mark.integration

# what a hostile host prints: clear screen, clipboard write (OSC 52, BEL and ST ends),
# a carriage return that hides what came before, a C1 CSI, a bidi override, a bell
NASTY = "\x1b[2J\x1b]52;c;SGVsbG8=\x07\x1b]52;c;SGVsbG8=\x1b\\ok\rHIDDEN\x9b31m\u202eX\x07"
RAW = ("\x1b[2J", "\x1b]52", "\x9b", "\u202e", "\x07", "ok\rHIDDEN")


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def _book(lab: Lab) -> Path:
    (lab.root / "nasty.txt").write_text(NASTY + "\n", encoding="utf-8")
    return lab.runbook(
        f"""\
        name: escapes
        targets: h1
        steps:
          - id: shout
            run: cat {lab.root}/nasty.txt
            capture: said
          - id: fail
            run: cat {lab.root}/nasty.txt >&2; exit 3
        """
    )


def _assert_shown_not_sent(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{raw!r} reached the terminal"
    assert "\\x1b[2J" in text
    assert "\\x1b]52;c;SGVsbG8=" in text


def test_run_on_a_pipe_shows_escapes_and_the_journal_keeps_the_bytes(lab: Lab) -> None:
    result = lab.run(_book(lab))
    assert result.returncode == 1, combined(result)
    _assert_shown_not_sent(combined(result))
    run_id = lab.only_run()
    attempts = lab.of(run_id, "step.attempt", step="fail")
    assert attempts[-1]["data"]["stderr"] == NASTY + "\n"  # exact, in the journal

    shown = lab.drp("log", "show", run_id, "--output")
    assert shown.returncode == 0, combined(shown)
    _assert_shown_not_sent(shown.stdout)
    assert "\\rHIDDEN" in shown.stdout

    md = lab.drp("log", "report", run_id)
    assert md.returncode == 0, combined(md)
    for raw in RAW:
        assert raw not in md.stdout


def test_run_on_a_terminal_shows_escapes(lab: Lab) -> None:
    book = _book(lab)
    env = {**lab.env(), "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("NO_COLOR")
    args = [DRP, "run", str(book), "-i", str(lab.inventory), "--state-dir", str(lab.state)]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(lab.root)
            os.execve(DRP, args, env)
        finally:
            os._exit(127)
    screen = b""
    deadline = time.monotonic() + 60
    status = None
    while status is None and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            with contextlib.suppress(OSError):
                screen += os.read(fd, 65536)
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = code
    with_rest = screen
    try:
        while select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            with_rest += chunk
    except OSError:
        pass
    os.close(fd)
    assert status is not None, "drp did not finish"
    text = with_rest.decode("utf-8", errors="replace")
    assert "fail" in text
    for raw in ("\x1b[2J", "\x1b]52", "\u202e", "\x07"):
        assert raw not in text, f"{raw!r} reached the terminal"
    assert "\\x1b" in text


def test_visible_escapes_every_control_but_newline_and_tab() -> None:
    controls = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
    for char in controls:
        shown = visible(f"a{char}b")
        if char in "\n\t":
            assert shown == f"a{char}b"
        else:
            assert char not in shown and shown.startswith("a\\") and shown.endswith("b"), shown
    assert visible("line\r\n") == "line\r\n"
    assert visible("é ü 日本 ✓") == "é ü 日本 ✓"
