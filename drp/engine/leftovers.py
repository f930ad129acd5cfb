"""Attempts an earlier drp process left running on a host: wait for them, or kill them.

A resumed session calls :func:`settle` for each host right after connecting,
before the lock, any guard, retry or step: the transport lists the attempts of
this run that an earlier drp (killed, or cut off by a dropped link) started and
that still run there (see :mod:`drp.transport.attempts`). Two copies of a
command never overlap:

- with ``--kill-in-doubt`` each is killed (journaled), then the usual in-doubt
  rules apply;
- otherwise drp waits for each to end, the console showing so. When the step
  in doubt would be put to the operator, the question is asked first, while
  the first attempt still runs, and says so; an answer of "pause" (nobody at
  the terminal) stops the host at once, without waiting.
"""

from __future__ import annotations

import time

from drp.engine import gates
from drp.engine.events import EventType
from drp.engine.hostview import HostView
from drp.engine.stops import HostStopped
from drp.errors import ConnectError
from drp.results import HostStatus
from drp.transport.attempts import Leftover

POLL_SECONDS = 2.0  # between two looks at an earlier attempt drp waits for


def settle(hr: HostView) -> None:
    """Wait for (or kill) what an earlier session of this run left running on the host."""
    try:
        found = hr.transport.leftovers()
    except ConnectError as exc:
        raise HostStopped(HostStatus.UNREACHABLE, str(exc)) from None
    if not found:
        return
    if hr.shared.options.kill_in_doubt:
        found = [lo for lo in found if not _kill(hr, lo)]
    for lo in found:
        _ask_first(hr, lo)
    _wait(hr, found)


def _note(
    hr: HostView, lo: Leftover, message: str, *, transient: bool = False, **data: object
) -> None:
    hr.emit(
        EventType.STEP_PROGRESS,
        lo.step or None,
        transient=transient,
        message=message,
        data={"earlier": {"pgid": lo.pgid, "label": lo.label, "age": lo.age, **data}},
    )


def _kill(hr: HostView, lo: Leftover) -> bool:
    """Kill one earlier attempt; True when the host confirmed it is gone."""
    what = lo.describe(hr.host.name)
    killed = hr.transport.kill_leftover(lo)
    if killed.confirmed:
        _note(hr, lo, f"killed {what}: --kill-in-doubt", outcome=killed.verdict)
        return True
    _note(
        hr,
        lo,
        f"could not confirm the kill of {what} ({killed.detail}): waiting for it to end",
        outcome=killed.verdict,
    )
    return False


def _ask_first(hr: HostView, lo: Leftover) -> None:
    """Put the step in doubt to the operator now, saying its first attempt still runs."""
    step = next((ps for ps in hr.shared.plan.steps[hr.host.name] if ps.id == lo.step), None)
    if step is None or step.id not in hr.resume.in_doubt or step.id in hr.in_doubt_answers:
        return
    if step.step.unless or hr.shared.options.in_doubt != "ask":
        return  # the guard or --retry/--skip-in-doubt decides, once the first attempt ended
    running = (
        f"Its first attempt is STILL RUNNING: {lo.describe(hr.host.name)}. Whatever you "
        "answer, drp waits for it to end before running anything on this host "
        f"(or resume with --kill-in-doubt to kill it)."
    )
    hr.in_doubt_answers[step.id] = gates.settle_in_doubt(hr, step, running=running)


def _wait(hr: HostView, found: list[Leftover]) -> None:
    """Wait until none of ``found`` runs any more, telling the console and the journal."""
    if not found:
        return
    began = time.monotonic()
    for lo in found:
        _note(hr, lo, f"waiting for {lo.describe(hr.host.name)} to end (--kill-in-doubt kills it)")
    tokens = {lo.token for lo in found}
    while True:
        try:
            alive = [lo for lo in hr.transport.leftovers() if lo.token in tokens]
        except ConnectError as exc:  # the earlier attempt's fate is unknown: stop here
            raise HostStopped(HostStatus.UNREACHABLE, str(exc)) from None
        if not alive:
            break
        for lo in alive:
            _note(
                hr,
                lo,
                f"waiting for {lo.describe(hr.host.name)} to end",
                transient=True,
                waited=round(time.monotonic() - began, 1),
            )
        hr.sleep(POLL_SECONDS)
    waited = round(time.monotonic() - began, 1)
    for lo in found:
        _note(hr, lo, f"the earlier attempt ended after drp waited {waited:g}s", waited=waited)
