"""Path selection: SSH (primary, fallbacks, jump hosts), else the host's serial console.

The one place drp decides how to reach a host. :class:`SshTransport` tries
the SSH paths in order (primary, then each fallback, directly or through its
bastion); when all fail with a network error and the host has a ``console:``
in the inventory and the step about to run allows it (``console: true`` on
the runbook or the step), :class:`PathTransport` runs the step over the
console instead. A key or login SSH refuses is never worked around.

SSH is tried again whenever a new step begins (:meth:`allow_console`), so
drp goes back to SSH as soon as it answers, logging out of the console.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from drp.errors import AuthError, ConnectError, HostKeyError
from drp.results import CommandResult
from drp.transport.base import ConnectInfo, OutputCallback, Transport

if TYPE_CHECKING:
    from drp.transport.attempts import Leftover
    from drp.transport.kill import Kill


class PathTransport:
    """A host's SSH transport with its console as the path of last resort."""

    def __init__(self, ssh: Transport, console: Transport) -> None:
        self._ssh = ssh
        self._console = console
        self._current: Transport | None = None
        self._allowed = False
        self._recheck = True
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return self._ssh.host

    def allow_console(self, allowed: bool) -> None:
        """What runs next may (or may not) use the console; SSH is tried first again."""
        with self._lock:
            self._allowed, self._recheck = allowed, True

    def connect(self) -> ConnectInfo:
        """The path to use now: SSH when it answers, else the console when allowed."""
        with self._lock:
            on_console = self._current is self._console
            if on_console and self._allowed and not self._recheck:
                return self._console.connect()
            self._recheck = False
            try:
                info = self._ssh.connect()
            except (AuthError, HostKeyError):
                raise
            except ConnectError as exc:
                if not self._allowed:
                    raise ConnectError(
                        self.host,
                        str(exc).removeprefix(f"{self.host}: ")
                        + " (this step does not allow the console)",
                    ) from None
                self._current = self._console
                try:
                    return self._console.connect()
                except AuthError:
                    raise
                except ConnectError as console_exc:
                    raise ConnectError(
                        self.host,
                        f"{str(exc).removeprefix(f'{self.host}: ')}; "
                        f"console: {str(console_exc).removeprefix(f'{self.host}: ')}",
                    ) from None
            if on_console:
                self._console.close()  # back to SSH: log out, never leave a shell open
            self._current = self._ssh
            return info

    def _path(self) -> Transport:
        self.connect()
        current = self._current
        assert current is not None
        return current

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        on_output: OutputCallback | None = None,
        label: str = "",
        last: bool = False,
    ) -> CommandResult:
        return self._path().run(
            command, timeout=timeout, stdin=stdin, on_output=on_output, label=label, last=last
        )

    def leftovers(self) -> list[Leftover]:
        return self._path().leftovers()

    def kill_leftover(self, leftover: Leftover) -> Kill:
        return self._path().kill_leftover(leftover)

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        self._path().put(data, dest, mode=mode)

    def get(self, path: str) -> bytes:
        return self._path().get(path)

    def cancel(self) -> None:
        self._ssh.cancel()
        self._console.cancel()

    def close(self) -> None:
        """Close both paths (the console logs out); the next connect() decides again."""
        with self._lock:
            self._current, self._recheck = None, True
        self._ssh.close()
        self._console.close()
