"""One verified SSH connection to a host, opened on demand: addresses, fallbacks, jump hosts.

:class:`SshLink` connects to the primary address, else each fallback address
in order, directly or through a jump host (a ``direct-tcpip`` channel over the
bastion's own verified link): the host's, or the one a fallback address names,
or none for a fallback that says ``jump: none``. It keeps the connection and
forgets it once it died. :class:`drp.transport.ssh_commands.SshCommands` runs
commands on it. Host keys and connect failures: :mod:`drp.transport.ssh_keys`.
"""

from __future__ import annotations

import contextlib
import getpass
import threading

from drp.errors import ConnectError
from drp.inventory.model import Address, Host
from drp.transport.base import ConnectInfo
from drp.transport.paramiko_import import paramiko
from drp.transport.sockets import KEEPALIVE_SECONDS, UnreachableError, open_socket
from drp.transport.ssh_keys import new_client, raise_connect_failure


class SshLink:
    """One host's SSH connection, reused until it dies; a bastion's link opens tunnels."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._jumps: dict[Host, SshLink] = {}  # bastion -> its connection, opened lazily
        self._info: ConnectInfo | None = None

    @property
    def host(self) -> str:
        return self._host.name

    # -- connection -----------------------------------------------------------------

    def connect(self) -> ConnectInfo:
        """Open the connection (no-op when open); try fallback addresses on network failure."""
        with self._lock:
            if self._client is not None and self._info is not None and self._active():
                return self._info
            self._close_locked()
            return self._open_locked()

    def _active(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _open_locked(self) -> ConnectInfo:
        host = self._host
        addresses = [Address(host.address, host.port), *host.fallback]
        bastions = [host.jump_for(address) for address in addresses]
        failures: list[str] = []
        for index, (address, bastion) in enumerate(zip(addresses, bastions, strict=True)):
            try:
                self._client = self._connect_to(address, self._jump_to(bastion))
            except UnreachableError as exc:
                direct = " direct" if bastion is None and host.jump is not None else ""
                failures.append(f"{address.host}:{address.port}{direct} ({exc})")
                continue
            except BaseException:
                self._close_locked()
                raise
            transport = self._client.get_transport()
            if transport is not None:
                transport.set_keepalive(int(host.keepalive or KEEPALIVE_SECONDS))
            jump = bastion.name if bastion else None
            self._info = ConnectInfo(host.name, address.host, address.port, index > 0, jump)
            return self._info
        self._close_locked()
        same = host.jump is not None and all(b == host.jump for b in bastions)
        via = f" via jump host {host.jump.name}" if same and host.jump else ""
        raise ConnectError(host.name, f"unreachable{via}: " + "; ".join(failures))

    def _jump_to(self, bastion: Host | None) -> SshLink | None:
        """The connection to ``bastion`` (shared by the addresses that go through it)."""
        if bastion is None:
            return None
        if bastion not in self._jumps:
            self._jumps[bastion] = SshLink(bastion)
        return self._jumps[bastion]

    def _connect_to(self, address: Address, jump: SshLink | None) -> paramiko.SSHClient:
        host = self._host
        sock = open_socket(address, host.connect_timeout, jump)
        client = new_client(host)
        try:
            client.connect(
                address.host,
                port=address.port,
                username=host.user or getpass.getuser(),
                key_filename=host.key or list(host.identity_files) or None,  # type: ignore[arg-type]  # paramiko takes a list too
                look_for_keys=host.key is None and not host.identities_only,
                allow_agent=not (host.identities_only and (host.key or host.identity_files)),
                timeout=host.connect_timeout,
                banner_timeout=host.connect_timeout,
                auth_timeout=host.connect_timeout,
                sock=sock,
            )
        except BaseException as exc:
            client.close()
            sock.close()
            raise_connect_failure(host, address, exc)
        return client

    def open_tunnel(self, address: Address, timeout: float) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from this (bastion) host to ``address``."""
        self.connect()
        transport = self._transport()
        try:
            return transport.open_channel(
                "direct-tcpip", (address.host, address.port), ("127.0.0.1", 0), timeout=timeout
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not transport.is_active():
                self._dropped(transport)
            raise UnreachableError(f"via {self.host}: {exc or type(exc).__name__}") from None

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise ConnectError(self.host, "not connected")
        return transport

    def _dropped(self, transport: paramiko.Transport | None) -> None:
        """Forget a dead connection so the next connect() opens a new one."""
        with self._lock:
            current = self._client.get_transport() if self._client else None
            if transport is None or current is transport:
                self._close_locked()

    def close(self) -> None:
        """Close the connection (idempotent); a later connect() reconnects.

        What a lost connection left running is still killed on that reconnect.
        """
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        for closable in (self._sftp, self._client, *self._jumps.values()):
            if closable is not None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    closable.close()
        self._sftp = self._client = None
        self._jumps = {}
        self._info = None


def fetch_server_key(host: Host, address: Address) -> tuple[str, str]:
    """The key (type, base64) the server at ``address`` presents, without authenticating."""
    bastion = host.jump_for(address)
    jump = SshLink(bastion) if bastion is not None else None
    try:
        sock = open_socket(address, host.connect_timeout, jump)
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=host.connect_timeout)
            key = transport.get_remote_server_key()
            return key.get_name(), key.get_base64()
        finally:
            transport.close()
    except (UnreachableError, OSError, EOFError, paramiko.SSHException) as exc:
        raise ConnectError(
            host.name, f"cannot read host key from {address.host}:{address.port}: {exc}"
        ) from None
    finally:
        if jump is not None:
            jump.close()
