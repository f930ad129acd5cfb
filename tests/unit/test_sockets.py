"""The quick-ACK socket drp hands to paramiko: data is never lost, the socket stays usable."""

from __future__ import annotations

import socket

import pytest

from drp.transport.sockets import QUICKACK, QuickAckSocket, quick_acks

pytestmark = pytest.mark.skipif(not QUICKACK, reason="the platform has no TCP_QUICKACK")


def test_a_tcp_socket_becomes_quick_ack_and_keeps_its_peer_and_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        plain = socket.create_connection(server.getsockname(), timeout=3)
        peer, _ = server.accept()
        with peer, quick_acks(plain, 2.5) as quick:
            assert isinstance(quick, QuickAckSocket)
            assert plain.fileno() == -1  # detached: one owner of the descriptor
            assert quick.getpeername() == server.getsockname()
            assert quick.gettimeout() == 2.5
            peer.sendall(b"hostkeys-00")
            assert quick.recv(64) == b"hostkeys-00"
            assert quick.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # untouched
            peer.close()
            assert quick.recv(64) == b""  # end of stream still reads as such


def test_a_refused_option_never_loses_what_was_read() -> None:
    """setsockopt fails on a non-TCP socket; the bytes already read are still returned."""
    left, right = socket.socketpair()
    with right, QuickAckSocket(left.family, left.type, left.proto, fileno=left.detach()) as quick:
        right.sendall(b"data")
        assert quick.recv(16) == b"data"
