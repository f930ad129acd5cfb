"""What drp types on a serial console and how it reads the answers back: pure, no I/O.

A console is one byte stream shared with everything else that writes to the
terminal: the echo of what drp types, the shell's prompt (which may change),
ANSI sequences, CRLF line ends and kernel messages that the kernel prints in
the middle of anything. Nothing the host prints is trusted to be in order, so
drp never reads a command's output off the terminal as text:

- every line drp types asks the shell to print a **marker**: a random token
  (new for every request, so no earlier output and no command output can hold
  it) that the typed line itself never contains, because it is typed in two
  halves (``printf '%s%s' drpAAAA BBBB``): even with echo on, only the
  shell's answer holds the whole token;
- a command runs with its stdin, stdout and stderr on files in a private
  directory on the host; the terminal only sees ``MARKER:done:STATUS``;
- files (the command's output, or what :meth:`ConsoleTransport.get` reads)
  come back in chunks, each framed as ``MARKER:INDEX:BASE64:SHA256``; a chunk
  that a kernel message (or anything) landed in fails its checksum and is
  asked for again;
- what drp sends (a command, its stdin, a file to ``put``) goes up as base64
  lines short enough for a terminal's line buffer, each acknowledged before
  the next, then checked by sha256 on the host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import shlex
from dataclasses import dataclass

#: Bytes of raw data per uploaded line: 3,000 base64 characters, under the
#: 4,095-character line limit of a terminal in canonical mode (with the command
#: around them).
UP_CHUNK = 2250
#: Bytes of raw data per downloaded chunk (about 87 kB of base64 on one line).
DOWN_CHUNK = 65536

#: The shell settings drp types after login: no echo, no line editing, no history
#: (base64 payloads and sudo passwords must not land in ~/.bash_history), and a
#: private directory for the files of each command.
SETUP = (
    "stty -echo 2>/dev/null; set +o emacs +o vi 2>/dev/null; set +o history 2>/dev/null; "
    "unset HISTFILE PROMPT_COMMAND; export TERM=dumb; umask 077; "
    "_drp_d=$(mktemp -d /tmp/drp-console.XXXXXXXX)"
)

#: A kernel message as the console prints it: ``[   12.345678] text`` and its line
#: end, wherever in a line of ours it landed. Never part of what drp asks for.
KERNEL_LINE = re.compile(rb"\[\s*\d+\.\d+\][^\r\n]*\r?\n")
#: How much unread console output is kept while waiting (a chatty kernel cannot fill memory).
KEEP = 1 << 20


@dataclass
class Reader:
    """The console output not yet consumed, read through kernel messages.

    :meth:`find` looks for an answer in the output with every complete kernel
    message line cut out, so a message printed in the middle of a marker or
    a chunk does not hide it.
    """

    pending: bytes = b""

    def feed(self, data: bytes) -> None:
        self.pending = (self.pending + data)[-KEEP:]

    def find(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        view = KERNEL_LINE.sub(b"", self.pending)
        match = pattern.search(view)
        if match is not None:
            self.pending = view[match.end() :]
        return match

    def tail(self, size: int = 200) -> bytes:
        return self.pending[-size:]


_ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def new_marker() -> str:
    """A fresh token no output can hold: ``drp`` and 24 random hex digits."""
    return "drp" + secrets.token_hex(12)


def say(marker: str, suffix: str) -> str:
    """Shell text printing ``MARKER<suffix>`` without the typed text holding the whole marker."""
    return f"printf '%s%s' {marker[:10]} {shlex.quote(marker[10:] + suffix)}"


def sync_line(marker: str) -> str:
    """A line whose answer (``MARKER:ok``) proves the shell reads and runs what is typed."""
    return f"{say(marker, ':ok')}; echo"


def sync_answer(marker: str) -> bytes:
    return f"{marker}:ok".encode()


def done_pattern(marker: str) -> re.Pattern[bytes]:
    """The line a finished command prints: ``MARKER:done:STATUS``."""
    return re.compile(
        re.escape(marker.encode()) + rb":done:(\d+)\r?\n"
    )  # whole: "1" is not "127" read in part


def run_line(marker: str, script: str, stdin: str | None) -> str:
    """Run the uploaded ``script`` file in the foreground, output on files; say the status.

    In the foreground so that Ctrl-C typed on the console reaches it (SIGINT
    to the terminal's foreground process group). The stdin file (it may hold a
    sudo password) is removed as soon as it is open, before the command runs.
    """
    src = shlex.quote(stdin) if stdin else "/dev/null"
    forget = f"rm -f {src}; " if stdin else ""
    q = shlex.quote(script)
    return f"{{ {forget}/bin/sh {q}; }} <{src} >{q}.out 2>{q}.err; {say(marker, ':done:')}$?; echo"


def upload_lines(data: bytes, path: str, marker: str) -> list[tuple[str, bytes]]:
    """The lines that write ``data`` to ``path`` (base64, appended), each with its answer.

    The last line decodes the file and prints its sha256 after the marker; the
    caller compares it with :func:`sha256_hex` of ``data``.
    """
    b64 = shlex.quote(path + ".b64")
    first = marker + "u0"
    lines = [(f": >{b64}; {sync_line(first)}", sync_answer(first))]
    for index in range(0, len(data), UP_CHUNK):
        text = base64.b64encode(data[index : index + UP_CHUNK]).decode()
        tag = f"{marker}u{index // UP_CHUNK + 1}"
        lines.append((f"printf %s {text} >>{b64}; {sync_line(tag)}", sync_answer(tag)))
    check = (
        f"base64 -d {b64} >{shlex.quote(path)} && rm -f {b64}; "
        f"{say(marker, ':sum:')}; {{ sha256sum <{shlex.quote(path)} || echo x; }} 2>/dev/null "
        "| cut -c1-64"
    )
    lines.append((check, b""))
    return lines


def sum_pattern(marker: str) -> re.Pattern[bytes]:
    return re.compile(re.escape(marker.encode()) + rb":sum:([0-9a-f]{64}|x)\r?\n")


def dir_line(marker: str) -> str:
    """Prints ``MARKER:dir:PATH``: the private directory :data:`SETUP` made."""
    return f'{say(marker, ":dir:")}; echo "$_drp_d"'


def dir_pattern(marker: str) -> re.Pattern[bytes]:
    return re.compile(re.escape(marker.encode()) + rb":dir:(/[^\r\n]+)\r?\n")


def size_line(marker: str, path: str) -> str:
    """Prints ``MARKER:size:N`` (N is -1 when the file cannot be read)."""
    q = shlex.quote(path)
    return f"{say(marker, ':size:')}; if [ -r {q} ]; then wc -c <{q}; else echo -1; fi"


def size_pattern(marker: str) -> re.Pattern[bytes]:
    return re.compile(re.escape(marker.encode()) + rb":size:[ \t]*(-?\d+)\r?\n")


def chunk_line(marker: str, path: str, index: int, scratch: str, chunk: int = DOWN_CHUNK) -> str:
    """Prints chunk ``index`` of ``path`` framed as ``MARKER:INDEX:BASE64:SHA256``.

    The chunk is cut into ``scratch`` (a file in drp's private directory,
    never beside ``path``, where it could overwrite something).
    """
    q, c = shlex.quote(path), shlex.quote(scratch)
    return (
        f"dd if={q} of={c} bs={chunk} skip={index} count=1 2>/dev/null; "
        f"{say(marker, f':{index}:')}; base64 -w0 <{c}; printf ':'; "
        f"sha256sum <{c} | cut -c1-64; rm -f {c}"
    )


def chunk_end(marker: str, index: int) -> re.Pattern[bytes]:
    """Where a chunk's frame ends: its sha256 after the payload."""
    head = re.escape(f"{marker}:{index}:".encode())
    return re.compile(head + rb".*?:[0-9a-f]{64}[\r\n]", re.DOTALL)


