"""Gates: where a run waits for a person: manual steps, destructive steps, steps in doubt.

A gate is answered by ``--approve STEP`` (any gate), ``--yes`` (confirmations only:
a manual step is never approved in bulk), or the :class:`drp.engine.options.Operator`
at the terminal. Every question and every answer is journaled with who gave it.

A manual or destructive step with ``approvers:`` is answered by none of these: it
waits for ``min_approvals`` signed approvals by others (``drp approve``), which it
polls from the run's :class:`drp.engine.options.ApprovalSource`; the run's own
operator cannot approve it, at the prompt or with ``--approve``.

Ctrl-C while a question is open withdraws it: the executor calls the operator's
``interrupt()`` (when it has one, see :class:`Interruptible`) so that the prompt
returns at once, and an answer that arrives once the run is cancelled is dropped,
never journaled: the gate stays open and ``drp resume`` asks it again.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from drp.durations import format_duration
from drp.engine.events import EventType
from drp.engine.hostview import HostView
from drp.engine.options import (
    GATE_CHOICES,
    ApprovalCheck,
    Decision,
    GateAnswer,
    GateKind,
    GateRequest,
)
from drp.engine.plan import PlannedStep, confirm_question
from drp.engine.stops import HostStopped
from drp.results import HostStatus, StepStatus


@runtime_checkable
class Interruptible(Protocol):
    """An operator whose open question can be withdrawn from another thread (Ctrl-C).

    Gates are asked from a host's worker thread, but Ctrl-C reaches only the main
    thread: ``interrupt()`` is how the executor tells a waiting prompt to give up.
    ``decide`` then returns (any answer; it is dropped) or raises ``Cancelled``.
    """

    def interrupt(self) -> None: ...


def ask(hr: HostView, ps: PlannedStep, kind: GateKind, text: str) -> GateAnswer:
    """Put a question to the operator (unless the command line answered it) and journal both."""
    opts = hr.shared.options
    if ps.step.approvers and kind != "in-doubt":
        return _await_approvals(hr, ps, kind, text)
    if ps.id in opts.approve:
        answer = GateAnswer(Decision.APPROVE, opts.operator, f"--approve {ps.id}")
    elif kind == "confirm" and opts.yes:
        answer = GateAnswer(Decision.APPROVE, opts.operator, "--yes")
    else:
        hr.emit(EventType.STEP_WAITING, ps.id, message=text, data={"kind": kind})
        answer = _decide(hr, ps, kind, text)
    if answer.decision is Decision.APPROVE:
        hr.emit(
            EventType.STEP_APPROVED,
            ps.id,
            data={"by": answer.by, "note": answer.note, "kind": kind},
        )
    elif answer.decision is Decision.REJECT:
        hr.emit(
            EventType.STEP_REJECTED,
            ps.id,
            data={"by": answer.by, "note": answer.note, "kind": kind},
        )
    return answer


def _decide(hr: HostView, ps: PlannedStep, kind: GateKind, text: str) -> GateAnswer:
    """The operator's answer; once the step's ``gate_timeout`` passes, its ``on_timeout``."""
    limit = ps.step.gate_timeout if kind != "in-doubt" else None
    deadline = time.monotonic() + limit if limit else None
    while True:
        with hr.shared.gate_lock:
            hr.check_cancel()
            answer = hr.shared.operator.decide(
                GateRequest(kind, hr.host.name, ps.id, ps.step.title, text, deadline)
            )
            hr.check_cancel()  # interrupted while asking: the gate stays unanswered
        if answer.decision is not Decision.LATE:
            return answer
        late = _deadline_passed(hr, ps, kind)
        if late is not None:
            return late
        deadline = None  # notified: wait on, without a deadline


def _deadline_passed(hr: HostView, ps: PlannedStep, kind: GateKind) -> GateAnswer | None:
    """Journal (and so notify) a gate's passed deadline, then apply ``on_timeout``:
    notify (None: keep waiting), fail (HostStopped) or pause (a pause answer)."""
    policy = ps.step.on_timeout or "notify"
    limit = ps.step.gate_timeout or 0.0
    then = {"notify": "still waiting", "fail": "the step fails", "pause": "the run pauses"}
    hr.emit(
        EventType.STEP_DEADLINE,
        ps.id,
        message=f"no answer within {format_duration(limit)} (gate_timeout): {then[policy]}",
        data={"kind": kind, "gate_timeout": limit, "on_timeout": policy},
    )
    if policy == "fail":
        raise HostStopped(
            HostStatus.FAILED,
            f"{ps.id}: no answer within {format_duration(limit)} (on_timeout: fail)",
        )
    if policy == "pause":
        return GateAnswer(Decision.PAUSE, "", "gate_timeout passed")
    return None


def approve_command(run_id: str, step: str) -> str:
    """The command an approver runs (on any machine that reaches the run's store)."""
    return f"drp approve {run_id} {step}"


def _await_approvals(hr: HostView, ps: PlannedStep, kind: GateKind, text: str) -> GateAnswer:
    """Wait, polling, until enough others approved ``ps`` with ``drp approve``; journal who.

    Nothing the run's own operator does approves it: the wait ends with the approvals,
    or with Ctrl-C (the run pauses; ``drp resume`` looks again, and counts the approvals
    given meanwhile).
    """
    opts = hr.shared.options
    approvers = tuple(ps.step.approvers)
    needed = ps.step.needed_approvals
    source = opts.approvals
    command = approve_command(opts.run_id, ps.id)
    if source is None:  # the CLI always gives one; a library caller may not
        return GateAnswer(Decision.PAUSE, "", "no source of approvals")
    check = source.check(ps.id, hr.host.name, approvers)
    if len(check.valid) < needed:
        hr.emit(
            EventType.STEP_WAITING,
            ps.id,
            message=f"{text}\n\nNeeds {_of(needed, approvers)}, not {opts.operator}: "
            f"each runs {command}",
            data={
                "kind": kind,
                "approvers": list(approvers),
                "min_approvals": needed,
                "command": command,
                **source.facts(),
            },
        )
        check, late = _poll(hr, ps, check, needed, approvers)
        if late is not None:
            return late
    valid = check.valid[:needed] if needed else check.valid
    by = ", ".join(a.by for a in valid)
    note = "; ".join(f"{a.by}: {a.note}" for a in valid if a.note)
    hr.emit(
        EventType.STEP_APPROVED,
        ps.id,
        data={
            "by": by,
            "note": note,
            "kind": kind,
            "approvals": [
                {"by": a.by, "note": a.note, "key": a.key, "signed": a.signed} for a in valid
            ],
        },
    )
    return GateAnswer(Decision.APPROVE, by, note)


def _of(needed: int, approvers: tuple[str, ...]) -> str:
    names = ", ".join(approvers)
    return f"the approval of {names}" if len(approvers) == 1 else f"{needed} approval(s) of {names}"


def _poll(
    hr: HostView, ps: PlannedStep, check: ApprovalCheck, needed: int, approvers: tuple[str, ...]
) -> tuple[ApprovalCheck, GateAnswer | None]:
    """Look for approvals every ``approval_poll`` seconds until there are ``needed``, or
    the step's ``gate_timeout`` passes and its ``on_timeout`` pauses the run (the answer)."""
    told: set[str] = set()
    said = ""
    limit = ps.step.gate_timeout
    deadline = time.monotonic() + limit if limit else None
    while True:
        for problem in check.refused:
            if problem not in told:  # journaled once: a forged or misplaced approval
                told.add(problem)
                hr.emit(
                    EventType.STEP_PROGRESS,
                    ps.id,
                    message=f"approval not counted: {problem}",
                    data={"refused": problem},
                )
        if len(check.valid) >= needed:
            return check, None
        if deadline is not None and time.monotonic() > deadline:
            deadline = None  # once
            late = _deadline_passed(hr, ps, "manual" if ps.step.kind == "manual" else "confirm")
            if late is not None:
                return check, late
        given = {a.by for a in check.valid} | {hr.shared.options.operator}  # never theirs
        missing = needed - len(check.valid)
        line = f"waiting for {missing} more approval(s) from " + ", ".join(
            name for name in approvers if name not in given
        )
        if check.trouble:
            line += f" ({check.trouble})"
        hr.emit(EventType.STEP_PROGRESS, ps.id, message=line, transient=line == said)
        said = line
        hr.sleep(hr.shared.options.approval_poll)
        check = hr.shared.options.approvals.check(ps.id, hr.host.name, approvers)  # type: ignore[union-attr]


def paused_at(hr: HostView, ps: PlannedStep, what: str) -> str:
    """Why a host paused at a gate, and the command(s) that go on."""
    run_id = hr.shared.options.run_id
    if ps.step.approvers:
        return (
            f"{ps.id} {what} by {_of(ps.step.needed_approvals, tuple(ps.step.approvers))}: "
            f"they run {approve_command(run_id, ps.id)}; then drp resume {run_id}"
        )
    if ps.step.kind == "manual":
        return f"paused at manual step {ps.id}. Resume with: drp resume {run_id} --approve {ps.id}"
    return f"{ps.id} {what}: resume with --yes or --approve {ps.id}"


def confirm(hr: HostView, ps: PlannedStep) -> None:
    """A destructive step runs only once confirmed; a refusal or a pause stops the host."""
    prompt = confirm_question(ps.step, hr.host.name)  # the question the plan shows
    answer = ask(hr, ps, "confirm", hr.render(prompt, shell=False))
    if answer.decision is Decision.REJECT:
        raise HostStopped(HostStatus.REJECTED, f"{ps.id}: refused by {answer.by}")
    if answer.decision is Decision.PAUSE:
        raise HostStopped(HostStatus.PAUSED, paused_at(hr, ps, "needs confirmation"))


def settle_in_doubt(hr: HostView, ps: PlannedStep, *, running: str = "") -> bool:
    """A step started in an earlier session but never finished: decide, never guess.

    ``running`` says that its first attempt still runs on the host (see
    :mod:`drp.engine.leftovers`, which asks before it waits); an answer given
    then is not asked again.
    """
    if ps.id in hr.in_doubt_answers:
        return hr.in_doubt_answers[ps.id]
    if ps.step.unless:
        return True  # its guard runs first and decides
    policy = hr.shared.options.in_doubt
    if policy == "retry":
        return True
    if policy == "skip":
        hr.emit(
            EventType.STEP_SKIPPED,
            ps.id,
            outcome=StepStatus.SKIPPED.value,
            message="in doubt; skipped by the operator (--skip-in-doubt)",
            data={"reason": "in-doubt"},
        )
        return False
    rerun, skip, pause = GATE_CHOICES["in-doubt"]  # the words the prompt takes
    text = (
        f"Step {ps.id!r} started in an earlier session but its end was never recorded. "
        + (running + " " if running else "It may have run, partly or fully. ")
        + f"Answer {rerun} to run it again, {skip} to mark it done and go on, or {pause} "
        "(non-interactively: "
        f"drp resume {hr.shared.options.run_id} --retry-in-doubt or --skip-in-doubt)."
    )
    answer = ask(hr, ps, "in-doubt", text)
    if answer.decision is Decision.APPROVE:
        return True
    if answer.decision is Decision.REJECT:
        hr.emit(
            EventType.STEP_SKIPPED,
            ps.id,
            outcome=StepStatus.SKIPPED.value,
            message=f"in doubt; marked done by {answer.by}",
            data={"reason": "in-doubt"},
        )
        return False
    still = " and its first attempt is still running on the host" if running else ""
    kill = ", --kill-in-doubt to kill that first attempt" if running else ""
    raise HostStopped(
        HostStatus.PAUSED,
        f"step {ps.id} is in doubt{still}: resume with --retry-in-doubt or "
        f"--skip-in-doubt (drp waits for a first attempt still running{kill})",
    )
