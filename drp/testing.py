"""Test helpers shipped with drp (like ``fabric.testing``): a scriptable fake Transport.

``FakeTransport`` answers commands from rules (a regex and a list of replies,
used in order, the last one repeating), records every command, and keeps
uploaded files in memory. It fakes drp's own seam, never paramiko.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drp.errors import Cancelled, CommandTimeout, ConnectError
from drp.results import CommandResult
from drp.transport.attempts import Leftover
from drp.transport.base import ConnectInfo, OutputCallback
from drp.transport.kill import Kill


@dataclass(frozen=True)
class Reply:
    """One scripted answer: an exit code and output, or an error to raise."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # "connection" or "timeout"


@dataclass
class Rule:
    pattern: re.Pattern[str]
    replies: list[Reply]
    calls: int = 0

    def next(self) -> Reply:
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        return reply


@dataclass
class FakeTransport:
    """A Transport that runs nothing: it answers from rules and records what it was asked."""

    name: str = "fake"
    rules: list[Rule] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    connects: int = 0
    unreachable: bool = False
    still_running: list[Leftover] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cancelled: bool = False

    @property
    def host(self) -> str:
        return self.name

    def on(self, pattern: str, *replies: Reply) -> FakeTransport:
        """Answer commands matching ``pattern`` (regex search) with ``replies`` in order."""
        self.rules.append(Rule(re.compile(pattern), list(replies) or [Reply()]))
        return self

    def connect(self) -> ConnectInfo:
        if self.unreachable:
            raise ConnectError(self.name, "connection refused (fake)")
        self.connects += 1
        return ConnectInfo(self.name, self.name, 22)

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
        if self._cancelled:
            raise Cancelled("cancelled")
        with self._lock:
            self.commands.append(command)
            rule = next((r for r in reversed(self.rules) if r.pattern.search(command)), None)
            reply = rule.next() if rule else Reply()
        if reply.error == "connection":
            raise ConnectError(self.name, "connection lost (fake)")
        if reply.error == "timeout":
            raise CommandTimeout(f"timed out after {timeout}s (fake)")
        if on_output:
            for line in reply.stdout.splitlines():
                on_output(line)
        return CommandResult(
            self.name,
            command,
            reply.exit_code,
            reply.stdout,
            reply.stderr,
            datetime.now(UTC),
            0.001,
        )

    def leftovers(self) -> list[Leftover]:
        """What :attr:`still_running` holds (an earlier drp's attempts), as the host would say."""
        return list(self.still_running)

    def kill_leftover(self, leftover: Leftover) -> Kill:
        self.still_running = [lo for lo in self.still_running if lo != leftover]
        return Kill("gone")

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        self.files[dest] = data

    def get(self, path: str) -> bytes:
        return self.files[path]

    def cancel(self) -> None:
        self._cancelled = True

    def close(self) -> None:
        return None

    def ran(self, pattern: str) -> list[str]:
        """The commands run so far that match ``pattern``."""
        return [c for c in self.commands if re.search(pattern, c)]
