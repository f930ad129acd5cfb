"""Killing a command's process group on a host, and what a lost connection left running.

Paramiko-free bookkeeping for :mod:`drp.transport.ssh`: the kill line to run
(:func:`drp.transport.command.kill_group_command`, through sudo when the command
ran through sudo), reading its verdict into a :class:`Kill`, the
:class:`Orphan` record of a command whose connection died under it, and the
messages that say what became of either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from drp.errors import ConnectError
from drp.inventory.model import Become
from drp.transport.command import first_line, kill_group_command, wrap_become

KILL_GRACE_SECONDS = 2.0
KILL_ANSWER_SECONDS = KILL_GRACE_SECONDS + 10  # the kill script's TERM wait, KILL wait, ps calls


@dataclass(frozen=True)
class Kill:
    """How killing a process group went: the kill script's verdict, or ``failed`` to ask."""

    verdict: str  # gone | absent | alive | unknown | failed
    detail: str = ""

    @property
    def confirmed(self) -> bool:
        """The host said the group is gone (killed now, or ended before)."""
        return self.verdict in ("gone", "absent")


@dataclass(frozen=True)
class Orphan:
    """A command whose connection died while it ran: it may still run on the host."""

    pgid: int
    since: float  # monotonic time its PID arrived
    command: str  # first line, for messages
    become: Become | None = None
    password: str | None = field(default=None, repr=False)

    def min_age(self) -> int:
        """Seconds a member of the group must have run to be this command, not a reused id."""
        age = int(time.monotonic() - self.since) - 1  # etime counts whole seconds
        return max(0, age)


def kill_line(
    pgid: int, become: Become | None, password: str | None, *, min_age: int = 0
) -> tuple[str, str | None]:
    """The kill script for group ``pgid`` (through sudo for ``become``) and the stdin to send."""
    script = kill_group_command(pgid, KILL_GRACE_SECONDS, min_age=min_age)
    return wrap_become(script, become, password) if become else (script, None)


def kill_outcome(verdict: str | None, said: str, *, alive: bool) -> Kill:
    """The :class:`Kill` for the script's ``verdict``; ``said`` is its (redacted) stderr line.

    ``alive`` says whether the connection was still up when the answer was read.
    """
    if verdict is None:
        if not alive:
            return Kill("failed", "connection lost while killing")
        return Kill("unknown", said or f"no answer within {KILL_ANSWER_SECONDS:g}s")
    if verdict == "alive":
        return Kill(verdict, "it outlived KILL" + (f": {said}" if said else ""))
    return Kill(verdict, "no usable ps on the host to tell" if verdict == "unknown" else "")


def how_killed(host: str, pid: int | None, killed: Kill | None) -> str:
    """What became of a stopped command: "was killed" only when the host confirmed it."""
    if pid is None or killed is None:
        return f"could not kill it on {host}: its process id never arrived"
    if killed.verdict == "gone":
        return "was killed"
    if killed.verdict == "absent":
        return "had ended before drp killed it"
    return f"could not confirm the kill of process group {pid} on {host} ({killed.detail})"


def cancelled_message(host: str, command: str, pid: int | None, killed: Kill | None) -> str:
    """The :class:`~drp.errors.Cancelled` message for a command cancel() stopped."""
    what = first_line(command)
    if killed is not None and killed.verdict == "gone":
        return f"{host}: cancelled; killed: {what}"
    return f"{host}: cancelled; {how_killed(host, pid, killed)}: {what}"


def settled_note(host: str, orphan: Orphan, killed: Kill) -> str | None:
    """The ``drp:`` note for an orphan whose kill went ``killed``; None while unconfirmed.

    Raises :class:`ConnectError` when the kill could not be asked at all.
    """
    if killed.verdict == "failed":
        raise ConnectError(
            host,
            f"{killed.detail}; process group {orphan.pgid}, left running by a lost "
            f"connection, is still to be killed: {orphan.command}",
        )
    if not killed.confirmed:
        return None
    lost = f"process group {orphan.pgid} on {host}, left running by a lost connection"
    if killed.verdict == "gone":
        return f"killed {lost}: {orphan.command}"
    return f"{lost}, had already ended: {orphan.command}"


def unsure_about(host: str, orphan: Orphan, killed: Kill) -> str:
    """One orphan whose end could not be confirmed, for :func:`still_running`."""
    return f"process group {orphan.pgid} on {host} ({killed.detail}): {orphan.command}"


def still_running(host: str, unsure: list[str]) -> ConnectError:
    """The error that stops a host while orphans may still run there."""
    return ConnectError(
        host,
        "could not confirm the kill of what a lost connection left running: "
        + "; ".join(unsure)
        + "; drp runs nothing more there until it is gone",
    )
