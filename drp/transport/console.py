"""The console transport: run commands over a host's serial console (the out-of-band path).

Implements :class:`drp.transport.base.Transport` over a terminal that is
either a program's stdin/stdout (``ipmitool … sol activate``, ``virsh console
vm1``: spawned by pexpect on a raw local pty, so Ctrl-C goes to the host, not
to the program) or a socket (``unix:/path`` or ``tcp:HOST:PORT``, as QEMU and
ser2net expose one; read by pexpect's fdspawn). pexpect does the prompt
matching; :mod:`drp.transport.console_wire` says what is typed and how
answers are framed, so output comes back exact (see there: markers, files,
checksummed base64 chunks) whatever else the console prints.

- ``connect()`` logs in when a login prompt shows (user, then the password
  from the inventory's ``password_env`` or the operator), or takes the shell
  that is there. A console that shows nothing is sent Ctrl-C (a command an
  earlier, killed drp left running) and the next command's stderr says so.
- ``run()`` uploads the command (and its stdin), runs it in the foreground
  with its output on files, waits for its status line, reads the files back.
  A timeout or ``cancel()`` types Ctrl-C and confirms the shell answers again.
- ``put()`` uploads (base64 lines, each acknowledged; sha256 checked on the
  host) to a temporary name and renames it: at most :data:`MAX_PUT` bytes.
- ``close()`` logs out and waits for the login prompt: the console is never
  left as an open shell.

One request at a time: a console is one terminal.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import select
import shlex
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO

import pexpect
import pexpect.fdpexpect

from drp.errors import AuthError, Cancelled, CommandTimeout, ConnectError, StepFailed
from drp.inventory.model import Become, Console, Host
from drp.results import CommandResult
from drp.transport import console_link as link
from drp.transport import console_wire as wire
from drp.transport.attempts import Leftover, parse_probe, probe_command
from drp.transport.base import ConnectInfo, OutputCallback
from drp.transport.command import LineSplitter, first_line, kill_verdict
from drp.transport.kill import KILL_ANSWER_SECONDS, Kill, kill_line, kill_outcome

#: The largest file ``put`` sends over a console (~45 s at 20 kB/s, a slow SOL link).
MAX_PUT = 1024 * 1024
_POLL = link.POLL
_ANSWER = 30.0  # how long a short request may take to answer (a slow console under load)
_RETRIES = 5  # how often a damaged chunk is asked for again
_MASK = "********"
if TYPE_CHECKING:
    from drp.transport.console_link import Channel, Pattern


class ConsoleTransport:
    """Run commands on one host through its serial console, logged in once per session."""

    def __init__(
        self,
        host: Host,
        *,
        password: str | None = None,
        sudo_password: str | None = None,
        transcript: BinaryIO | None = None,
        run_id: str = "",
    ) -> None:
        """``transcript`` receives what the console shows (never what is typed); ``run_id``
        names the run whose earlier attempts :meth:`leftovers` looks for."""
        self.run_id = run_id
        if host.console is None:
            raise ValueError(f"{host.name} has no console in the inventory")
        self._host = host
        self._console: Console = host.console
        self._password = password
        self.sudo_password = sudo_password
        self._child: Channel | None = None
        self._dir = ""  # the private directory on the host
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._notes: list[str] = []
        self._reader = wire.Reader()
        self._transcript = transcript

    @property
    def host(self) -> str:
        return self._host.name

    # -- session ----------------------------------------------------------------------

    def connect(self) -> ConnectInfo:
        """Open the console and log in (no-op when logged in)."""
        with self._lock:
            if self._child is None:
                self._child = self._open()
                self._child.logfile_read = self._transcript
                try:
                    self._login()
                    self._setup()
                except BaseException:
                    self._drop()
                    raise
            return ConnectInfo(self.host, self._console.where, 0, via_console=True)

    def _open(self) -> Channel:
        try:
            return link.open_channel(self._console)
        except (OSError, pexpect.ExceptionPexpect, ValueError) as exc:
            where = self._console.where
            raise ConnectError(self.host, f"cannot open console {where}: {exc}") from None

    def _login(self) -> None:
        """Reach a shell: answer the login and password prompts, or take the shell shown."""
        console, child = self._console, self._need()
        patterns = link.login_patterns(console)
        deadline = time.monotonic() + console.timeout
        silent, named, sent, interrupted = 0, False, False, False
        child.send(b"\r")
        while time.monotonic() < deadline:
            index = self._expect(patterns, min(3.0, console.timeout))
            if index in (link.LOGIN, link.PASSWORD) and not link.quiet(child):
                continue  # a prompt is answered only when it is the last thing shown
            if index == link.LOGIN:
                child.send(console.user.encode() + b"\r")
                named = True
            elif index == link.PASSWORD:
                sent = self._answer_password(named)
            elif index == link.INCORRECT and sent:
                raise AuthError(
                    self.host,
                    f"console login refused for {console.user} on {console.where}: "
                    "wrong password?" + link.password_hint(console),
                )
            elif index == link.SHELL and self._sync(10.0):
                if interrupted:  # a shell came back: something held it
                    self._notes.append(
                        f"interrupted with Ctrl-C what held the console of {self.host} "
                        "(a command left running by an earlier session?)"
                    )
                return
            elif index == link.SILENT:
                silent += 1
                interrupted = interrupted or silent == 2
                child.send(b"\x03\r" if silent == 2 else b"\r")  # a command may hold it
        raise ConnectError(
            self.host,
            f"console {console.where}: no login prompt or shell within "
            f"{console.timeout:g}s; last output: {self._tail()!r}",
        )

    def _answer_password(self, named: bool) -> bool:
        """Type the password if drp typed the user name; True when it did."""
        if not named:  # someone else's half-done login: end it
            self._need().send(b"\r")
            return False
        if self._password is None:
            hint = link.password_hint(self._console)
            raise AuthError(
                self.host, f"console login: no password for {self._console.user}" + hint
            )
        self._need().send(self._password.encode() + b"\r")
        return True

    def _setup(self) -> None:
        marker = wire.new_marker()
        found = self._ask(f"{wire.SETUP}; {wire.dir_line(marker)}", wire.dir_pattern(marker))
        self._dir = found.group(1).decode().strip()

    def close(self) -> None:
        """Log out and wait for the login prompt (idempotent); a later connect() logs in again."""
        with self._lock:
            child = self._child
            if child is None:
                return
            try:
                prompt = re.compile(self._console.login_prompt.encode())
                for _ in range(3):  # a nested shell needs another exit
                    clean = f"rm -rf {shlex.quote(self._dir)}; " if self._dir else ""
                    child.send(f"{clean}exit\r".encode())
                    if self._expect([prompt, pexpect.TIMEOUT], 15.0) == 0:
                        break
            except ConnectError:
                pass
            finally:
                self._drop()

    def _drop(self) -> None:
        if self._child is not None:
            with contextlib.suppress(OSError, pexpect.ExceptionPexpect):
                self._child.close()
        self._child, self._dir = None, ""
        self._reader = wire.Reader()

    def attach(self, stdin: int, stdout: int, escape: bytes = b"\x1d") -> None:
        """Hand the logged-in console to a person at ``stdin``/``stdout`` until ``escape``.

        Echo, line editing and history are turned back on for them first; the
        caller's terminal should be raw. Nothing typed is kept anywhere.
        """
        with self._lock:
            self.connect()
            child = self._need()
            child.send(b"stty sane; set -o emacs 2>/dev/null; set -o history 2>/dev/null\r")
            os.write(stdout, self._reader.pending)
            self._reader = wire.Reader()
            while True:
                ready, _, _ = select.select([stdin, child.child_fd], [], [])
                if stdin in ready:
                    typed = os.read(stdin, 1024)
                    if not typed or escape in typed:
                        child.send(typed.split(escape)[0])
                        return
                    child.send(typed)
                if child.child_fd in ready:
                    try:
                        os.write(stdout, child.read_nonblocking(65536, timeout=0))
                    except pexpect.TIMEOUT:
                        continue
                    except (pexpect.EOF, OSError):
                        self._drop()
                        raise ConnectError(self.host, "the console closed") from None

    def cancel(self) -> None:
        """Stop the command in flight: it is sent Ctrl-C and its run() raises Cancelled."""
        self._cancel.set()

    # -- commands ---------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        on_output: OutputCallback | None = None,
        label: str = "",
        last: bool = False,
    ) -> CommandResult:
        """Run ``command`` with ``/bin/sh`` on the host; see the Transport contract."""
        with self._lock:
            self._cancel.clear()
            self.connect()
            started, clock = datetime.now(UTC), time.monotonic()
            marker = wire.new_marker()
            script = posixpath.join(self._dir, marker)
            self._upload(command.encode(), script)
            source = None
            if stdin is not None:
                source = script + ".in"
                self._upload(stdin.encode(), source)
            code = self._wait_done(marker, script, source, command, timeout)
            out, err = self._download(script + ".out"), self._download(script + ".err")
            self._ask(
                f"rm -f {shlex.quote(script)}*; {wire.sync_line(marker + 'rm')}",
                re.compile(re.escape(wire.sync_answer(marker + "rm"))),
            )
            notes, self._notes = self._notes, []
        if on_output is not None:
            lines = LineSplitter(on_output)
            lines.feed(out)
            lines.flush()
        return CommandResult(
            host=self.host,
            command=command,
            exit_code=code,
            stdout=self._redact(out.decode("utf-8", errors="replace")),
            stderr="".join(f"drp: {note}\n" for note in notes)
            + self._redact(err.decode("utf-8", errors="replace")),
            started=started,
            duration=time.monotonic() - clock,
        )

    def _wait_done(
        self, marker: str, script: str, source: str | None, command: str, timeout: float | None
    ) -> int:
        child = self._need()
        child.send((wire.run_line(marker, script, source) + "\r").encode())
        done = wire.done_pattern(marker)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._cancel.is_set():
                how = "was killed" if self._interrupt() else "may still run"
                raise Cancelled(
                    f"{self.host}: interrupted by the operator: {first_line(command)} {how} "
                    "(Ctrl-C on the console)"
                )
            if deadline is not None and time.monotonic() >= deadline:
                how = "was killed" if self._interrupt() else "may still run (the shell is busy)"
                raise CommandTimeout(
                    f"{self.host}: timed out after {timeout or 0:g}s: {first_line(command)} {how} "
                    "(Ctrl-C on the console)"
                )
            match = self._wait(done, _POLL)
            if match is not None:
                return int(match.group(1))

    def _interrupt(self) -> bool:
        """Type Ctrl-C until the shell answers again; False when it never does."""
        for _ in range(3):
            self._need().send(b"\x03")
            if self._sync(10.0):
                return True
        self._drop()  # the next connect() finds out what holds the terminal
        return False

    # -- files ------------------------------------------------------------------------

    def leftovers(self) -> list[Leftover]:
        """This run's earlier attempts still running on the host, asked over the console.

        A command run over the console runs in the foreground of the console's shell:
        one left running by a killed drp holds the console, and the next login ends it
        with Ctrl-C before anything else runs. What this finds are the attempts started
        over SSH (their markers, see :mod:`drp.transport.attempts`) that still run.
        """
        result = self.run(probe_command(self.run_id), timeout=KILL_ANSWER_SECONDS)
        return parse_probe(result.stdout)

    def kill_leftover(self, leftover: Leftover) -> Kill:
        """Kill an earlier attempt's process group over the console (through sudo if it ran so)."""
        become = Become(user=leftover.sudo_user) if leftover.sudo_user else None
        line, stdin = kill_line(
            leftover.pgid,
            become,
            self.sudo_password if become else None,
            min_age=max(0, leftover.age - 1),
        )
        result = self.run(line, stdin=stdin, timeout=KILL_ANSWER_SECONDS)
        return kill_outcome(kill_verdict(result.stdout), first_line(result.stderr, 120), alive=True)

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``dest`` atomically (temp file + rename), at most :data:`MAX_PUT`."""
        if len(data) > MAX_PUT:
            raise StepFailed(
                f"{self.host}: put {dest}: {len(data)} bytes is more than the console "
                f"transport sends ({MAX_PUT} bytes): copy it over SSH once the network is back"
            )
        with self._lock:
            self.connect()
            directory, name = posixpath.split(dest)
            tmp = posixpath.join(directory, f".{name}.drp-{uuid.uuid4().hex[:12]}")
            self._upload(data, tmp)
            q, t = shlex.quote(dest), shlex.quote(tmp)
            keep = (
                f"chmod {mode:o} {t}"
                if mode is not None
                else f"if [ -e {q} ]; then chmod --reference={q} {t}; else chmod 644 {t}; fi"
            )
            marker = wire.new_marker()
            found = self._ask(
                f"{keep} && mv -f {t} {q}; r=$?; [ $r = 0 ] || rm -f {t}; "
                f"{wire.say(marker, ':done:')}$r; echo",
                wire.done_pattern(marker),
            )
            if found.group(1) != b"0":
                raise StepFailed(f"{self.host}: put {dest} failed (exit {found.group(1).decode()})")

    def get(self, path: str) -> bytes:
        """Read a whole remote file."""
        with self._lock:
            self.connect()
            return self._download(path)

    def _upload(self, data: bytes, path: str) -> None:
        marker = wire.new_marker()
        *lines, check = wire.upload_lines(data, path, marker)
        for line, answer in lines:
            self._ask(line, re.compile(re.escape(answer)))
        found = self._ask(check[0], wire.sum_pattern(marker))
        if found.group(1).decode() != wire.sha256_hex(data):
            raise StepFailed(f"{self.host}: sending {path} over the console: checksum mismatch")

    def _download(self, path: str) -> bytes:
        marker = wire.new_marker()
        size = int(self._ask(wire.size_line(marker, path), wire.size_pattern(marker)).group(1))
        if size < 0:
            raise StepFailed(f"{self.host}: cannot read {path} over the console")
        parts: list[bytes] = []
        for index in range(wire.chunks_of(size)):
            parts.append(self._chunk(path, index))
        return b"".join(parts)

    def _chunk(self, path: str, index: int) -> bytes:
        for _ in range(_RETRIES):
            marker = wire.new_marker()
            scratch = posixpath.join(self._dir, "chunk")
            line = wire.chunk_line(marker, path, index, scratch)
            found = self._ask(line, wire.chunk_end(marker, index))
            frame = wire.parse_chunk(found.group(0), marker, index)
            if frame.data is not None:
                return frame.data
        raise ConnectError(
            self.host, f"console: chunk {index} of {path} came back damaged {_RETRIES} times"
        )

    # -- the terminal -----------------------------------------------------------------

    def _need(self) -> Channel:
        if self._child is None:
            raise ConnectError(self.host, "console not connected")
        return self._child

    def _ask(
        self, line: str, answer: re.Pattern[bytes], timeout: float = _ANSWER
    ) -> re.Match[bytes]:
        """Type ``line`` and wait for ``answer``; ConnectError when the shell does not answer."""
        self._need().send((line + "\r").encode())
        match = self._wait(answer, timeout)
        if match is None:
            raise ConnectError(
                self.host, f"console: no answer in {timeout:g}s; last output: {self._tail()!r}"
            )
        return match

    def _sync(self, timeout: float) -> bool:
        marker = wire.new_marker()
        self._need().send((wire.sync_line(marker) + "\r").encode())
        answer = re.compile(re.escape(wire.sync_answer(marker)))
        return self._wait(answer, timeout) is not None

    def _wait(self, answer: re.Pattern[bytes], timeout: float) -> re.Match[bytes] | None:
        """Read until ``answer`` shows (kernel messages cut out), or None after ``timeout``."""
        child, reader = self._need(), self._reader
        if child.buffer:  # what pexpect read past the login prompt
            reader.feed(child.buffer)
            child.buffer = b""
        deadline = time.monotonic() + timeout
        while True:
            match = reader.find(answer)
            left = deadline - time.monotonic()
            if match is not None or left <= 0:
                return match
            try:
                reader.feed(child.read_nonblocking(65536, timeout=min(_POLL, left)))
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError) as exc:
                self._drop()
                raise ConnectError(
                    self.host, f"console {self._console.where} closed: {exc}"
                ) from None

    def _expect(self, patterns: list[Pattern], timeout: float) -> int:
        """pexpect's expect; a closed console is a ConnectError (the link may come back)."""
        try:
            return int(self._need().expect(patterns, timeout=timeout))
        except (pexpect.EOF, OSError) as exc:
            self._drop()
            raise ConnectError(self.host, f"console {self._console.where} closed: {exc}") from None

    def _tail(self) -> str:
        child = self._child
        before = child.before if child is not None and isinstance(child.before, bytes) else b""
        return self._redact(wire.clean_text((before + self._reader.pending)[-200:]))

    def _redact(self, text: str) -> str:
        for secret in (self.sudo_password, self._password):
            if secret:
                text = text.replace(secret, _MASK)
        return text


def console_password(console: Console) -> str | None:
    """The console login password from its environment variable, if set."""
    return os.environ.get(console.password_env) if console.password_env else None
