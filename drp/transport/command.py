"""Pure helpers shared by the transports: building command lines and splitting output.

Nothing here touches the network: the SSH transport wraps every command so the
remote shell reports its process id first (needed to kill the command's whole
process group on timeout or Ctrl-C; see :mod:`drp.transport.attempts`), the
engine wraps commands for privilege escalation with :func:`wrap_become` (whose
:class:`SudoLine` result tells the transport to kill through sudo too), and both
transports feed ``on_output``
through :class:`LineSplitter`.
"""

from __future__ import annotations

import codecs
import re
import shlex
from collections.abc import Callable

from drp.inventory.model import Become
from drp.transport.attempts import LIVE_FUNCTION, frame, new_end, reader

#: Written to stderr by the wrapper before the command runs; stripped again.
PID_MARKER = "\x1edrp-pid:"
_PID_LINE = re.compile(rb"\x1edrp-pid:(\d+)\n")


def take_pid_marker(stderr: bytes) -> tuple[int | None, bytes]:
    """Find the PID line in ``stderr``; return the PID and stderr without that line."""
    match = _PID_LINE.search(stderr)
    if match is None:
        return None, stderr
    return int(match.group(1)), stderr[: match.start()] + stderr[match.end() :]


#: What :func:`kill_group_command` prints last: ``drp-kill:`` and one of
#: ``gone`` (it ran and is gone now), ``absent`` (nothing of it was left to kill),
#: ``alive`` (it outlived KILL) or ``unknown`` (no usable ``ps`` to tell).
KILL_MARKER = "drp-kill:"
_KILL_LINE = re.compile(r"^drp-kill:(gone|absent|alive|unknown)$", re.MULTILINE)

# ``live`` is true while the group has a member that is not a zombie and is at
# least ``m`` seconds old. It reads ``ps`` rather than trusting ``kill -0``,
# which also fails with EPERM when the group exists but belongs to another user
# (a sudo'd command seen by the SSH user). The age test (``m`` > 0) is for a
# group found again after a lost connection: a group whose members are all
# younger than the command it stands for is some later process that reused the
# id (after a reboot, say), and is left alone. ``kill -s SIG -- -PGID`` is the
# spelling every shell takes: dash reads ``kill -TERM -- -PGID`` as a bad number.
_KILL_SCRIPT = (
    r"""g={pgid}; m={min_age}
"""
    + LIVE_FUNCTION
    + r"""
v=gone; a=absent
if ! ps -A -o pgid= -o stat= -o etime= >/dev/null 2>&1; then  # kill -0 then, only root's counts
  [ "$m" -gt 0 ] && {{ echo {marker}unknown; exit 0; }}
  [ "$(id -u)" -eq 0 ] || {{ v=unknown; a=unknown; }}
  live() {{ kill -s 0 -- -"$g" 2>/dev/null; }}
fi
live || {{ echo {marker}$a; exit 0; }}
kill -s TERM -- -"$g"; i=0
while live && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done
live && kill -s KILL -- -"$g"; i=0
while live && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done
if live; then echo {marker}alive; else echo {marker}$v; fi"""
)


def kill_group_command(pgid: int, grace: float = 2.0, *, min_age: int = 0) -> str:
    """Shell line that kills a process group (TERM, then KILL after ``grace``) and says how it went.

    Its last stdout line is :data:`KILL_MARKER` and a verdict (see
    :func:`kill_verdict`); ``kill``'s own complaints (not permitted) go to
    stderr. With ``min_age``, the group is only touched if one of its members
    has run for at least that many seconds.
    """
    ticks = max(1, int(grace * 10))
    return _KILL_SCRIPT.format(pgid=pgid, min_age=max(0, min_age), ticks=ticks, marker=KILL_MARKER)


def kill_verdict(stdout: str) -> str | None:
    """The verdict :func:`kill_group_command` printed, or None if it never got that far."""
    found = _KILL_LINE.findall(stdout)
    return found[-1] if found else None


