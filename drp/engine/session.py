"""One host's session: its connection, its commands and their journal records, its lock.

:class:`HostSession` holds what a host's run keeps while it lasts (captures,
the redactor, the steps done) and does what is not a step: emit this host's
events (masked), render templates with its context, run one command (with sudo
when asked) and journal the attempt, open the connection with retries and
backoff, take and drop the host lock, let the transport pick a step's path.
:class:`drp.engine.hostrun.HostRun` builds the step loop on it, and is the
:class:`drp.engine.hostview.HostView` the step kinds, gates and witness use.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from drp.engine.events import Event, EventType
from drp.engine.hostview import Shared
from drp.engine.lock import (
    DEFAULT_LOCK_DIR,
    Holder,
    acquire,
    lock_become,
    release,
    release_script,
    released,
)
from drp.engine.options import HostResume
from drp.engine.plan import PlannedStep
from drp.engine.retry import AttemptFailed, RetryHooks, connect_policy, retrying
from drp.engine.spool import Spool, clip, closed_spool, tee_to
from drp.engine.stops import HostStopped
from drp.errors import (
    AuthError,
    Cancelled,
    CommandTimeout,
    ConnectError,
    DrpError,
    HostKeyError,
    LockedError,
)
from drp.inventory import Become, Host
from drp.results import CommandResult, HostStatus
from drp.runbook.template import TemplateProblem, render
from drp.transport.base import OutputCallback, PathChoice, Transport
from drp.transport.command import wrap_become


class HostSession:
    """One host's connection, commands, events and lock, for the steps run on it."""

    def __init__(
        self, shared: Shared, host: Host, transport: Transport, resume: HostResume | None = None
    ) -> None:
        self.shared = shared
        self.host = host
        self.transport = transport
        self.resumed = resume is not None  # a later session: earlier attempts may still run
        self.resume = resume or HostResume()
        self.in_doubt_answers: dict[str, bool] = {}  # asked while the first attempt still ran
        self.captures: dict[str, Any] = dict(self.resume.captures)
        self.completed: list[PlannedStep] = []
        self.redactor = shared.plan.redactor
        self.locked = False

    # -- events -------------------------------------------------------------
    def emit(self, type_: EventType, step: str | None = None, **fields: Any) -> None:
        data = fields.pop("data", {})
        message = self.redactor.text(str(fields.pop("message", "")))
        self.shared.emit(
            Event(
                type_,
                self.shared.options.run_id,
                host=self.host.name,
                step=step,
                message=message,
                data=self.redactor(data),
                **fields,
            )
        )

    # -- commands -----------------------------------------------------------
    def context(self) -> dict[str, Any]:
        opts = self.shared.options
        run = {
            "id": opts.run_id,
            "runbook": self.shared.plan.runbook.name,
            "operator": opts.operator,
            "dry_run": False,
        }
        return self.shared.plan.context(self.host, self.captures, run)

    def render(self, text: str, *, shell: bool = True) -> str:
        try:
            return render(text, self.context(), shell=shell)
        except TemplateProblem as exc:
            raise AttemptFailed("exit", str(exc)) from None

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
        """Run one command (with sudo when the step needs it) and journal the attempt.

        ``become`` overrides the step's setting (the lock commands, which belong to no step).
        ``last``: the host session's last command (see :class:`drp.transport.base.Transport`).
        """
        transport = self.shared.local if local else self.transport
        line, send = command, stdin
        if become is None and ps is not None and ps.become:
            become = self.host.become or Become()
        if not local and become is not None and self.host.user != become.user:
            line, send = wrap_become(
                command, become, self.shared.options.password_for(self.host.name), stdin=stdin
            )
        self.check_cancel()
        label = f"{ps.id} {phase} {attempt}" if ps is not None else phase
        spool = self._spool(ps, label) if record else None
        try:
            result = transport.run(
                line,
                timeout=timeout,
                stdin=send,
                on_output=tee_to(spool, self.redactor.text, on_output),
                label=label,
                last=last,
            )
        except CommandTimeout as exc:
            self._record(ps, phase, attempt, command, None, str(exc), record, closed_spool(spool))
            raise AttemptFailed("timeout", str(exc)) from None
        except ConnectError as exc:
            self._record(ps, phase, attempt, command, None, str(exc), record, closed_spool(spool))
            raise AttemptFailed("connection", str(exc)) from None
        except BaseException:
            closed_spool(spool)
            raise
        if attempt != result.attempt:
            result = replace(result, attempt=attempt)
        self._record(ps, phase, attempt, command, result, "", record, closed_spool(spool))
        return result

    def _spool(self, ps: PlannedStep | None, label: str) -> Spool | None:
        """Where this command's whole stdout goes once it outgrows memory (never a
        sensitive step's: its output is dropped beyond what memory keeps)."""
        folder = self.shared.options.output_dir
        if folder is None or (ps is not None and ps.step.sensitive):
            return None
        return Spool(Path(folder), f"{self.host.name}-{label.replace(' ', '-')}")

    def record_attempt(
        self, ps: PlannedStep, phase: str, attempt: int, command: str, result: CommandResult
    ) -> None:
        self._record(ps, phase, attempt, command, result, "", True)

    def _record(
        self,
        ps: PlannedStep | None,
        phase: str,
        attempt: int,
        command: str,
        result: CommandResult | None,
        error: str,
        record: bool,
        spilled: Path | None = None,
    ) -> None:
        if not record:
            return
        sensitive = ps is not None and ps.step.sensitive
        stdout = result.stdout if result else ""
        stderr = result.stderr if result else ""
        if sensitive:
            stdout = f"<sensitive: {len(stdout)} bytes>" if stdout else ""
            stderr = f"<sensitive: {len(stderr)} bytes>" if stderr else ""
        ok = result is not None and (
            ps is None or phase != "action" or result.exit_code in ps.step.success_codes
        )
        self.emit(
            EventType.STEP_ATTEMPT,
            ps.id if ps else None,
            attempt=attempt,
            outcome="ok" if ok and not error else "failed",
            exit_code=result.exit_code if result else None,
            duration=round(result.duration, 4) if result else None,
            data={
                "phase": phase,
                "command": command,
                "stdout": clip(stdout),
                "stderr": clip(stderr),
                "error": error,
                **({"output_file": str(spilled)} if spilled else {}),
            },
        )

    def check_cancel(self) -> None:
        if self.shared.cancel.is_set():
            raise Cancelled("interrupted by the operator")

    def sleep(self, seconds: float) -> None:
        if self.shared.cancel.wait(max(0.0, seconds)):
            raise Cancelled("interrupted by the operator")

    def connect(self) -> None:
        """Open the connection, retried with backoff (see :func:`connect_policy`)."""
        policy = connect_policy(self.shared.plan.runbook.defaults.retry)

        def before_sleep(number: int, delay: float, error: BaseException) -> None:
            self.emit(
                EventType.HOST_UNREACHABLE,
                attempt=number,
                message=f"{error}; trying again in {delay:.1f}s",
            )

        try:
            for trial in retrying(policy, RetryHooks(before_sleep, self.shared.cancel)):
                with trial:
                    try:
                        info = self.transport.connect()
                    except ConnectError as exc:  # a refused key or login is never retried
                        raise AttemptFailed(
                            "exit" if _refused(exc) else "connection", str(exc)
                        ) from None
        except AttemptFailed as exc:
            # refused: it answered, and turned drp's login or host key down (no use waiting)
            self.emit(
                EventType.HOST_UNREACHABLE, message=str(exc), data={"refused": exc.kind == "exit"}
            )
            raise HostStopped(HostStatus.UNREACHABLE, str(exc)) from None
        self.emit(
            EventType.HOST_CONNECTED,
            data={
                "address": info.address,
                "port": info.port,
                "via_fallback": info.via_fallback,
                "via_jump": info.via_jump,
                "via_console": info.via_console,
            },
        )

    def lock_dir(self) -> str:
        return str(self.host.vars.get("drp_lock_dir", DEFAULT_LOCK_DIR))

    def _lock_runner(self, command: str, *, last: bool = False) -> CommandResult:
        root = lock_become(self.host, self.shared.plan.runbook.defaults.become)
        return self.exec(command, ps=None, phase="lock", record=False, become=root, last=last)

    def _last_lock_runner(self, command: str) -> CommandResult:
        return self._lock_runner(command, last=True)

    def take_lock(self) -> None:
        if not self.shared.options.lock:
            return
        opts = self.shared.options
        holder = Holder(
            opts.run_id, opts.operator, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        )
        try:
            acquire(self._lock_runner, self.host.name, self.lock_dir(), holder)
        except AttemptFailed as exc:
            raise LockedError(f"{self.host.name}: cannot take the lock: {exc}") from None
        self.locked = True
        self.emit(EventType.LOCK_ACQUIRED, data={"holder": opts.run_id, "path": self.lock_dir()})

    def release_script(self) -> str:
        """The shell that releases this run's lock on the host ("" when it holds none)."""
        if not self.locked:
            return ""
        return release_script(self.lock_dir(), self.shared.options.run_id)

    def lock_dropped(self, stdout: str) -> None:
        """:meth:`release_script` ran inside another command that printed ``stdout``."""
        if not self.locked:
            return
        self.locked = False
        if released(stdout):
            self.emit(EventType.LOCK_RELEASED, data={"path": self.lock_dir()})

    def drop_lock(self) -> None:
        if not self.locked:
            return
        try:
            self.transport.connect()
            self.locked = False
            if release(self._last_lock_runner, self.lock_dir(), self.shared.options.run_id):
                self.emit(EventType.LOCK_RELEASED, data={"path": self.lock_dir()})
        except DrpError as exc:
            self.emit(
                EventType.LOCK_RELEASED,
                outcome="failed",
                message=f"could not release the lock: {exc}",
            )

    # -- the path a step runs on (decided in drp.transport.paths) --------------
    def allow_console(self, allowed: bool) -> None:
        if isinstance(self.transport, PathChoice):
            self.transport.allow_console(allowed)

    def choose_path(self, ps: PlannedStep) -> str:
        """Let the transport pick this step's path; which one, for the journal and console."""
        if ps.step.local is not None or ps.step.manual is not None:
            return "local"
        if not isinstance(self.transport, PathChoice):
            return "ssh"
        self.allow_console(ps.console)
        try:
            info = self.transport.connect()
        except ConnectError:
            return "unreachable"  # the step's attempts say why, and retry
        return "console" if info.via_console else "ssh"


def _refused(exc: ConnectError) -> bool:
    return isinstance(exc, (AuthError, HostKeyError))
