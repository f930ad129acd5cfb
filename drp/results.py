"""Frozen result values and the status vocabulary shared by engine, journal and reports.

The string values of the enums are stored in journals: they never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class StepStatus(StrEnum):
    """Outcome of one step on one host."""

    OK = "ok"
    CHANGED = "changed"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    PAUSED = "paused"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"
    ROLLED_BACK = "rolled-back"


class HostStatus(StrEnum):
    """Outcome of a whole run on one host."""

    OK = "ok"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    PAUSED = "paused"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"
    HALTED = "halted"
    LOCKED = "locked"
    NOT_RUN = "not-run"


class RunStatus(StrEnum):
    """Outcome of a run; also what ``drp log list`` filters on."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"
    LOCKED = "locked"


@dataclass(frozen=True)
class CommandResult:
    """What one command did on one host: never mutated, easy to journal."""

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    started: datetime
    duration: float
    attempt: int = 1

    @property
    def ok(self) -> bool:
        return self.exit_code == 0
