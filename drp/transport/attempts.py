"""Commands sent on stdin, and the marker that lets a later drp find a command again.

Paramiko-free shell text for :mod:`drp.transport.ssh` (and, for the script on
stdin, :mod:`drp.transport.local` and :func:`drp.transport.command.wrap_become`):

- **The script travels on stdin**, never in a process's arguments: the line
  the host runs is a fixed reader (:func:`reader`) that reads the script up to
  a random end line and ``eval``\\s it; what follows the end line is the
  command's own stdin. ``ps`` on the host (or on the controller) shows the
  reader, never a value the script holds.
- **Every attempt leaves a marker** (:func:`bootstrap`): before the script is
  read, the wrapper writes ``~/.drp/attempts/RUN/TOKEN`` (its process group,
  the sudo user it runs as, and a label such as ``nap action 1``) and empties
  it when the command exits; the next command of the session reuses it and the
  session's last command removes it. The journal holds the run id and host, so a later
  ``drp resume`` (another process: kill -9, a dropped link) lists the markers
  of its run (:func:`probe_command`) and learns which earlier attempts still
  run, before it runs anything on that host.
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass

#: Written to stderr by the wrapper when it could not write its marker.
NO_MARK = "\x1edrp-nomark\n"
#: Written to stderr, when asked, by the wrapper: ``$SHELL``, the login shell sshd ran.
_SHELL_LINE = re.compile(rb"\x1edrp-sh:([^\n]*)\n")

# A shell function, shared with the kill script: true while process group $g has a
# member that is not a zombie and has run at least $m seconds (an id reused by a
# younger process is not the command). Without ps, kill -0 (only root's counts).
LIVE_FUNCTION = r"""live() {{ ps -A -o pgid= -o stat= -o etime= | awk -v g="$g" -v m="$m" '
  $1 == g && $2 !~ /^Z/ {{ n = split($3, t, /[-:]/); s = t[n] + 60 * t[n - 1]
    if (n > 2) s += 3600 * t[n - 2]; if (n > 3) s += 86400 * t[1]; if (s >= m) f = 1 }}
  END {{ exit !f }}'; }}"""


def new_end() -> str:
    """A random end line for one script: no script can contain it by chance."""
    return f"drp-end-{secrets.token_hex(12)}"


def frame(script: str, end: str) -> str:
    """The script as the reader expects it on stdin: its lines, then the end line."""
    return script + ("" if script.endswith("\n") else "\n") + end + "\n"


def reader(end: str) -> str:
    """Shell that reads a framed script from stdin and runs it in this same shell.

    ``read`` takes stdin byte by byte, so what follows the end line stays for
    the command. A script cut short (no end line) is not run.
    """
    return (
        f"__drp_e={end}; __drp_s=; __drp_ok=\n"
        "while IFS= read -r __drp_l; do\n"
        '  if [ "$__drp_l" = "$__drp_e" ]; then __drp_ok=1; break; fi\n'
        '  __drp_s="$__drp_s$__drp_l\n"\n'
        "done\n"
        '[ -n "$__drp_ok" ] || { echo "drp: the command did not arrive whole" >&2; exit 125; }\n'
        'unset __drp_e __drp_l __drp_ok; eval "$__drp_s"'
    )


def bootstrap(
    run: str,
    token: str,
    label: str,
    sudo_user: str | None,
    end: str,
    *,
    last: bool = False,
    ask_shell: bool = False,
    direct: bool = False,
) -> str:
    """The line an SSH exec runs: report the PID, leave the marker, read the script, run it.

    sshd starts exec sessions with ``setsid``, so ``$$`` is also the process
    group of everything the command starts. The run's marker directory is made
    ``0700`` by the first command; the marker is written by the shell itself and
    **emptied** when it exits (an empty marker is a finished attempt; a script
    that ``exec``\\s leaves it full: :func:`probe_command` removes markers whose
    group is gone). Shell built-ins only, on every command but the first: each
    program the wrapper started (``mkdir``, ``rm``, ``rmdir``, and the subshell
    around them) cost about a millisecond of the host's time per step.

    ``last``: the session's last command; as it exits, it removes its marker, and the
    run's directory when no other session has one there (one ``rm``, one ``rmdir``).
    Markers a session could not remove (drp was killed) go at the next resume's
    :func:`probe_command`.

    The line is ``exec /bin/sh -c WRAPPER``: the login shell may be any shell.
    ``ask_shell``: the wrapper also reports ``$SHELL`` (:func:`take_shell`);
    ``direct``: the login shell is known to be ``/bin/sh``, so the line is the
    wrapper itself, without a second shell started for it.
    """
    record = shlex.quote(f"{sudo_user or '-'}\t{label}")
    # `true`, not `:`: a special built-in whose redirection fails (another session of the
    # same login removed the directory) would exit the shell with status 2, the command's
    # own exit status lost
    done = '{ true > "$__drp_m"; } 2>/dev/null'
    if last:  # this session's marker; the directory too, unless another session has one
        done = 'rm -f "$__drp_m"; rmdir "$__drp_d" 2>/dev/null'
    script = (
        f'__drp_d="${{HOME:-/nonexistent}}/.drp/attempts/"{shlex.quote(run)}\n'
        f'__drp_m="$__drp_d/"{shlex.quote(token)}; __drp_n=\n'
        'if { [ -d "$__drp_d" ] || (umask 077 && mkdir -p "$__drp_d"); } 2>/dev/null && '
        f"{{ printf '%s\\t%s\\n' $$ {record} > \"$__drp_m\"; }} 2>/dev/null; then\n"
        f"  trap {shlex.quote(done)} EXIT\n"
        "else __drp_n='\\036drp-nomark\\n'; fi\n"
        + (
            'printf "\\036drp-pid:%s\\n$__drp_n\\036drp-sh:%s\\n" $$ "${SHELL:-}" >&2'
            if ask_shell
            else 'printf "\\036drp-pid:%s\\n$__drp_n" $$ >&2'
        )
        + "; unset __drp_n\n"
        + reader(end)
    )
    return script if direct else f"exec /bin/sh -c {shlex.quote(script)}"


NO_MARK_NOTE = (
    "could not write the attempt marker under ~/.drp/attempts on the host: "
    "a later drp resume cannot tell whether this command still runs"
)


def take_no_mark(stderr: bytes) -> tuple[bool, bytes]:
    """Whether the wrapper said it left no marker (it says so right after the PID line);
    stderr without that line."""
    marker = NO_MARK.encode()
    if stderr.startswith(marker):
        return True, stderr[len(marker) :]
    return False, stderr


def take_shell(stderr: bytes) -> tuple[str | None, bytes]:
    """The login shell the wrapper reported (``ask_shell``: right after the PID and
    no-mark lines, so first in what is left of stderr); stderr without that line."""
    match = _SHELL_LINE.match(stderr)
    if match is None:
        return None, stderr
    return match.group(1).decode("utf-8", errors="replace"), stderr[match.end() :]


#: What :func:`probe_command` prints for each attempt still running.
ALIVE = "drp-attempt:"
_ALIVE_LINE = re.compile(r"^drp-attempt:([0-9a-f]+)\t(\d+)\t(\d+)\t([^\t\n]*)\t([^\n]*)$", re.M)

_PROBE_SCRIPT = (
    r"""d="${{HOME:-/nonexistent}}/.drp/attempts/"{run}
[ -d "$d" ] || exit 0
now=$(date +%s)
"""
    + LIVE_FUNCTION
    + r"""
ps -A -o pgid= >/dev/null 2>&1 || live() {{ kill -s 0 -- -"$g" 2>/dev/null; }}
for f in "$d"/*; do
  [ -f "$f" ] || continue
  IFS='	' read -r g u l < "$f" || true
  case "$g" in ''|*[!0-9]*) rm -f "$f"; continue;; esac
  t=$(stat -c %Y "$f" 2>/dev/null || date -r "$f" +%s 2>/dev/null || echo "$now")
  a=$((now - t)); m=$((a - 1)); [ "$m" -ge 0 ] || m=0
  if live; then printf '{alive}%s\t%s\t%s\t%s\t%s\n' "${{f##*/}}" "$g" "$a" "$u" "$l"
  else rm -f "$f"; fi
done
rmdir "$d" 2>/dev/null; exit 0"""
)


@dataclass(frozen=True)
class Leftover:
    """An attempt an earlier drp started on the host that still runs there."""

    token: str
    pgid: int
    age: int  # seconds since its marker was written
    sudo_user: str | None
    label: str  # "STEP PHASE ATTEMPT", or what the transport was told

    @property
    def step(self) -> str:
        return self.label.split(" ", 1)[0] if self.label else ""

    def describe(self, host: str) -> str:
        what = f"{self.label.split(' ')[1]} of step {self.step}" if " " in self.label else "command"
        return f"the earlier {what} (process group {self.pgid} on {host}, running for {self.age}s)"


def probe_command(run: str) -> str:
    """Shell that lists the still-running attempts of ``run`` and removes the others' markers."""
    return _PROBE_SCRIPT.format(run=shlex.quote(run), alive=ALIVE)


def parse_probe(stdout: str) -> list[Leftover]:
    """The attempts :func:`probe_command` found still running."""
    return [
        Leftover(token, int(pgid), int(age), None if user == "-" else user, label)
        for token, pgid, age, user, label in _ALIVE_LINE.findall(stdout)
    ]


def marker_token() -> str:
    """A new attempt's token (the marker's file name)."""
    return secrets.token_hex(8)
