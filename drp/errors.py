"""The one error tree of drp, organised by who must act.

Every error drp raises on purpose is a :class:`DrpError`. The CLI is the only
place that turns them into messages and exit codes (see :data:`ExitCode`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; documented in the README and ``drp --help``."""

    OK = 0
    STEP_FAILED = 1
    INVALID_INPUT = 2
    UNREACHABLE = 3
    REJECTED = 4
    PAUSED = 5
    JOURNAL = 6
    LOCKED = 7
    INTERNAL = 70
    INTERRUPTED = 130


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, with where it is and how to fix it."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str
    hint: str = ""

    def location(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        """``file:line:col field: message (hint)``; no file: the command line's own problem."""
        where = self.location()
        field = f"{self.field}:" if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        head = " ".join(part for part in (where, field) if part)
        return f"{head} {self.message}{hint}" if head else f"{self.message}{hint}"


class DrpError(Exception):
    """Base of every error drp raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


class InputError(DrpError):
    """Bad input that a person must fix: carries every problem found."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", None, None, "", problems)]  # the command line's
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RunbookError(InputError):
    """The runbook YAML is wrong: the runbook author fixes it."""


class InventoryError(InputError):
    """The inventory is wrong, or names a host that does not exist."""


class ConfigError(InputError):
    """The team's config file (or a runbook's notify: section) is wrong or incomplete."""


class ParamError(InputError):
    """A parameter given on the command line is missing or invalid."""


class ConnectError(DrpError):
    """A host could not be reached (retryable: the link may come back)."""

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(f"{host}: {message}")


class HostKeyError(ConnectError):
    """The host's SSH key is unknown or changed: refused, never auto-accepted."""


class AuthError(ConnectError):
    """The host refused our credentials: retrying the same ones cannot help."""


class CommandTimeout(DrpError):
    """A command ran longer than its timeout and was killed on the host."""

    exit_code = ExitCode.STEP_FAILED


class Cancelled(DrpError):
    """The operator interrupted the run (Ctrl-C); running commands were killed."""

    exit_code = ExitCode.INTERRUPTED


class StepFailed(DrpError):
    """A step failed on a host; carries the last command result when there is one."""

    exit_code = ExitCode.STEP_FAILED


class JournalError(DrpError):
    """The journal is missing, corrupt, locked or does not match the runbook."""

    exit_code = ExitCode.JOURNAL


class LockedError(DrpError):
    """Another run holds the lock on a host or on a journal."""

    exit_code = ExitCode.LOCKED