# With a password: read it (stdin's first line) into a variable and give it to sudo
# through a one-shot SUDO_ASKPASS helper. The helper holds no secret (it prints a
# variable only sudo's environment has), lives in $HOME (CIS-hardened hosts mount
# /tmp noexec) and deletes itself when run: a wrong password costs one attempt.
_SUDO_ASKPASS_SCRIPT = r"""IFS= read -r drp_pw || {{
  echo "drp: no sudo password on stdin" >&2; exit 125; }}
askpass="$(mktemp "${{HOME:-/tmp}}/.drp-askpass.XXXXXX" 2>/dev/null || mktemp)" || exit 125
helper='#!/bin/sh\nrm -f "$0"\nprintf "%%s\\n" "$DRP_BECOME_PW"\n'
printf "$helper" > "$askpass" && chmod 700 "$askpass" || {{
  rm -f "$askpass"; echo "drp: cannot write the sudo askpass helper" >&2; exit 125; }}
DRP_BECOME_PW="$drp_pw" SUDO_ASKPASS="$askpass" sudo -k -A -u {user} -- {inner}
rc=$?; rm -f "$askpass"; exit $rc"""


class SudoLine(str):
    """A command line built by :func:`wrap_become`: a plain ``str`` that remembers how.

    A transport that has to kill such a command (timeout, Ctrl-C, a lost
    connection) kills it through sudo the same way (``become``, with the same
    ``password``), since the SSH user may not signal the processes sudo started.
    Anything that treats it as a ``str`` sees just the line; the password is
    never part of it (nor of its ``repr``).
    """

    become: Become
    password: str | None

    def __new__(cls, line: str, become: Become, password: str | None) -> SudoLine:
        self = super().__new__(cls, line)
        self.become = become
        self.password = password
        return self


def wrap_become(
    command: str, become: Become, password: str | None, *, stdin: str | None = None
) -> tuple[str, str]:
    """Wrap ``command`` in sudo; return the command line and the stdin to send.

    The command itself never appears in the line (nor in any process's
    arguments on the host): the shell sudo starts reads it from stdin (see
    :func:`drp.transport.attempts.reader`), and the command's own ``stdin``
    follows it. Without a password, ``-n`` makes sudo fail instead of waiting
    for a prompt. With one, the password travels as the first line of stdin but
    reaches only sudo, and only if sudo asks (see ``_SUDO_ASKPASS_SCRIPT``): on
    a NOPASSWD host, or when already root, it is never used. ``-k`` ignores
    cached credentials, so what happens does not depend on an earlier command.
    The line is a :class:`SudoLine`, so the transport that runs it knows to
    kill it through sudo as well.
    """
    user = shlex.quote(become.user)
    end = new_end()
    body = frame(command, end) + (stdin or "")
    if password is None:
        line = f"sudo -n -u {user} -- /bin/sh -c {shlex.quote(reader(end))}"
        return SudoLine(line, become, None), body
    inner = "/bin/sh -c " + shlex.quote("unset DRP_BECOME_PW; " + reader(end))
    line = _SUDO_ASKPASS_SCRIPT.format(user=user, inner=inner)
    return SudoLine(line, become, password), password + "\n" + body


def first_line(command: str, limit: int = 80) -> str:
    """The command's first line, shortened for error messages."""
    line = command.strip().splitlines()[0] if command.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class LineSplitter:
    """Turn output chunks into complete lines for an ``on_output`` callback.

    Decodes UTF-8 incrementally (a character split across chunks is kept
    whole; invalid bytes become U+FFFD) and passes each line, without its
    newline, through ``redact`` first. :meth:`flush` delivers a last line that
    has no newline.
    """

    def __init__(
        self, callback: Callable[[str], None] | None, redact: Callable[[str], str] = str
    ) -> None:
        self._callback = callback
        self._redact = redact
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, chunk: bytes) -> None:
        if self._callback is None:
            return
        *complete, self._partial = (self._partial + self._decoder.decode(chunk)).split("\n")
        for line in complete:
            self._callback(self._redact(line))

    def flush(self) -> None:
        if self._callback is None:
            return
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        if rest:
            self._callback(self._redact(rest))
