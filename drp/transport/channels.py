"""A command in flight on one SSH channel, and waiting on and reading from it.

Helpers of :mod:`drp.transport.ssh_commands`; they only call a channel's methods
(paramiko is imported by the ``ssh*.py`` modules, for types only here): is the command
finished, wait for news, collect a short command's whole output, send stdin
without deadlocking a chatty command.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drp.inventory.model import Become
from drp.transport.kill import Kill

if TYPE_CHECKING:
    from paramiko import Channel

CHUNK = 65536


@dataclass
class Running:
    """A command in flight: its channel, its remote PID once known, and who stopped it."""

    channel: Channel
    command: str
    become: Become | None = None  # run through sudo: kill it through sudo too
    password: str | None = field(default=None, repr=False)
    pid: int | None = None
    pid_at: float = 0.0  # monotonic time the PID arrived: the command has run since
    marked: bool = True  # the wrapper left its marker (see drp.transport.attempts)
    cancelled: bool = False
    killing: bool = False
    kill: Kill | None = None
    kill_done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def finished(channel: Channel) -> bool:
    if channel.recv_ready() or channel.recv_stderr_ready():
        return False
    return channel.closed or (bool(channel.eof_received) and channel.exit_status_ready())


def wait(channel: Channel, seconds: float) -> None:
    """Sleep until the channel has news (data, EOF, exit status) or ``seconds`` pass."""
    seconds = max(0.0, seconds)
    if channel.eof_received:  # data pipe stays readable after EOF: wait on the status
        channel.status_event.wait(seconds)
    else:
        select.select([channel], [], [], seconds)


def collect(channel: Channel, seconds: float) -> tuple[bytes, bytes]:
    """A short command's whole stdout and stderr (until it exits or ``seconds`` pass)."""
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + seconds
    while True:
        while channel.recv_ready():
            out += channel.recv(CHUNK)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(CHUNK)
        if finished(channel) or time.monotonic() >= deadline:
            return bytes(out), bytes(err)
        wait(channel, min(0.1, deadline - time.monotonic()))


def feed_stdin(channel: Channel, data: bytes) -> None:
    """Send stdin from a helper thread so a chatty command cannot deadlock us."""

    def send() -> None:
        # OSError, EOFError or paramiko's SSHException: the pump notices the broken channel
        with contextlib.suppress(Exception):
            channel.sendall(data)
            channel.shutdown_write()

    if len(data) <= 16384:
        send()
    else:
        threading.Thread(target=send, name="drp-ssh-stdin", daemon=True).start()
