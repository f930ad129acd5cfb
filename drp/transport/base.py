"""The Transport protocol: the one seam between the engine and the network.

The engine only ever talks to a :class:`Transport`. ``ssh.py`` implements it
with paramiko (on ``ssh_link.py`` and ``ssh_commands.py``), ``local.py`` with
subprocess, and ``drp.testing`` ships a scriptable fake for unit tests.

Contract:
- ``connect()`` opens the connection (idempotent: a no-op when open) and
  returns which address was used; raises :class:`drp.errors.ConnectError`
  (or :class:`drp.errors.HostKeyError`) when no address works.
- ``run()`` runs one shell command line and returns a
  :class:`drp.results.CommandResult` whatever the exit code. It raises
  :class:`drp.errors.ConnectError` when the connection is lost (the caller
  decides whether to retry) and :class:`drp.errors.CommandTimeout` after
  killing the command (and its process group) on the host when ``timeout``
  elapses. ``on_output`` receives stdout lines as they arrive (progress).
  A line built by :func:`drp.transport.command.wrap_become` (a ``SudoLine``)
  is killed through sudo too. The error says the command "was killed" only
  when the host confirmed its process group is gone, and names the group
  otherwise.
- A command whose connection was lost under it may still run on the host:
  the SSH transport kills it (and confirms) when it next connects, before it
  runs or writes anything else, and the next ``run()``'s stderr starts with a
  ``drp: killed process group N on HOST, left running by a lost connection``
  line. Until such a group is confirmed gone, ``run()`` and ``put()`` raise
  :class:`drp.errors.ConnectError` instead of starting a second copy.
- No command's text appears in a process's arguments on the host: it
  travels on stdin (see :mod:`drp.transport.attempts`). ``label`` names the
  attempt (``STEP PHASE ATTEMPT``) in the marker the wrapper leaves; ``last``
  says it is the session's last command (the wrapper then removes the
  session's marker on the host).
- ``leftovers()`` lists the attempts of this run that an *earlier* drp process
  started and that still run on the host (it was killed, or lost the link);
  ``kill_leftover()`` kills one and says how that went.
- ``put()`` writes bytes to a remote path atomically (temp file + rename).
- ``cancel()`` may be called from another thread (Ctrl-C): it kills every
  command this transport started that is still running (the whole process
  group on the host) and makes the in-flight ``run()`` raise
  :class:`drp.errors.Cancelled`.
- ``close()`` is idempotent; a later ``connect()`` reconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from drp.results import CommandResult

if TYPE_CHECKING:  # drp.transport.kill loads the inventory model: not for drp --help
    from drp.transport.attempts import Leftover
    from drp.transport.kill import Kill

OutputCallback = Callable[[str], None]


@dataclass(frozen=True)
class ConnectInfo:
    """How a connection was made: which address, whether it was a fallback path."""

    host: str
    address: str
    port: int
    via_fallback: bool = False
    via_jump: str | None = None
    via_console: bool = False  # the host's serial console (address: its socket or program)


class Transport(Protocol):
    """What the engine needs from a host connection."""

    @property
    def host(self) -> str: ...

    def connect(self) -> ConnectInfo: ...

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        on_output: OutputCallback | None = None,
        label: str = "",
        last: bool = False,
    ) -> CommandResult: ...

    def leftovers(self) -> list[Leftover]: ...

    def kill_leftover(self, leftover: Leftover) -> Kill: ...

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None: ...

    def get(self, path: str) -> bytes: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PathChoice(Protocol):
    """A transport with more than one path (:mod:`drp.transport.paths`): SSH, else the console.

    The engine says before each step whether that step may use the console.
    """

    def allow_console(self, allowed: bool) -> None: ...
