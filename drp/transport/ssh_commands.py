"""Commands over the SSH link: run, time out, cancel, kill, and what a lost link left running.

:class:`SshCommands` runs each command on a fresh exec channel of its
:class:`drp.transport.ssh_link.SshLink` (TCP_NODELAY keeps that at a few
milliseconds), with the remote PID reported first so a timeout or
:meth:`SshCommands.cancel` can kill the command's process group: through sudo
when the command was wrapped with :func:`drp.transport.command.wrap_become`,
and said to be killed only once the host confirms the group is gone. It
remembers the process group of a command whose connection died under it and,
on the next connection, kills it (and confirms) before anything else runs, so
a retry never runs beside the first attempt; the next command's stderr starts
with a ``drp:`` line saying so. It also finds (and kills) the attempts an
earlier drp process of the same run left running.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from drp.errors import Cancelled, CommandTimeout, ConnectError
from drp.inventory.model import Become, Host
from drp.results import CommandResult
from drp.transport.attempts import (
    NO_MARK_NOTE,
    Leftover,
    bootstrap,
    frame,
    marker_token,
    new_end,
    parse_probe,
    probe_command,
    take_no_mark,
    take_shell,
)
from drp.transport.base import OutputCallback
from drp.transport.capture import Bounded
from drp.transport.channels import CHUNK, Running, collect, feed_stdin, finished, wait
from drp.transport.command import LineSplitter, SudoLine, first_line, kill_verdict, take_pid_marker
from drp.transport.kill import (
    KILL_ANSWER_SECONDS,
    KILL_GRACE_SECONDS,
    Kill,
    Orphan,
    cancelled_message,
    how_killed,
    kill_line,
    kill_outcome,
    settled_note,
    still_running,
    unsure_about,
)
from drp.transport.paramiko_import import paramiko
from drp.transport.ssh_link import SshLink

_POLL = 0.25  # longest sleep between checks for cancel() while a command runs
_MASK = "********"


class SshCommands(SshLink):
    """Commands on one host over its SSH link, killed by process group when they must stop."""

    def __init__(
        self, host: Host, *, sudo_password: str | None = None, run_id: str = "adhoc"
    ) -> None:
        super().__init__(host)
        self.sudo_password = sudo_password
        self.run_id = run_id  # names the directory of this run's attempt markers on the host
        self._runs: dict[int, Running] = {}
        self._tokens: list[str] = []  # markers of commands that ended, for the next ones
        self._plain_sh: bool | None = None  # the login shell is /bin/sh (None: not known yet)
        self._orphans: list[Orphan] = []
        self._notes: list[str] = []  # orphan reports for the next command's stderr
        self._settle_lock = threading.Lock()

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
        """Run ``command`` with ``/bin/sh`` on the host; see the Transport contract.

        The command travels on the channel's stdin, ahead of ``stdin``, behind
        a wrapper that leaves a marker (``label`` says what it is) so that a
        later drp finds it again (see :mod:`drp.transport.attempts`).

        A :class:`~drp.transport.command.SudoLine` (what ``wrap_become`` returns)
        is killed through sudo the same way when it has to be killed. Commands
        a lost connection left running are killed first (see
        :meth:`_settle_orphans`); the result's stderr then starts with a
        ``drp:`` line for each.
        """
        self.connect()
        self._settle_orphans()
        started = datetime.now(UTC)
        clock = time.monotonic()
        transport, channel = self._session()
        sudo = command if isinstance(command, SudoLine) else None
        end = new_end()
        with self._lock:  # a marker emptied by a command that ended is written again
            token = self._tokens.pop() if self._tokens else marker_token()
        wrapper = bootstrap(
            self.run_id,
            token,
            " ".join(label.split()),
            sudo.become.user if sudo else None,
            end,
            last=last,
            ask_shell=self._plain_sh is None,
            direct=self._plain_sh is True,
        )
        run = Running(
            self._exec(channel, transport, wrapper),
            command,
            become=sudo.become if sudo else None,
            password=sudo.password if sudo else None,
        )
        with self._lock:
            self._runs[id(run)] = run
        try:
            feed_stdin(run.channel, (frame(command, end) + (stdin or "")).encode())
            out, err, code = self._pump(run, transport, command, timeout, on_output)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            left = self._left_running(run)
            self._dropped(transport)
            raise ConnectError(self.host, f"connection lost: {exc}{left}") from None
        finally:
            with self._lock:
                self._runs.pop(id(run), None)
            run.channel.close()
        with self._lock:
            notes, self._notes = self._notes, []
            self._tokens.append(token)  # it ended: its marker is empty (or removed: `last`)
        if not run.marked:
            notes.append(NO_MARK_NOTE)
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

    def _session(self) -> tuple[paramiko.Transport, paramiko.Channel]:
        """A new session channel; an idle link found dead is reopened once (nothing was sent)."""
        transport = self._transport()
        try:
            return transport, self._open_session(transport)
        except ConnectError:
            self.connect()
            transport = self._transport()
            return transport, self._open_session(transport)

    def _open_session(self, transport: paramiko.Transport) -> paramiko.Channel:
        try:
            return transport.open_session(timeout=self._host.connect_timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._dropped(transport)
            raise ConnectError(self.host, f"connection lost: {exc}") from None

    def _exec(
        self, channel: paramiko.Channel, transport: paramiko.Transport, line: str
    ) -> paramiko.Channel:
        try:
            channel.exec_command(line)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._dropped(transport)
            raise ConnectError(self.host, f"connection lost: {exc}") from None
        return channel

    def _pump(
        self,
        run: Running,
        transport: paramiko.Transport,
        command: str,
        timeout: float | None,
        on_output: OutputCallback | None,
    ) -> tuple[bytes, bytes, int]:
        """Collect output until the command exits, is cancelled, times out or the link drops."""
        out, err = Bounded(), Bounded()
        lines = LineSplitter(on_output, self._redact)
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = run.channel
        while True:
            self._read_available(run, out, err, lines)
            if run.cancelled:
                raise Cancelled(self._cancelled(run, self._stop(run, out, err, lines)))
            if deadline is not None and time.monotonic() >= deadline:
                killed = self._stop(run, out, err, lines)
                how = how_killed(self.host, run.pid, killed)
                joint = " and " if killed is not None and killed.confirmed else "; "
                raise CommandTimeout(
                    f"{self.host}: timed out after {timeout or 0:g}s{joint}{how}: "
                    f"{first_line(command)}"
                )
            if finished(channel):
                break
            wait(channel, _POLL if deadline is None else min(_POLL, deadline - time.monotonic()))
        if run.cancelled:  # cancel() killed it between two checks
            raise Cancelled(self._cancelled(run, self._stop(run, out, err, lines)))
        lines.flush()
        if channel.exit_status >= 0:  # paramiko keeps -1 until an exit-status message arrives
            return out.value(), err.value(), channel.exit_status
        if not channel.eof_received or not transport.is_active():
            raise EOFError(f"channel closed without an exit status: {first_line(command)}")
        return out.value(), err.value(), -1  # killed by a signal: sshd sent exit-signal

    def _read_available(
        self, run: Running, out: Bounded, err: Bounded, lines: LineSplitter
    ) -> None:
        channel = run.channel
        while channel.recv_ready():
            chunk = channel.recv(CHUNK)
            out.add(chunk)
            lines.feed(chunk)
        while channel.recv_stderr_ready():
            err.add(channel.recv_stderr(CHUNK))
        if run.pid is None and err.head:
            pid, rest = take_pid_marker(bytes(err.head))
            if pid is not None:
                run.pid, run.pid_at = pid, time.monotonic()
                unmarked, rest = take_no_mark(rest)
                run.marked = not unmarked
                if self._plain_sh is None:
                    shell, rest = take_shell(rest)
                    if shell is not None:
                        self._plain_sh = shell == "/bin/sh"
                err.replace_head(rest)

    # -- killing ------------------------------------------------------------------------

    def _stop(self, run: Running, out: Bounded, err: Bounded, lines: LineSplitter) -> Kill | None:
        """Kill the command's process group on the host, waiting briefly for its PID if needed."""
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while run.pid is None and not run.channel.closed and time.monotonic() < deadline:
            wait(run.channel, 0.05)
            self._read_available(run, out, err, lines)
        return self._kill(run)

    def _kill(self, run: Running) -> Kill | None:
        """Kill ``run``'s group once: the first caller does it, a second waits for its outcome.

        None while the PID is unknown (nothing can be sent). A kill the link
        died under leaves the group to :meth:`_settle_orphans`.
        """
        with run.lock:
            if run.pid is None:
                return None
            first, run.killing = not run.killing, True
        if not first:
            run.kill_done.wait(KILL_ANSWER_SECONDS + self._host.connect_timeout)
            return run.kill or Kill("unknown", "the kill did not answer in time")
        try:
            killed = self._kill_group(run.pid, run.become, run.password)
            if killed.verdict == "failed":
                self._left_running(run)
            run.kill = killed
        finally:
            run.kill_done.set()
        return killed

    def _kill_group(
        self,
        pgid: int,
        become: Become | None,
        password: str | None,
        *,
        min_age: int = 0,
        reopen: bool = False,
    ) -> Kill:
        """Run the kill script for group ``pgid`` (through sudo for ``become``); its verdict."""
        line, stdin = kill_line(pgid, become, password, min_age=min_age)
        try:
            out, err, alive = self._short(line, stdin, KILL_ANSWER_SECONDS, reopen=reopen)
        except ConnectError as exc:
            return Kill("failed", str(exc).removeprefix(f"{self.host}: "))
        verdict = kill_verdict(out.decode("utf-8", errors="replace"))
        said = first_line(self._redact(err.decode("utf-8", errors="replace")), 120)
        if password:
            said = said.replace(password, _MASK)
        return kill_outcome(verdict, said, alive=alive)

    def _short(
        self, line: str, stdin: str | None, seconds: float, *, reopen: bool = False
    ) -> tuple[bytes, bytes, bool]:
        """Run a short drp script of its own (no wrapper, no marker): stdout, stderr,
        whether the link was still up. ConnectError when it could not be asked."""
        channel: paramiko.Channel | None = None
        try:
            if reopen:
                transport, channel = self._session()
            else:
                transport = self._transport()
                channel = self._open_session(transport)
            channel.exec_command(line)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            out, err = collect(channel, seconds)
            return out, err, transport.is_active()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectError(self.host, f"connection lost: {exc or type(exc).__name__}") from None
        finally:
            if channel is not None:
                channel.close()

    # -- what an earlier drp left running ---------------------------------------------

    def leftovers(self) -> list[Leftover]:
        """This run's earlier attempts that still run on the host (another drp process
        started them: it was killed, or lost the link); the others' markers are removed."""
        self.connect()
        out, _, _ = self._short(probe_command(self.run_id), None, KILL_ANSWER_SECONDS, reopen=True)
        return parse_probe(out.decode("utf-8", errors="replace"))

    def kill_leftover(self, leftover: Leftover) -> Kill:
        """Kill an earlier attempt's process group (through sudo if it ran through sudo)."""
        self.connect()
        become = Become(user=leftover.sudo_user) if leftover.sudo_user else None
        return self._kill_group(
            leftover.pgid,
            become,
            self.sudo_password if become else None,
            min_age=max(0, leftover.age - 1),
            reopen=True,
        )

    def _cancelled(self, run: Running, killed: Kill | None) -> str:
        return cancelled_message(self.host, run.command, run.pid, killed)

    def cancel(self) -> None:
        """Kill every command in flight (whole process group); their run() raises Cancelled."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.cancelled = True
        for run in runs:
            self._kill(run)

    # -- what a lost connection left running -----------------------------------------

    def _left_running(self, run: Running) -> str:
        """Remember ``run``'s group for the next connection; say so for the error message."""
        if run.pid is None:
            return " (the command may still run on the host: its process id never arrived)"
        if run.kill is not None and run.kill.confirmed:
            return ""
        orphan = Orphan(run.pid, run.pid_at, first_line(run.command), run.become, run.password)
        with self._lock:
            if all(o.pgid != orphan.pgid for o in self._orphans):
                self._orphans.append(orphan)
        return (
            f" (process group {run.pid} may still run: drp kills it when it reconnects; "
            "a later drp resume finds it again and waits for it, or kills it with --kill-in-doubt)"
        )

    def _settle_orphans(self) -> None:
        """Kill the commands a lost connection left running, before anything else runs.

        Each group is killed (TERM, then KILL; through sudo when it ran through
        sudo) only if a member is as old as the command it stands for, so a
        process that reused the id since (after a reboot) is left alone. What
        happened is reported on the next command's stderr. A group whose end
        cannot be confirmed stays on the list and makes this raise
        :class:`ConnectError`: drp does not run a second copy beside it.
        """
        with self._settle_lock:
            with self._lock:
                orphans = list(self._orphans)
            unsure: list[str] = []
            for orphan in orphans:
                killed = self._kill_group(
                    orphan.pgid,
                    orphan.become,
                    orphan.password,
                    min_age=orphan.min_age(),
                    reopen=True,
                )
                note = settled_note(self.host, orphan, killed)  # raises if it could not ask
                if note is None:
                    unsure.append(unsure_about(self.host, orphan, killed))
                    continue
                with self._lock:
                    self._orphans.remove(orphan)
                    self._notes.append(note)
            if unsure:
                raise still_running(self.host, unsure)

    def _redact(self, text: str) -> str:
        if self.sudo_password and self.sudo_password in text:
            return text.replace(self.sudo_password, _MASK)
        return text
