"""Opening a console and what its login looks like: the helpers of :mod:`drp.transport.console`.

- :func:`open_channel`: a pexpect channel on the console, either a program
  spawned on a raw local pty (``virsh console``, ``ipmitool … sol activate``:
  raw, so Ctrl-C and CR reach the host, not the program) or a socket
  (``unix:/path``, ``tcp:HOST:PORT``) read with pexpect's fdspawn;
- :func:`login_patterns`: what a console may show while drp logs in, in the
  order :meth:`ConsoleTransport._login` tells them apart;
- :func:`quiet`: whether a prompt is the last thing shown;
- :func:`password_hint`: where the login password comes from, for messages.
"""

from __future__ import annotations

import re
import shlex
import socket
import tty
from typing import TYPE_CHECKING

import pexpect
import pexpect.fdpexpect

from drp.inventory.model import Console

if TYPE_CHECKING:
    Channel = pexpect.spawn[bytes] | pexpect.fdpexpect.fdspawn[bytes]
    Pattern = (
        re.Pattern[str]
        | re.Pattern[bytes]
        | str
        | bytes
        | type[pexpect.EOF]
        | type[pexpect.TIMEOUT]
    )

POLL = 0.25  # the channel's default read timeout
_INCORRECT = re.compile(rb"Login incorrect|[Aa]uthentication failure|Permission denied")

# indexes into login_patterns()
LOGIN, PASSWORD, INCORRECT, SHELL, SILENT = range(5)


def open_channel(console: Console) -> Channel:
    """A channel on ``console``; OSError, ValueError or pexpect's errors when it cannot open."""
    if console.command is not None:
        argv = shlex.split(console.command)
        child: Channel = pexpect.spawn(
            argv[0], argv[1:], timeout=POLL, maxread=65536, echo=False, encoding=None
        )
        tty.setraw(child.child_fd)
        return child
    kind, _, where = (console.socket or "").partition(":")
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(console.timeout)
        try:
            sock.connect(where)
        except OSError:
            sock.close()
            raise
    else:
        name, _, port = where.rpartition(":")
        sock = socket.create_connection((name.strip("[]"), int(port)), console.timeout)
    sock.setblocking(True)
    return pexpect.fdpexpect.fdspawn(sock.detach(), timeout=POLL, maxread=65536)


def login_patterns(console: Console) -> list[Pattern]:
    """Login prompt, password prompt, refusal, shell prompt, silence: see the indexes above."""
    return [
        re.compile(console.login_prompt.encode()),
        re.compile(console.password_prompt.encode()),
        _INCORRECT,
        re.compile(console.shell_prompt.encode()),
        pexpect.TIMEOUT,
    ]


def quiet(child: Channel, seconds: float = 0.5) -> bool:
    """True when nothing more shows for ``seconds`` (what does is kept for expect)."""
    if child.buffer:
        return False
    try:
        data = child.read_nonblocking(65536, timeout=seconds)
    except pexpect.TIMEOUT:
        return True
    child.buffer = child.buffer + data
    return False


def password_hint(console: Console) -> str:
    if console.password_env:
        return f" (password from ${console.password_env})"
    return " (set password_env in the inventory's console:, or pass --ask-console-pass)"
