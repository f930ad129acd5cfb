"""The operator at a terminal: ``drp run`` in a real pseudo-terminal answers gates by prompt.

Without a terminal a gate pauses the run (tested elsewhere); here a person types
the answers, as on the night itself.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import time
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import DRP, Lab, new_lab

pytestmark = pytest.mark.integration
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

DESTRUCTIVE = """\
name: wipe
targets: all
steps:
  - id: wipe
    run: echo wiped >> {{ vars.dir }}/order
    confirm: "Wipe the test area on {{ host.name }}?"
"""


class Terminal:
    """``drp`` on a pseudo-terminal: read what it shows, type answers."""

    def __init__(self, lab: Lab, *args: str) -> None:
        env = lab.env()
        env.update(TERM="xterm", COLUMNS="120")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: drp itself, its stdin/stdout the terminal
            os.chdir(lab.root)
            os.execve(DRP, [DRP, *args], env)
        self.screen = ""

    def expect(self, pattern: str, seconds: float = 30.0) -> str:
        deadline = time.monotonic() + seconds
        while not re.search(pattern, ANSI.sub("", self.screen)):
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {pattern!r} in:\n{ANSI.sub('', self.screen)}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
        return ANSI.sub("", self.screen)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def exit_code(self, seconds: float = 30.0) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):  # EIO once drp closed the terminal
                    self.screen += os.read(self.fd, 4096).decode(errors="replace")
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("drp did not exit")


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def _run_args(lab: Lab, book: Path) -> list[str]:
    return ["run", str(book), "-i", str(lab.inventory), "--state-dir", str(lab.state)]


def test_operator_confirms_a_manual_gate_at_the_prompt(lab: Lab) -> None:
    term = Terminal(lab, *_run_args(lab, lab.book("gate")))
    term.expect(r"Replace the disk in bay 2")
    term.expect(r"swap-disk \[done/reject/pause\]")
    term.type("done\n")
    term.expect(r"note for the report")
    term.type("bay 2 swapped\n")
    assert term.exit_code() == 0, term.screen
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]
    run_id = lab.only_run()
    approved = lab.of(run_id, "step.approved", step="swap-disk")
    assert approved and approved[0]["data"]["by"] and approved[0]["data"]["kind"] == "manual"
    assert approved[0]["data"]["note"] == "bay 2 swapped"
    report = lab.drp("log", "report", run_id).stdout  # the note is in the timeline
    assert "approved by" in report and "bay 2 swapped" in report


def test_operator_refuses_a_destructive_step_and_says_why(lab: Lab) -> None:
    book = lab.runbook(DESTRUCTIVE)
    term = Terminal(lab, *_run_args(lab, book))
    term.expect(r"Wipe the test area on h1\?")
    term.expect(r"wipe \[yes/no/pause\]")
    term.type("no\n")
    term.expect(r"reason")
    term.type("wrong host\n")
    assert term.exit_code() == 4, term.screen
    assert not (lab.root / "order").exists()
    rejected = lab.of(lab.only_run(), "step.rejected", step="wipe")
    assert rejected and rejected[0]["data"]["note"] == "wrong host"


def test_operator_pauses_and_resumes_later(lab: Lab) -> None:
    term = Terminal(lab, *_run_args(lab, lab.book("gate")))
    term.expect(r"\[done/reject/pause\]")
    term.type("pause\n")
    assert term.exit_code() == 5
    run_id = lab.only_run()
    assert f"drp resume {run_id}" in term.expect(r"drp resume")
    later = Terminal(lab, "resume", run_id, "--state-dir", str(lab.state))
    later.expect(r"\[done/reject/pause\]")
    later.type("done\n")
    later.expect(r"note for the report")
    later.type("\n")
    assert later.exit_code() == 0, later.screen
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]


def test_ctrl_c_at_a_manual_prompt_interrupts_at_once_and_resume_asks_again(lab: Lab) -> None:
    term = Terminal(lab, *_run_args(lab, lab.book("gate")))
    term.expect(r"swap-disk \[done/reject/pause\]")
    pressed = time.monotonic()
    term.type("\x03")  # Ctrl-C: the terminal sends SIGINT to drp
    assert term.exit_code(seconds=10) == 130, term.screen
    assert time.monotonic() - pressed < 5, "Ctrl-C waited for the prompt to be answered"
    run_id = lab.only_run()
    assert f"drp resume {run_id}" in term.expect(r"drp resume")
    assert lab.outcome(run_id) == "interrupted"
    assert lab.of(run_id, "step.finished", step="swap-disk")[-1]["outcome"] == "interrupted"
    # the gate was left unanswered: nobody approved, rejected or paused it
    assert not lab.of(run_id, "step.approved") and not lab.of(run_id, "step.rejected")
    assert (lab.root / "order").read_text().split() == ["prepared"]

    later = Terminal(lab, "resume", run_id, "--state-dir", str(lab.state))
    later.expect(r"Replace the disk in bay 2")
    later.expect(r"swap-disk \[done/reject/pause\]")
    later.type("done\n")
    later.expect(r"note for the report")
    later.type("\n")
    assert later.exit_code() == 0, later.screen
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]


def test_ctrl_c_at_a_confirmation_leaves_it_to_be_asked_again(lab: Lab) -> None:
    book = lab.runbook(DESTRUCTIVE)
    term = Terminal(lab, *_run_args(lab, book))
    term.expect(r"wipe \[yes/no/pause\]")
    term.type("\x03")
    assert term.exit_code(seconds=10) == 130, term.screen
    run_id = lab.only_run()
    assert not lab.of(run_id, "step.approved") and not lab.of(run_id, "step.rejected")
    assert not (lab.root / "order").exists()

    later = Terminal(lab, "resume", run_id, "--state-dir", str(lab.state))
    later.expect(r"wipe \[yes/no/pause\]")
    later.type("yes\n")
    assert later.exit_code() == 0, later.screen
    assert (lab.root / "order").read_text().split() == ["wiped"]


LATE = """\
name: late
targets: all
steps:
  - id: swap-disk
    manual: Replace the disk in bay 2.
    gate_timeout: 1s
    on_timeout: {policy}
  - id: finish
    run: echo finished >> {{{{ vars.dir }}}}/order
