"""The local transport: the Transport contract on the operator's own machine.

Commands run with ``/bin/sh -c`` in a new session, so a timeout or
:meth:`LocalTransport.cancel` can kill the whole process group (TERM, then
KILL after a grace period), exactly as the SSH transport does on a host.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from drp.errors import Cancelled, CommandTimeout, StepFailed
from drp.results import CommandResult
from drp.transport.attempts import Leftover, frame, new_end, reader
from drp.transport.base import ConnectInfo, OutputCallback
from drp.transport.capture import Bounded
from drp.transport.command import LineSplitter, first_line
from drp.transport.kill import Kill

KILL_GRACE_SECONDS = 2.0
_POLL = 0.25
_CHUNK = 65536


class _Running:
    """A process in flight and whether cancel() stopped it."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.cancelled = False


class LocalTransport:
    """Run commands on this machine with the same semantics as :class:`SshTransport`."""

    def __init__(self, name: str = "local") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._runs: dict[int, _Running] = {}

    @property
    def host(self) -> str:
        return self._name

    def connect(self) -> ConnectInfo:
        return ConnectInfo(host=self._name, address="local", port=0)

    def close(self) -> None:
        """Nothing to close; present for the contract."""

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
        """Run ``command`` with ``/bin/sh`` in its own process group.

        The command travels on stdin, ahead of ``stdin`` (see
        :func:`drp.transport.attempts.reader`): ``ps`` never shows it.
        """
        started = datetime.now(UTC)
        clock = time.monotonic()
        end = new_end()
        process = subprocess.Popen(
            ["/bin/sh", "-c", reader(end)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        run = _Running(process)
        with self._lock:
            self._runs[id(run)] = run
        try:
            if process.stdin is not None:
                _feed_stdin(process.stdin, (frame(command, end) + (stdin or "")).encode())
            out, err = self._pump(run, command, timeout, on_output)
        finally:
            with self._lock:
                self._runs.pop(id(run), None)
        return CommandResult(
            host=self._name,
            command=command,
            exit_code=process.returncode,
            stdout=out.decode("utf-8", errors="replace"),
            stderr=err.decode("utf-8", errors="replace"),
            started=started,
            duration=time.monotonic() - clock,
        )

    def _pump(
        self, run: _Running, command: str, timeout: float | None, on_output: OutputCallback | None
    ) -> tuple[bytes, bytes]:
        """Collect output until the process exits and closes its pipes, or is stopped."""
        process = run.process
        assert process.stdout is not None and process.stderr is not None
        out, err = Bounded(), Bounded()
        buffers = {process.stdout.fileno(): out, process.stderr.fileno(): err}
        lines = LineSplitter(on_output)
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            selector.register(process.stderr, selectors.EVENT_READ)
            while selector.get_map():
                if run.cancelled:
                    _kill_group(process)
                    raise Cancelled(f"{self._name}: cancelled; killed: {first_line(command)}")
                if deadline is not None and time.monotonic() >= deadline:
                    _kill_group(process)
                    raise CommandTimeout(
                        f"{self._name}: timed out after {timeout or 0:g}s and was killed: "
                        f"{first_line(command)}"
                    )
                wait = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                for key, _ in selector.select(max(0.0, wait)):
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buffers[key.fd].add(chunk)
                    if key.fileobj is process.stdout:
                        lines.feed(chunk)
        process.wait()
        process.stdout.close()
        process.stderr.close()
        if run.cancelled:  # cancel() killed it between two checks
            raise Cancelled(f"{self._name}: cancelled; killed: {first_line(command)}")
        lines.flush()
        return out.value(), err.value()

    def cancel(self) -> None:
        """Kill every running command's process group; their run() raises Cancelled."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.cancelled = True
        for run in runs:
            _kill_group(run.process)

    def leftovers(self) -> list[Leftover]:
        """Local commands die with drp's session or are its children: none to find again."""
        return []

    def kill_leftover(self, leftover: Leftover) -> Kill:
        return Kill("absent")

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        """Write ``data`` to ``dest`` atomically: temp file in the same directory, fsync, rename."""
        path = Path(dest)
        keep = mode if mode is not None else _existing_mode(path)
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.drp-")
        except OSError as exc:
            raise StepFailed(f"{self._name}: put {dest} failed: {exc}") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, keep)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StepFailed(f"{self._name}: put {dest} failed: {exc}") from None

    def get(self, path: str) -> bytes:
        """Read a whole local file."""
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise StepFailed(f"{self._name}: get {path} failed: {exc}") from None


def _feed_stdin(pipe: IO[bytes], data: bytes) -> None:
    """Write stdin from a helper thread so a chatty command cannot deadlock us."""

    def send() -> None:
        with contextlib.suppress(OSError):
            pipe.write(data)
        with contextlib.suppress(OSError):
            pipe.close()

    threading.Thread(target=send, name="drp-local-stdin", daemon=True).start()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """TERM the process group, KILL it if anything outlives the grace period, reap."""
    pgid = process.pid  # start_new_session: the shell leads its own group
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.05)
        if not _group_alive(pgid):
            break
    _signal_group(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(KILL_GRACE_SECONDS)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _existing_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without the set-and-restore race of ``os.umask``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
