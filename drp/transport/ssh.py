"""The SSH transport: one verified paramiko connection per host, reused for every command.

This is the only module that uses paramiko (imported through
:mod:`drp.transport.paramiko_import`). It implements
:class:`drp.transport.base.Transport`:

- connect to the primary address, else each fallback address in order, directly
  or through a jump host (a ``direct-tcpip`` channel over the bastion's own
  verified connection): the host's, or the one a fallback address names, or
  none for a fallback that says ``jump: none``; host keys are checked against
  known_hosts and never auto-accepted;
- run each command on a fresh exec channel of that connection (TCP_NODELAY
  keeps that at a few milliseconds), with the remote PID reported first so a
  timeout or :meth:`SshTransport.cancel` can kill the command's process group:
  through sudo when the command was wrapped with
  :func:`drp.transport.command.wrap_become`, and said to be killed only once
  the host confirms the group is gone;
- remember the process group of a command whose connection died under it, and
  on the next connection kill it (and confirm) before anything else runs, so a
  retry never runs beside the first attempt; the next command's stderr starts
  with a ``drp:`` line saying so;
- put/get files over SFTP on the same connection, writes atomic by rename.

What needs no paramiko lives beside it: opening the TCP socket in
:mod:`drp.transport.sockets`, the kill line, its verdict and the orphan records
and messages in :mod:`drp.transport.kill`.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import posixpath
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from drp.errors import (
    AuthError,
    Cancelled,
    CommandTimeout,
    ConnectError,
    HostKeyError,
    StepFailed,
)
from drp.inventory.model import Address, Become, Host
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
)
from drp.transport.base import ConnectInfo, OutputCallback
from drp.transport.capture import Bounded
from drp.transport.channels import CHUNK, Running, collect, feed_stdin, finished, wait
from drp.transport.command import (
    LineSplitter,
    SudoLine,
    first_line,
    kill_verdict,
    take_pid_marker,
)
from drp.transport.hostkeys import (
    KnownHostsFile,
    entry_name,
    fingerprint,
    host_matches,
    known_hosts_path,
    parse_known_hosts,
)
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
from drp.transport.logins import login_help
from drp.transport.paramiko_import import paramiko
from drp.transport.sockets import KEEPALIVE_SECONDS, UnreachableError, open_socket

_POLL = 0.25  # longest sleep between checks for cancel() while a command runs
_MASK = "********"


class _UnknownKeyError(paramiko.SSHException):
    """Raised by the missing-host-key policy; carries the key the server showed."""

    def __init__(self, name: str, key: paramiko.PKey) -> None:
        super().__init__(f"{name} not in known_hosts")
        self.name = name
        self.key = key


class _RevokedKeyError(paramiko.SSHException):
    """The server showed a key known_hosts marks ``@revoked``."""

    def __init__(self, name: str, key: paramiko.PKey) -> None:
        super().__init__(f"{name} showed a revoked key")
        self.name = name
        self.key = key


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, revoked: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.revoked = revoked

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if (key.get_name(), key.get_base64()) in self.revoked:
            raise _RevokedKeyError(hostname, key)
        raise _UnknownKeyError(hostname, key)


class SshTransport:
    """Run commands on one host over a single reused SSH connection."""

    def __init__(
        self, host: Host, *, sudo_password: str | None = None, run_id: str = "adhoc"
    ) -> None:
        self._host = host
        self.sudo_password = sudo_password
        self.run_id = run_id  # names the directory of this run's attempt markers on the host
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._jumps: dict[Host, SshTransport] = {}  # bastion -> its connection, opened lazily
        self._info: ConnectInfo | None = None
        self._runs: dict[int, Running] = {}
        self._orphans: list[Orphan] = []
        self._notes: list[str] = []  # orphan reports for the next command's stderr
        self._settle_lock = threading.Lock()

    @property
    def host(self) -> str:
        return self._host.name

    # -- connection -----------------------------------------------------------------

    def connect(self) -> ConnectInfo:
        """Open the connection (no-op when open); try fallback addresses on network failure."""
        with self._lock:
            if self._client is not None and self._info is not None and self._active():
                return self._info
            self._close_locked()
            return self._open_locked()

    def _active(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _open_locked(self) -> ConnectInfo:
        host = self._host
        addresses = [Address(host.address, host.port), *host.fallback]
        bastions = [host.jump_for(address) for address in addresses]
        failures: list[str] = []
        for index, (address, bastion) in enumerate(zip(addresses, bastions, strict=True)):
            try:
                self._client = self._connect_to(address, self._jump_to(bastion))
            except UnreachableError as exc:
                direct = " direct" if bastion is None and host.jump is not None else ""
                failures.append(f"{address.host}:{address.port}{direct} ({exc})")
                continue
            except BaseException:
                self._close_locked()
                raise
            transport = self._client.get_transport()
            if transport is not None:
                transport.set_keepalive(int(host.keepalive or KEEPALIVE_SECONDS))
            jump = bastion.name if bastion else None
            self._info = ConnectInfo(host.name, address.host, address.port, index > 0, jump)
            return self._info
        self._close_locked()
        same = host.jump is not None and all(b == host.jump for b in bastions)
        via = f" via jump host {host.jump.name}" if same and host.jump else ""
        raise ConnectError(host.name, f"unreachable{via}: " + "; ".join(failures))

    def _jump_to(self, bastion: Host | None) -> SshTransport | None:
        """The connection to ``bastion`` (shared by the addresses that go through it)."""
        if bastion is None:
            return None
        if bastion not in self._jumps:
            self._jumps[bastion] = SshTransport(bastion)
        return self._jumps[bastion]

    def _connect_to(self, address: Address, jump: SshTransport | None) -> paramiko.SSHClient:
        host = self._host
        sock = open_socket(address, host.connect_timeout, jump)
        client = _new_client(host)
        try:
            client.connect(
                address.host,
                port=address.port,
                username=host.user or getpass.getuser(),
                key_filename=host.key or list(host.identity_files) or None,  # type: ignore[arg-type]  # paramiko takes a list too
                look_for_keys=host.key is None and not host.identities_only,
                allow_agent=not (host.identities_only and (host.key or host.identity_files)),
                timeout=host.connect_timeout,
                banner_timeout=host.connect_timeout,
                auth_timeout=host.connect_timeout,
                sock=sock,
            )
        except BaseException as exc:
            client.close()
            sock.close()
            _raise_connect_failure(host, address, exc)
        return client

    def open_tunnel(self, address: Address, timeout: float) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from this (bastion) host to ``address``."""
        self.connect()
        transport = self._transport()
        try:
            return transport.open_channel(
                "direct-tcpip", (address.host, address.port), ("127.0.0.1", 0), timeout=timeout
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not transport.is_active():
                self._dropped(transport)
            raise UnreachableError(f"via {self.host}: {exc or type(exc).__name__}") from None

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise ConnectError(self.host, "not connected")
        return transport

    def _dropped(self, transport: paramiko.Transport | None) -> None:
        """Forget a dead connection so the next connect() opens a new one."""
        with self._lock:
            current = self._client.get_transport() if self._client else None
            if transport is None or current is transport:
                self._close_locked()

    def close(self) -> None:
        """Close the connection (idempotent); a later connect() reconnects.

        What a lost connection left running is still killed on that reconnect.
        """
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        for closable in (self._sftp, self._client, *self._jumps.values()):
            if closable is not None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    closable.close()
        self._sftp = self._client = None
        self._jumps = {}
        self._info = None

    # -- commands ---------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        stdin: str | None = None,
        on_output: OutputCallback | None = None,
        label: str = "",
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
        wrapper = bootstrap(
            self.run_id,
            marker_token(),
            " ".join(label.split()),
            sudo.become.user if sudo else None,
            end,
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

    # -- files ------------------------------------------------------------------------

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``dest`` atomically: temp file in the same directory, then rename."""
        self.connect()
        self._settle_orphans()  # a first attempt left running might still write there
        directory, name = posixpath.split(dest)
        tmp = posixpath.join(directory, f".{name}.drp-{uuid.uuid4().hex[:12]}")
        sftp = self._sftp_client()
        try:
            keep = mode if mode is not None else _existing_mode(sftp, dest)
            with sftp.open(tmp, "wb") as handle:
                handle.set_pipelined(True)
                handle.write(data)
            if keep is not None:
                sftp.chmod(tmp, keep)
            sftp.posix_rename(tmp, dest)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._file_error(exc, f"put {dest}", lambda: sftp.remove(tmp))

    def get(self, path: str) -> bytes:
        """Read a whole remote file."""
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as handle:
                handle.prefetch()
                return handle.read()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._file_error(exc, f"get {path}", None)
            raise  # unreachable: _file_error always raises

    def _sftp_client(self) -> paramiko.SFTPClient:
        self.connect()
        with self._lock:
            if self._sftp is None:
                transport = self._client.get_transport() if self._client else None
                if transport is None:
                    raise ConnectError(self.host, "not connected")
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    raise ConnectError(self.host, f"cannot open SFTP: {exc}") from None
                if self._sftp is None:
                    raise ConnectError(self.host, "cannot open SFTP")
            return self._sftp

    def _file_error(
        self, exc: BaseException, what: str, cleanup: Callable[[], object] | None
    ) -> None:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            self._dropped(transport)
            raise ConnectError(self.host, f"connection lost during {what}: {exc}") from None
        if cleanup is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                cleanup()
        raise StepFailed(f"{self.host}: {what} failed: {exc}") from None


# -- helpers ----------------------------------------------------------------------------


def _existing_mode(sftp: paramiko.SFTPClient, path: str) -> int | None:
    try:
        st_mode = sftp.stat(path).st_mode
    except OSError:
        return None
    return None if st_mode is None else st_mode & 0o7777


class _Client(paramiko.SSHClient):
    """An SSHClient that verifies against an already parsed known_hosts file.

    ``SSHClient.load_host_keys`` parses the file again for every client, and
    paramiko's parser is quadratic (each line is checked against every earlier
    one, with an HMAC per hashed name): 0.16 s for 1,000 hashed lines, paid by
    every host of a fan-out and on every reconnect. drp parses each version of
    the file once and shares the result, which is only read: the missing-key
    policy never adds a key. Should paramiko rename the attribute, the client
    would know no keys and refuse every host: it fails closed.
    """

    def __init__(self, known: paramiko.HostKeys) -> None:
        super().__init__()
        self._host_keys = known


class _KnownHosts(paramiko.HostKeys):
    """paramiko's HostKeys, filled by drp's known_hosts parser, matching names as OpenSSH does.

    paramiko's own parser ends in an exception on a valid ``@cert-authority`` or
    ``@revoked`` line and knows no wildcards or negations. Revoked keys are left
    out, so a server showing one reaches the policy, which names it.
    """

    def __init__(self, parsed: KnownHostsFile) -> None:
        super().__init__()
        self.parsed = parsed
        self.skipped = list(parsed.skipped)
        for known in parsed.keys:
            if (known.key_type, known.key_b64) in parsed.revoked:
                continue
            try:
                blob = base64.b64decode(known.key_b64)
                key = paramiko.PKey.from_type_string(known.key_type, blob)
            except Exception:  # an unknown or damaged key: OpenSSH skips the line too
                self.skipped.append(f"line {known.lineno}: a {known.key_type} key drp cannot read")
                continue
            entry = paramiko.hostkeys.HostKeyEntry(list(known.patterns), key)
            self._entries.append(entry)  # type: ignore[attr-defined]  # what load() fills

    def _hostname_matches(self, hostname: str, entry: paramiko.hostkeys.HostKeyEntry) -> bool:
        return host_matches(tuple(entry.hostnames), hostname)


_parsed: dict[str, tuple[bytes, _KnownHosts]] = {}  # path -> (content hash, keys)
_parsed_lock = threading.Lock()


def _known_host_keys(path: str) -> _KnownHosts:
    """The parsed known_hosts at ``path``, parsed again whenever its content changed."""
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        return _KnownHosts(KnownHostsFile())
    version = hashlib.sha256(content).digest()
    with _parsed_lock:
        cached = _parsed.get(path)
        if cached is None or cached[0] != version:
            parsed = parse_known_hosts(content.decode("utf-8", errors="replace"), path)
            cached = _parsed[path] = (version, _KnownHosts(parsed))
        return cached[1]


def _new_client(host: Host) -> paramiko.SSHClient:
    path = known_hosts_path(host)
    try:
        known = _known_host_keys(str(path))
    except OSError as exc:
        raise HostKeyError(host.name, f"cannot read {path}: {exc.strerror or exc}") from None
    client = _Client(known)
    client.set_missing_host_key_policy(_RefuseUnknown(known.parsed.revoked))
    return client


def _revoked(known: Path, key: paramiko.PKey) -> bool:
    with contextlib.suppress(OSError):
        return (key.get_name(), key.get_base64()) in _known_host_keys(str(known)).parsed.revoked
    return False


def _skipped_note(known: Path) -> str:
    """What drp left out of ``known``, said when a key was refused (it may be why)."""
    try:
        skipped = _known_host_keys(str(known)).skipped
    except OSError:
        return ""
    return f" (skipped: {'; '.join(skipped)})" if skipped else ""


def _raise_connect_failure(host: Host, address: Address, exc: BaseException) -> NoReturn:
    """Translate a paramiko connect failure; only network trouble says try the next address."""
    name = entry_name(address.host, address.port)
    known = known_hosts_path(host)
    if isinstance(exc, paramiko.BadHostKeyException) and _revoked(known, exc.key):
        exc = _RevokedKeyError(name, exc.key)
    if isinstance(exc, _RevokedKeyError):
        raise HostKeyError(
            host.name,
            f"host key for {name} is REVOKED in {known}: {exc.key.get_name()} "
            f"{fingerprint(exc.key.get_base64())}. The server must get a new key",
        ) from None
    if isinstance(exc, _UnknownKeyError):
        raise HostKeyError(
            host.name,
            f"unknown host key for {name}: {exc.key.get_name()} "
            f"{fingerprint(exc.key.get_base64())} is not in {known}. "
            f"Check the fingerprint out of band, then run: drp inventory trust {host.name}"
            + _skipped_note(known),
        ) from None
    if isinstance(exc, paramiko.BadHostKeyException):
        raise HostKeyError(
            host.name,
            f"host key for {name} CHANGED (possible man-in-the-middle attack): "
            f"expected {exc.expected_key.get_name()} {fingerprint(exc.expected_key.get_base64())} "
            f"from {known}, got {exc.key.get_name()} {fingerprint(exc.key.get_base64())}. "
            f"If the change is legitimate, run: drp inventory trust {host.name}",
        ) from None
    if isinstance(exc, paramiko.AuthenticationException) or "authentication" in str(exc).lower():
        user = host.user or getpass.getuser()
        raise AuthError(
            host.name,
            f"authentication failed for {user}@{name}: {str(exc).rstrip('.')}; "
            f"{login_help(host, user)}",
        ) from None
    if isinstance(exc, paramiko.SSHException) and str(exc) in _NO_GREETING:
        raise UnreachableError(
            f"the port took the connection but no SSH greeting came within "
            f"{host.connect_timeout:g}s (it stayed silent or closed: a host booting or hung, "
            f"sshd turning new sessions away, or a forward/NAT in front of a dead host)"
        ) from None
    if isinstance(exc, (OSError, EOFError, paramiko.SSHException)):
        raise UnreachableError(str(exc) or type(exc).__name__) from None
    raise exc


#: What paramiko says, depending on which of its timeouts fires first, when the TCP
#: connect succeeds and no SSH banner follows (silence and a bare close read the same).
_NO_GREETING = frozenset(
    {"Error reading SSH protocol banner", "No existing session", "Negotiation timed out."}
)


def fetch_server_key(host: Host, address: Address) -> tuple[str, str]:
    """The key (type, base64) the server at ``address`` presents, without authenticating."""
    bastion = host.jump_for(address)
    jump = SshTransport(bastion) if bastion is not None else None
    try:
        sock = open_socket(address, host.connect_timeout, jump)
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=host.connect_timeout)
            key = transport.get_remote_server_key()
            return key.get_name(), key.get_base64()
        finally:
            transport.close()
    except (UnreachableError, OSError, EOFError, paramiko.SSHException) as exc:
        raise ConnectError(
            host.name, f"cannot read host key from {address.host}:{address.port}: {exc}"
        ) from None
    finally:
        if jump is not None:
            jump.close()
