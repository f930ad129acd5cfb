"""The TCP side of an SSH connection: opening the socket a session runs over.

Paramiko-free (the SSH transport in :mod:`drp.transport.ssh` does the SSH):
:func:`open_socket` connects to one address directly (TCP_NODELAY, quick ACKs,
and kernel settings that notice a dead link within about a minute) or asks a
jump host for a tunnel, and raises :class:`UnreachableError` for network
trouble, which tells the transport to try the host's next address.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Protocol, TypeVar

from drp.errors import ConnectError, HostKeyError
from drp.inventory.model import Address

KEEPALIVE_SECONDS = 15
QUICKACK: int = getattr(socket, "TCP_QUICKACK", 0)  # Linux only: 0 where there is none
DEAD_LINK_SECONDS = 60

_T_co = TypeVar("_T_co", covariant=True)


class UnreachableError(Exception):
    """One address failed at the network level: the next one may work."""


class Bastion(Protocol[_T_co]):
    """A jump host's connection: opens a tunnel (a channel) to an address behind it."""

    def open_tunnel(self, address: Address, timeout: float) -> _T_co: ...


def open_socket(
    address: Address, timeout: float, jump: Bastion[_T_co] | None
) -> socket.socket | _T_co:
    """A connected socket to ``address``, or a tunnel to it through ``jump``."""
    if jump is not None:
        try:
            return jump.open_tunnel(address, timeout)
        except HostKeyError:
            raise  # names the bastion and how to trust it
        except ConnectError as exc:
            raise UnreachableError(f"jump host {exc}") from None
    try:
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
    except TimeoutError:
        raise UnreachableError(f"timed out after {timeout:g}s") from None
    except OSError as exc:
        raise UnreachableError(exc.strerror or str(exc)) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    notice_dead_links(sock)
    return quick_acks(sock, timeout)


class QuickAckSocket(socket.socket):
    """A socket that acknowledges what it receives at once (Linux ``TCP_QUICKACK``).

    sshd runs exec sessions with Nagle on (it sets TCP_NODELAY only for a pty).
    After login it sends a ``hostkeys-00`` notice, then holds its next small
    packet (the answer to our first channel open) until that notice is
    acknowledged, while our kernel delays the ACK in the hope of piggybacking
    it: a ~40 ms stall on every connection. The kernel leaves quick-ACK mode on
    its own, so it is set again after every read; one cheap syscall, whose
    failure never loses the data already read.
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        with contextlib.suppress(OSError):
            self.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        return data


def quick_acks(sock: socket.socket, timeout: float) -> socket.socket:
    """``sock`` as a :class:`QuickAckSocket`, where the platform has TCP_QUICKACK."""
    if not QUICKACK:
        return sock
    quick = QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    quick.settimeout(timeout)
    return quick


def notice_dead_links(sock: socket.socket) -> None:
    """Make a silently dead link an error within about a minute, not TCP's ~15 minutes.

    paramiko's keepalive only sends (every ``KEEPALIVE_SECONDS``) and never waits for
    an answer; with TCP_USER_TIMEOUT the kernel drops the connection once sent data
    stays unacknowledged that long, and TCP keepalives probe an idle one. Options a
    platform lacks are skipped.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_SECONDS),
        ("TCP_KEEPINTVL", 5),
        ("TCP_KEEPCNT", 6),
        ("TCP_USER_TIMEOUT", DEAD_LINK_SECONDS * 1000),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
