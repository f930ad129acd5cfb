"""One host's run: its connection, its steps in order, its gates, retries and rollback.

:class:`HostRun` is what a worker thread executes for one host. It emits
events (journal first, then console) *before* each side effect and after it,
and never prints. The step kinds themselves live in :mod:`drp.engine.actions`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from drp.engine import actions, gates, leftovers
from drp.engine.events import Event, EventType
from drp.engine.hostview import Shared
from drp.engine.lock import DEFAULT_LOCK_DIR, Holder, acquire, lock_become, release
from drp.engine.options import HostResume
from drp.engine.plan import PlannedStep
from drp.engine.retry import AttemptFailed, RetryHooks, connect_policy, retrying
from drp.engine.spool import (
    CAPTURE_CUT,
    MAX_STORED_CAPTURE,
    SENSITIVE,
    Spool,
    clip,
    closed_spool,
    tee_to,
)
from drp.engine.stops import HostStopped
from drp.engine.witness import leave_witness
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
from drp.results import CommandResult, HostStatus, StepStatus
from drp.runbook.template import TemplateProblem, evaluate, render
from drp.transport.base import OutputCallback, PathChoice, Transport
from drp.transport.command import wrap_become


class HostRun:
    """Runs every planned step on one host, in order."""

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
    ) -> CommandResult:
        """Run one command (with sudo when the step needs it) and journal the attempt.

        ``become`` overrides the step's setting (the lock commands, which belong to no step).
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

    # -- the host's run -----------------------------------------------------
    def execute(self) -> HostStatus:
        if self.resume.done and all(
            ps.id in self.resume.done for ps in self.shared.plan.steps[self.host.name]
        ):  # finished in an earlier session: no connection, no lock
            self.emit(
                EventType.HOST_FINISHED,
                outcome=HostStatus.OK.value,
                message="nothing left to do: every step done in an earlier session",
            )
            return HostStatus.OK
        status = HostStatus.OK
        try:
            self.allow_console(any(ps.console for ps in self.shared.plan.steps[self.host.name]))
            self.connect()
            if self.resumed:
                leftovers.settle(self)
            self.take_lock()
            for ps in self.shared.plan.steps[self.host.name]:
                if self.shared.halt.is_set():
                    raise HostStopped(HostStatus.HALTED, "rollout halted: too many hosts failed")
                self.run_step(ps)
        except HostStopped as stop:
            status = stop.status
        except Cancelled:
            status = HostStatus.INTERRUPTED
        except LockedError as exc:
            self.emit(EventType.LOCK_ACQUIRED, outcome="refused", message=str(exc))
            status = HostStatus.LOCKED
        except DrpError as exc:  # a failure no step handled: this host stops, the others go on
            self.drop_lock()
            self.emit(
                EventType.HOST_FINISHED, outcome=HostStatus.FAILED.value, message=f"stopped: {exc}"
            )
            return HostStatus.FAILED
        if status not in (HostStatus.INTERRUPTED, HostStatus.UNREACHABLE, HostStatus.LOCKED):
            leave_witness(self)  # the chain head, on the host (see drp.engine.witness)
        # paused, interrupted or unreachable: the run goes on later and still owns the host
        if status in (HostStatus.OK, HostStatus.FAILED, HostStatus.REJECTED, HostStatus.HALTED):
            self.drop_lock()
        self.emit(EventType.HOST_FINISHED, outcome=status.value)
        return status

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

    def _lock_runner(self, command: str) -> CommandResult:
        root = lock_become(self.host, self.shared.plan.runbook.defaults.become)
        return self.exec(command, ps=None, phase="lock", record=False, become=root)

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

    def drop_lock(self) -> None:
        if not self.locked:
            return
        try:
            self.transport.connect()
            if release(self._lock_runner, self.lock_dir(), self.shared.options.run_id):
                self.emit(EventType.LOCK_RELEASED, data={"path": self.lock_dir()})
        except DrpError as exc:
            self.emit(
                EventType.LOCK_RELEASED,
                outcome="failed",
                message=f"could not release the lock: {exc}",
            )

    # -- one step -----------------------------------------------------------
    def run_step(self, ps: PlannedStep) -> None:
        if ps.id in self.resume.done and not self._captures_lost(ps):
            self.emit(
                EventType.STEP_SKIPPED,
                ps.id,
                outcome=StepStatus.SKIPPED.value,
                message="already done in an earlier session of this run",
                # carried forward: the journal fold keeps a step's captures from its last end
                data={"reason": "done", "captures": self._step_captures(ps)},
            )
            if ps.id in self.resume.acted:  # undone too if a later step rolls back
                self.completed.append(ps)
            return
        if ps.step.when and not self._when(ps):
            self.emit(
                EventType.STEP_SKIPPED,
                ps.id,
                outcome=StepStatus.SKIPPED.value,
                message=f"when: {ps.step.when} is false",
                data={"reason": "when"},
            )
            return
        path = self.choose_path(ps)
        if ps.id in self.resume.in_doubt and not gates.settle_in_doubt(self, ps):
            return
        started = time.monotonic()
        self.emit(
            EventType.STEP_STARTED,
            ps.id,
            data={
                "kind": ps.step.kind,
                "name": ps.step.title,
                "destructive": ps.destructive,
                "command": self._display_command(ps),
                "timeout": ps.timeout,  # per attempt, seconds (the console shows elapsed / it)
                "path": path,
            },
        )
        try:
            status, message, result = self._attempt_all(ps)
        except Cancelled:
            self._finish(ps, StepStatus.INTERRUPTED, started, "interrupted by the operator")
            raise
        except HostStopped as stop:
            self._finish(ps, _step_status(stop.status), started, str(stop))
            raise
        self._finish(ps, status, started, message)
        if status is StepStatus.FAILED:
            self._on_failure(ps, result)
        elif status is not StepStatus.SKIPPED:
            self.completed.append(ps)

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

    def _captures_lost(self, ps: PlannedStep) -> bool:
        """A capture was not journaled whole (a sensitive step's, or one longer than
        ``MAX_STORED_CAPTURE``): run the step again to get it back."""
        kept = [self.captures.get(n) for n in ps.step.capture]
        if ps.step.sensitive and SENSITIVE in kept:
            return True
        return any(isinstance(v, str) and CAPTURE_CUT in v for v in kept)

    def _display_command(self, ps: PlannedStep) -> str:
        text = ps.step.run or ps.step.local or (ps.step.wait.command if ps.step.wait else "")
        if not text:
            return ""
        try:
            return self.render(text)
        except AttemptFailed as exc:
            return f"<cannot render: {exc}>"

    def _step_captures(self, ps: PlannedStep) -> dict[str, Any]:
        """The captures of ``ps`` as the journal records them (masked when sensitive)."""
        captures = {k: v for k, v in self.captures.items() if k in ps.step.capture}
        if ps.step.sensitive:
            return dict.fromkeys(captures, SENSITIVE)
        return {
            k: clip(v, MAX_STORED_CAPTURE, " from this capture") if isinstance(v, str) else v
            for k, v in captures.items()
        }

    def _finish(self, ps: PlannedStep, status: StepStatus, started: float, message: str) -> None:
        captures = self._step_captures(ps)
        self.emit(
            EventType.STEP_FINISHED,
            ps.id,
            outcome=status.value,
            duration=round(time.monotonic() - started, 4),
            message=message,
            data={"captures": captures},
        )

    def _when(self, ps: PlannedStep) -> bool:
        try:
            return evaluate(ps.step.when or "true", self.context())
        except TemplateProblem as exc:
            raise HostStopped(HostStatus.FAILED, f"step {ps.id}: {exc}") from None

    def _attempt_all(self, ps: PlannedStep) -> tuple[StepStatus, str, CommandResult | None]:
        if ps.step.unless:
            try:
                guard = self._guard(ps)
            except AttemptFailed as exc:  # the step's on_failure applies (continue, rollback)
                return StepStatus.FAILED, f"guard of {ps.id} failed: {exc}", exc.result
            if guard.exit_code == 0:  # its last line says why, when it says anything
                said = guard.stdout.strip().splitlines()[-1:] if not ps.step.sensitive else []
                return StepStatus.SKIPPED, f"guard: {said[0] if said else 'already done'}", None
        if ps.destructive:
            gates.confirm(self, ps)
        last: list[CommandResult | None] = [None]
        attempt = [0]

        def before_sleep(number: int, delay: float, error: BaseException) -> None:
            self.emit(
                EventType.STEP_PROGRESS,
                ps.id,
                attempt=number,
                message=f"attempt {number} failed ({error}); retrying in {delay:.1f}s",
                data={"retry_in": round(delay, 2)},
            )
            if isinstance(error, AttemptFailed) and error.kind == "connection":
                self.transport.close()

        hooks = RetryHooks(before_sleep, self.shared.cancel)
        try:
            for trial in retrying(ps.retry, hooks):
                with trial:
                    attempt[0] += 1
                    outcome = actions.perform(self, ps, attempt[0])
                    last[0] = outcome.result
                    self._verify(ps, attempt[0])
        except AttemptFailed as exc:
            if exc.kind == "connection":
                raise HostStopped(HostStatus.UNREACHABLE, str(exc)) from None
            return StepStatus.FAILED, str(exc), exc.result
        return StepStatus.OK, outcome.message, last[0]

    def _guard(self, ps: PlannedStep) -> CommandResult:
        """Run the step's ``unless`` guard; exit 0 means the step is already done.

        AttemptFailed when it could not be run or timed out; a lost link stops the host.
        """
        try:
            return self.exec(
                self.render(ps.step.unless or "true"), ps=ps, phase="guard", timeout=ps.timeout
            )
        except AttemptFailed as exc:
            if exc.kind == "connection":
                raise HostStopped(HostStatus.UNREACHABLE, str(exc)) from None
            raise

    def _verify(self, ps: PlannedStep, attempt: int) -> None:
        for command in ps.step.verify:
            result = self.exec(
                self.render(command), ps=ps, phase="verify", attempt=attempt, timeout=ps.timeout
            )
            if result.exit_code != 0:
                raise AttemptFailed(
                    "verify", f"verify failed (exit {result.exit_code}): {_first(command)}", result
                )

    # -- failure and rollback -------------------------------------------------
    def _on_failure(self, ps: PlannedStep, result: CommandResult | None) -> None:
        if ps.on_failure == "continue":
            return
        if ps.on_failure == "rollback":
            self.roll_back(ps)
        raise HostStopped(HostStatus.FAILED, f"step {ps.id} failed")

    def roll_back(self, failed: PlannedStep) -> None:
        """Undo the failed step, then every completed step, newest first."""
        for ps in [failed, *reversed(self.completed)]:
            command = actions.rollback_command(self, ps)
            if command is None:
                continue
            self.emit(EventType.ROLLBACK_STARTED, ps.id, data={"command": command})
            try:
                result = self.exec(command, ps=ps, phase="rollback", timeout=ps.timeout)
            except AttemptFailed as exc:
                self.emit(EventType.ROLLBACK_FINISHED, ps.id, outcome="failed", message=str(exc))
                continue
            self.emit(
                EventType.ROLLBACK_FINISHED,
                ps.id,
                exit_code=result.exit_code,
                outcome="ok" if result.exit_code == 0 else "failed",
            )


def _first(command: str) -> str:
    line = command.strip().splitlines()[0] if command.strip() else ""
    return line[:100]


def _refused(exc: ConnectError) -> bool:
    return isinstance(exc, (AuthError, HostKeyError))


def _step_status(status: HostStatus) -> StepStatus:
    return {
        HostStatus.PAUSED: StepStatus.PAUSED,
        HostStatus.REJECTED: StepStatus.REJECTED,
        HostStatus.UNREACHABLE: StepStatus.UNREACHABLE,
        HostStatus.INTERRUPTED: StepStatus.INTERRUPTED,
    }.get(status, StepStatus.FAILED)
