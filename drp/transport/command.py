"""Pure helpers shared by the transports: building command lines and splitting output.

Nothing here touches the network: the SSH transport wraps every command so the
remote shell reports its process id first (needed to kill the command's whole
process group on timeout or Ctrl-C), the engine wraps commands for privilege
escalation with :func:`wrap_become`, and both transports feed ``on_output``
through :class:`LineSplitter`.
"""

from __future__ import annotations

import codecs
import re
import shlex
from collections.abc import Callable

from drp.inventory.model import Become

#: Written to stderr by the wrapper before the command runs; stripped again.
PID_MARKER = "\x1edrp-pid:"
_PID_LINE = re.compile(rb"\x1edrp-pid:(\d+)\n")


def wrap_with_pid(command: str) -> str:
    """The line sshd's login shell runs: report ``$$`` on stderr, then exec the command.

    sshd starts exec sessions with ``setsid``, so that PID is also the
    process-group id of everything the command starts.
    """
    return f"printf '\\036drp-pid:%s\\n' $$ >&2; exec /bin/sh -c {shlex.quote(command)}"


def take_pid_marker(stderr: bytes) -> tuple[int | None, bytes]:
    """Find the PID line in ``stderr``; return the PID and stderr without that line."""
    match = _PID_LINE.search(stderr)
    if match is None:
        return None, stderr
    return int(match.group(1)), stderr[: match.start()] + stderr[match.end() :]


def kill_group_command(pgid: int, grace: float = 2.0) -> str:
    """Shell line that sends TERM to a process group, then KILL if it outlives ``grace``."""
    ticks = max(1, int(grace * 10))
    return (
        f"kill -TERM -- -{pgid} 2>/dev/null || exit 0; i=0; "
        f"while kill -0 -- -{pgid} 2>/dev/null && [ $i -lt {ticks} ]; "
        f"do sleep 0.1; i=$((i+1)); done; "
        f"kill -KILL -- -{pgid} 2>/dev/null; exit 0"
    )


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


def wrap_become(
    command: str, become: Become, password: str | None, *, stdin: str | None = None
) -> tuple[str, str | None]:
    """Wrap ``command`` in sudo; return the command line and the stdin to send.

    Without a password, ``-n`` makes sudo fail instead of waiting for a prompt.
    With one, the password travels as the first line of stdin but reaches only
    sudo, and only if sudo asks (see ``_SUDO_ASKPASS_SCRIPT``): on a NOPASSWD
    host, or when already root, it is never used, and the command's stdin is
    exactly ``stdin`` either way. ``-k`` ignores cached credentials, so what
    happens does not depend on an earlier command.
    """
    user = shlex.quote(become.user)
    if password is None:
        return f"sudo -n -u {user} -- /bin/sh -c {shlex.quote(command)}", stdin
    inner = "/bin/sh -c " + shlex.quote("unset DRP_BECOME_PW; " + command)
    line = _SUDO_ASKPASS_SCRIPT.format(user=user, inner=inner)
    return line, password + "\n" + (stdin or "")


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