@dataclass(frozen=True)
class Frame:
    """A chunk read back: its payload, when its checksum held."""

    index: int
    data: bytes | None  # None: damaged (ask again)


def parse_chunk(stream: bytes, marker: str, index: int) -> Frame:
    """The chunk ``index`` framed in ``stream``; kernel messages and line ends inside are cut.

    ``data`` is None when the frame is missing or its payload does not match
    its sha256 even after removing what can be told apart from base64 (kernel
    message lines, ANSI sequences, CR/LF).
    """
    head = f"{marker}:{index}:".encode()
    start = stream.rfind(head)
    if start < 0:
        return Frame(index, None)
    body = stream[start + len(head) :]
    match = re.search(rb":\s*([0-9a-f]{64})", body)
    if match is None:
        return Frame(index, None)
    payload, digest = body[: match.start()], match.group(1).decode()
    for cleaned in (payload, clean(payload)):
        try:
            data = base64.b64decode(cleaned, validate=True)
        except (binascii.Error, ValueError):
            continue
        if sha256_hex(data) == digest:
            return Frame(index, data)
    return Frame(index, None)


def clean(payload: bytes) -> bytes:
    """``payload`` without kernel message lines, ANSI sequences and CR/LF."""
    text = KERNEL_LINE.sub(b"", payload)
    text = _ANSI.sub(b"", text)
    return text.replace(b"\r", b"").replace(b"\n", b"")


def clean_text(raw: bytes) -> str:
    """Terminal output as text for a message: no ANSI sequences, no CR."""
    return _ANSI.sub(b"", raw).replace(b"\r", b"").decode("utf-8", errors="replace")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunks_of(size: int, chunk: int = DOWN_CHUNK) -> int:
    """How many chunks a file of ``size`` bytes comes back in."""
    return (size + chunk - 1) // chunk
