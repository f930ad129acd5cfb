"""What one attempt of a step's action ends with.

:class:`ActionOutcome` when it succeeded; :func:`check_exit` turns an exit code
the step does not count as success into :class:`drp.engine.retry.AttemptFailed`,
for the retry policy to judge. Shared by :mod:`drp.engine.actions` and
:mod:`drp.engine.putfile`.
"""

from __future__ import annotations

from dataclasses import dataclass

from drp.engine.plan import PlannedStep
from drp.engine.retry import AttemptFailed
from drp.results import CommandResult


@dataclass(frozen=True)
class ActionOutcome:
    result: CommandResult | None
    message: str = ""


def check_exit(ps: PlannedStep, result: CommandResult, command: str) -> None:
    if result.exit_code not in ps.step.success_codes:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        tail = f": {detail[-1][:200]}" if detail and not ps.step.sensitive else ""
        raise AttemptFailed("exit", f"exit code {result.exit_code}{tail}", result)
