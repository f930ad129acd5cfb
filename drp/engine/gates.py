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

from typing import Protocol, runtime_checkable

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
        with hr.shared.gate_lock:
            hr.check_cancel()
            answer = hr.shared.operator.decide(
                GateRequest(kind, hr.host.name, ps.id, ps.step.title, text)
            )
            hr.check_cancel()  # interrupted while asking: the gate stays unanswered
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
        check = _poll(hr, ps, check, needed, approvers)
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
) -> ApprovalCheck:
    """Look for approvals every ``approval_poll`` seconds until there are ``needed``."""
    told: set[str] = set()
    said = ""
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
            return check
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


def confirm(hr: HostView, ps: PlannedStep) -> None:
    """A destructive step runs only once confirmed; a refusal or a pause stops the host."""
    prompt = confirm_question(ps.step, hr.host.name)  # the question the plan shows
    answer = ask(hr, ps, "confirm", hr.render(prompt, shell=False))
    if answer.decision is Decision.REJECT:
        raise HostStopped(HostStatus.REJECTED, f"{ps.id}: refused by {answer.by}")
    if answer.decision is Decision.PAUSE:
        raise HostStopped(
            HostStatus.PAUSED,
            f"{ps.id} needs confirmation: resume with --yes or --approve {ps.id}",
        )


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
