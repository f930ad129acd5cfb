"""Run options and the operator seam: how the engine asks a human, without printing.

The CLI implements :class:`Operator` with console prompts; tests implement it
with scripted answers. The engine only ever calls ``decide``.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    PAUSE = "pause"
    LATE = "late"  # the gate's gate_timeout passed before an answer (never journaled as one)


GateKind = Literal["manual", "confirm", "in-doubt"]
#: The answers each kind of gate takes at a terminal: approve, reject, pause (in that
#: order). The question's text and the prompt both use these words.
GATE_CHOICES: dict[GateKind, tuple[str, str, str]] = {
    "manual": ("done", "reject", "pause"),
    "confirm": ("yes", "no", "pause"),
    "in-doubt": ("rerun", "skip", "pause"),
}


@dataclass(frozen=True)
class GateRequest:
    """A question for the operator: a manual gate, a destructive step, an in-doubt step."""

    kind: GateKind
    host: str
    step: str
    title: str
    text: str
    deadline: float | None = None  # time.monotonic() by which to answer, else Decision.LATE


@dataclass(frozen=True)
class GateAnswer:
    decision: Decision
    by: str
    note: str = ""


class Operator(Protocol):
    """Someone (or something) that answers gates. Called from worker threads, one at a time."""

    def decide(self, request: GateRequest) -> GateAnswer: ...


class NoOperator:
    """Nobody at the keyboard: every open question pauses the run (it can be resumed)."""

    def decide(self, request: GateRequest) -> GateAnswer:
        return GateAnswer(Decision.PAUSE, by="", note="no interactive operator")


@dataclass(frozen=True)
class Approval:
    """One approval of a gate by someone else, its signature checked."""

    by: str  # the approver's principal in the allowed_signers file
    note: str
    key: str  # the fingerprint of the key that signed it
    signed: str  # when (as the approval states it)


@dataclass(frozen=True)
class ApprovalCheck:
    """What a gate's approvals amount to now: the ones that count, and the ones refused."""

    valid: tuple[Approval, ...] = ()
    refused: tuple[str, ...] = ()  # one line each: whose, and why it does not count
    trouble: str = ""  # where approvals could not be read now (the store down), if anywhere


class ApprovalSource(Protocol):
    """Where a gate with ``approvers:`` finds the approvals given with ``drp approve``.

    The CLI implements it over the run's directory and the store
    (:mod:`drp.journal.approvals`); the engine only polls it.
    """

    def facts(self) -> dict[str, object]:
        """Who runs the run, as step.waiting records it (their approval never counts)."""
        ...

    def check(self, step: str, host: str, approvers: tuple[str, ...]) -> ApprovalCheck:
        """The approvals of ``step`` on ``host`` by ``approvers``, each verified."""
        ...


InDoubtPolicy = Literal["ask", "retry", "skip"]


@dataclass(frozen=True)
class RunOptions:
    """Everything that shapes a run besides the plan; one frozen value, not ten parameters."""

    run_id: str
    operator: str
    forks: int = 10
    serial: int | str | None = None
    max_fail_percentage: float | None = None
    yes: bool = False
    approve: frozenset[str] = field(default_factory=frozenset)
    in_doubt: InDoubtPolicy = "ask"
    kill_in_doubt: bool = False  # kill an earlier attempt still running instead of waiting
    sudo_password: str | None = None
    host_sudo_passwords: Mapping[str, str] = field(default_factory=dict)
    # the console login password asked at the start (--ask-console-pass), for the hosts
    # whose inventory console: names no password_env of its own
    console_password: str | None = None
    lock: bool = True
    command_line: str = ""
    output_dir: str | None = None  # where a long output is spilled (RUN_DIR/output)
    # (seq, hash) of the journal's last record on disk: the head a host witness states
    chain_head: Callable[[], tuple[int, str]] | None = field(default=None, compare=False)
    # where gates with approvers: find their approvals (None: such a gate pauses)
    approvals: ApprovalSource | None = field(default=None, compare=False)
    approval_poll: float = 2.0  # seconds between two looks for new approvals

    def password_for(self, host: str) -> str | None:
        """The sudo password for ``host``: its own (inventory ``password_env``), else the run's."""
        return self.host_sudo_passwords.get(host) or self.sudo_password


@dataclass(frozen=True)
class HostResume:
    """What an earlier session of the same run already did on one host."""

    done: frozenset[str] = frozenset()
    in_doubt: frozenset[str] = frozenset()
    acted: frozenset[str] = frozenset()  # done by running (not skipped): what rollback undoes
    captures: dict[str, object] = field(default_factory=dict)


def default_operator() -> str:
    """``user@machine`` of whoever runs drp (overridable with ``--operator``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