"""


def test_a_prompt_left_unanswered_past_its_deadline_pauses_the_run(lab: Lab) -> None:
    book = lab.runbook(LATE.format(policy="pause"))
    term = Terminal(lab, *_run_args(lab, book))
    term.expect(r"swap-disk \[done/reject/pause\]")
    assert term.exit_code() == 5, term.screen  # nobody typed: paused at the deadline
    (late,) = lab.of(lab.only_run(), "step.deadline", step="swap-disk")
    assert late["data"]["on_timeout"] == "pause"
    assert not (lab.root / "order").exists()


def test_a_prompt_past_its_deadline_that_notifies_still_takes_the_answer(lab: Lab) -> None:
    book = lab.runbook(LATE.format(policy="notify"))
    term = Terminal(lab, *_run_args(lab, book))
    term.expect(r"swap-disk \[done/reject/pause\]")
    deadline = time.monotonic() + 30
    while not lab.of(lab.only_run(), "step.deadline") and time.monotonic() < deadline:
        term.expect(r"swap-disk", 0.5)  # keep reading the terminal while waiting
    assert lab.of(lab.only_run(), "step.deadline", step="swap-disk")
    term.expect(r"(?s)no answer within 1.0s \(gate_timeout\): still waiting.*\[done/reject/pause\]")
    term.type("done\n")
    term.expect(r"note for the report")
    term.type("\n")
    assert term.exit_code() == 0, term.screen
    assert (lab.root / "order").read_text().split() == ["finished"]
