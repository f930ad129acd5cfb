"""What the step kinds, gates, leftovers and witness see of one host's run.

:class:`HostView` is the part of :class:`drp.engine.hostrun.HostRun` they use,
as a ``Protocol``: the modules beneath ``hostrun`` take a ``HostView`` and never
import ``hostrun``, so the engine's imports point one way. :class:`Shared` is
what every host's run of one execution shares.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from drp.engine.events import EventType, Sink
from drp.engine.options import HostResume, Operator, RunOptions
from drp.engine.plan import Plan, PlannedStep
from drp.inventory import Become, Host
from drp.redact import Redactor
from drp.results import CommandResult
from drp.transport.base import OutputCallback, Transport


@dataclass
class Shared:
    """What every host's run shares: sinks, the operator, the stop signals."""

    plan: Plan
    options: RunOptions
    emit: Sink
    operator: Operator
    local: Transport
    cancel: threading.Event = field(default_factory=threading.Event)
    halt: threading.Event = field(default_factory=threading.Event)
    gate_lock: threading.Lock = field(default_factory=threading.Lock)


class HostView(Protocol):
    """One host's run as a step's code uses it (see :class:`drp.engine.hostrun.HostRun`)."""

    shared: Shared
    host: Host
    transport: Transport
    resume: HostResume
    captures: dict[str, Any]
    redactor: Redactor
    in_doubt_answers: dict[str, bool]  # asked while the first attempt still ran

    def emit(self, type_: EventType, step: str | None = None, **fields: Any) -> None:
        """Emit an event of this host (masked by ``redactor``)."""

    def render(self, text: str, *, shell: bool = True) -> str:
        """Render a template with this host's context; AttemptFailed when it cannot."""

    def exec(
        self,
        command: str,
        *,
        ps: PlannedStep | None,
        phase: str,
        attempt: int = 1,
        local: bool = False,
        timeout: float | None = None,
        stdin: str | None = None,
        on_output: OutputCallback | None = None,
        record: bool = True,
        become: Become | None = None,
        last: bool = False,
    ) -> CommandResult:
        """Run one command on the host (or locally) and journal the attempt."""

    def record_attempt(
        self, ps: PlannedStep, phase: str, attempt: int, command: str, result: CommandResult
    ) -> None:
        """Journal an attempt run with ``record=False`` after all."""

    def check_cancel(self) -> None:
        """Raise Cancelled once the operator interrupted the run."""

    def sleep(self, seconds: float) -> None:
        """Wait, unless the run is cancelled meanwhile (then raise Cancelled)."""
