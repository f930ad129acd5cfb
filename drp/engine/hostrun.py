"""One host's run: its steps in order, their gates, guards, retries, verification and rollback.

:class:`HostRun` is what a worker thread executes for one host. It emits
events (journal first, then console) *before* each side effect and after it,
and never prints. Its connection, commands and lock are those of
:class:`drp.engine.session.HostSession`; the step kinds themselves live in
:mod:`drp.engine.actions`.
"""

from __future__ import annotations

import time
from typing import Any

from drp.engine import actions, gates, leftovers
from drp.engine.events import EventType
from drp.engine.plan import PlannedStep
from drp.engine.retry import AttemptFailed, RetryHooks, retrying
from drp.engine.session import HostSession
from drp.engine.spool import CAPTURE_CUT, MAX_STORED_CAPTURE, SENSITIVE, clip
from drp.engine.stops import HostStopped
from drp.engine.witness import leave_witness
from drp.errors import Cancelled, DrpError, LockedError
from drp.results import CommandResult, HostStatus, StepStatus
from drp.runbook.template import TemplateProblem, evaluate


class HostRun(HostSession):
    """Runs every planned step on one host, in order."""

    #: Steps an earlier session of this run finished: neither run nor journaled again.
    carried: frozenset[str] = frozenset()

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
            self.carry_done_steps()
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
        # paused, interrupted or unreachable: the run goes on later and still owns the host
        release = status in (
            HostStatus.OK,
            HostStatus.FAILED,
            HostStatus.REJECTED,
            HostStatus.HALTED,
        )
        if status not in (HostStatus.INTERRUPTED, HostStatus.UNREACHABLE, HostStatus.LOCKED):
            # the chain head, on the host (see drp.engine.witness); the lock's release rides
            # along in the same command
            said = leave_witness(self, then=self.release_script() if release else "")
            if said is not None and release:
                self.lock_dropped(said)
        if release:
            self.drop_lock()  # unless it went with the witness
        self.emit(EventType.HOST_FINISHED, outcome=status.value)
        return status

    def carry_done_steps(self) -> None:
        """On resume: one record for every step an earlier session finished, however many.

        The journal already holds each one's end and captures, and the fold keeps them
        (:mod:`drp.journal.state`), so nothing per step is written again: a resume of a
        10,000-step run costs one record here, not 10,000 fsyncs and as many lines.
        """
        planned = self.shared.plan.steps[self.host.name]
        self.carried = frozenset(
            ps.id for ps in planned if ps.id in self.resume.done and not self._captures_lost(ps)
        )
        if self.carried:
            self.emit(
                EventType.HOST_RESUMED,
                message=f"{len(self.carried)} steps done in earlier sessions: not run again",
                data={"done_earlier": len(self.carried)},
            )

    # -- one step -----------------------------------------------------------
    def run_step(self, ps: PlannedStep) -> None:
        if ps.id in self.carried:
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


def _step_status(status: HostStatus) -> StepStatus:
    return {
        HostStatus.PAUSED: StepStatus.PAUSED,
        HostStatus.REJECTED: StepStatus.REJECTED,
        HostStatus.UNREACHABLE: StepStatus.UNREACHABLE,
        HostStatus.INTERRUPTED: StepStatus.INTERRUPTED,
    }.get(status, StepStatus.FAILED)
