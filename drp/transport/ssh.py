"""The SSH transport: one verified paramiko connection per host, reused for every command.

:class:`SshTransport` implements :class:`drp.transport.base.Transport`, in layers:

- :mod:`drp.transport.ssh_link`: connect to the primary address, else each
  fallback in order, directly or through a jump host; host keys are checked
  against known_hosts and never auto-accepted (:mod:`drp.transport.ssh_keys`,
  which also turns a failed connect into drp's errors);
- :mod:`drp.transport.ssh_commands`: each command on a fresh exec channel of
  that connection, killed by process group on a timeout or a cancel; what a
  lost connection left running is killed before anything else runs;
- here: put/get files over SFTP on the same connection, writes atomic by rename.

These four modules are the only ones that use paramiko (imported through
:mod:`drp.transport.paramiko_import`). What needs no paramiko lives beside
them: opening the TCP socket in :mod:`drp.transport.sockets`, the kill line,
its verdict and the orphan records and messages in :mod:`drp.transport.kill`.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from collections.abc import Callable

from drp.errors import ConnectError, StepFailed
from drp.transport.paramiko_import import paramiko
from drp.transport.ssh_commands import SshCommands


class SshTransport(SshCommands):
    """Run commands on one host over a single reused SSH connection."""

    # -- files ------------------------------------------------------------------------

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``dest`` atomically: temp file in the same directory, then rename."""
        self.connect()
        self._settle_orphans()  # a first attempt left running might still write there
        directory, name = posixpath.split(dest)
        tmp = posixpath.join(directory, f".{name}.drp-{uuid.uuid4().hex[:12]}")
        sftp = self._sftp_client()
        try:
            keep = mode if mode is not None else _existing_mode(sftp, dest)
            with sftp.open(tmp, "wb") as handle:
                handle.set_pipelined(True)
                handle.write(data)
            if keep is not None:
                sftp.chmod(tmp, keep)
            sftp.posix_rename(tmp, dest)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._file_error(exc, f"put {dest}", lambda: sftp.remove(tmp))

    def get(self, path: str) -> bytes:
        """Read a whole remote file."""
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as handle:
                handle.prefetch()
                return handle.read()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._file_error(exc, f"get {path}", None)
            raise  # unreachable: _file_error always raises

    def _sftp_client(self) -> paramiko.SFTPClient:
        self.connect()
        with self._lock:
            if self._sftp is None:
                transport = self._client.get_transport() if self._client else None
                if transport is None:
                    raise ConnectError(self.host, "not connected")
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    raise ConnectError(self.host, f"cannot open SFTP: {exc}") from None
                if self._sftp is None:
                    raise ConnectError(self.host, "cannot open SFTP")
            return self._sftp

    def _file_error(
        self, exc: BaseException, what: str, cleanup: Callable[[], object] | None
    ) -> None:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            self._dropped(transport)
            raise ConnectError(self.host, f"connection lost during {what}: {exc}") from None
        if cleanup is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                cleanup()
        raise StepFailed(f"{self.host}: {what} failed: {exc}") from None


def _existing_mode(sftp: paramiko.SFTPClient, path: str) -> int | None:
    try:
        st_mode = sftp.stat(path).st_mode
    except OSError:
        return None
    return None if st_mode is None else st_mode & 0o7777
