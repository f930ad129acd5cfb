"""The step kinds: run, local, wait, reboot, manual, put — what each does on a host.

``put`` lives in :mod:`drp.engine.putfile`.

Each action is one attempt; retries, verification and journaling around it
belong to :mod:`drp.engine.hostrun`. An action raises
:class:`drp.engine.retry.AttemptFailed` with the kind of failure, so that the
retry policy can decide.
"""

from __future__ import annotations

import re
import shlex
import time

from drp.engine import gates
from drp.engine.defaults import (
    BOOT_ID_TIMEOUT,
    DEFAULT_BOOT_ID,
    DEFAULT_REBOOT,
    backup_path,
    poll_limit,
)
from drp.engine.events import EventType
from drp.engine.hostview import HostView
from drp.engine.options import Decision
from drp.engine.outcome import ActionOutcome, check_exit
from drp.engine.plan import PlannedStep
from drp.engine.putfile import put_file
from drp.engine.retry import AttemptFailed
from drp.engine.stops import HostStopped
from drp.errors import ConnectError
from drp.results import CommandResult, HostStatus
from drp.runbook.model import Until

PROGRESS_EVERY = 30.0  # seconds between journaled progress records when nothing changes


def perform(hr: HostView, ps: PlannedStep, attempt: int) -> ActionOutcome:
    """Run the step's action once."""
    kind = ps.step.kind
    if kind in ("run", "local"):
        return _command(hr, ps, attempt, local=kind == "local")
    if kind == "wait":
        return _wait(hr, ps, attempt)
    if kind == "reboot":
        return _reboot(hr, ps, attempt)
    if kind == "manual":
        return _manual(hr, ps)
    return put_file(hr, ps, attempt)


def _capture(hr: HostView, ps: PlannedStep, result: CommandResult) -> None:
    for name, pattern in ps.step.capture.items():
        if pattern is None:
            hr.captures[name] = result.stdout.strip()
            continue
        match = re.search(pattern, result.stdout, re.MULTILINE)
        if match is None:
            raise AttemptFailed(
                "capture", f"capture {name!r}: {pattern!r} not found in output", result
            )
        hr.captures[name] = match.group(1) if match.groups() else match.group(0)
    if ps.step.sensitive and ps.step.capture:
        from drp.redact import Redactor

        hr.redactor = Redactor.of(
            [*hr.redactor.secrets, *(str(hr.captures[n]) for n in ps.step.capture)]
        )


def _command(hr: HostView, ps: PlannedStep, attempt: int, *, local: bool) -> ActionOutcome:
    command = hr.render(ps.step.run or ps.step.local or "")
    result = hr.exec(
        command, ps=ps, phase="action", attempt=attempt, local=local, timeout=ps.timeout
    )
    check_exit(ps, result, command)
    _capture(hr, ps, result)
    return ActionOutcome(result, _summary(result, ps))


def _summary(result: CommandResult, ps: PlannedStep) -> str:
    if ps.step.sensitive:
        return ""
    lines = result.stdout.strip().splitlines()
    return lines[-1][:120] if lines else ""


def until_met(until: Until, result: CommandResult) -> bool:
    if until.exit is not None and result.exit_code != until.exit:
        return False
    if until.match and not re.search(until.match, result.stdout, re.MULTILINE):
        return False
    return not (until.not_match and re.search(until.not_match, result.stdout, re.MULTILINE))


def progress_of(pattern: str | None, text: str) -> float | None:
    if not pattern:
        return None
    match = re.search(pattern, text, re.MULTILINE)
    if not match:
        return None
    try:
        return float(match.group(1) if match.groups() else match.group(0))
    except ValueError:
        return None


def _wait(hr: HostView, ps: PlannedStep, attempt: int) -> ActionOutcome:
    spec = ps.step.wait
    assert spec is not None
    command = hr.render(spec.command)
    started = time.monotonic()
    deadline = started + spec.timeout
    journaled: tuple[float | None, float] = (None, 0.0)
    poll_timeout = poll_limit(ps.timeout, spec.interval)
    while True:
        remaining = deadline - time.monotonic()
        try:
            result = hr.exec(
                command,
                ps=ps,
                phase="poll",
                attempt=attempt,
                timeout=min(poll_timeout, max(remaining, 1.0)),
                record=False,
            )
        except AttemptFailed as exc:  # a poll lost to a flaky link is just "not yet"
            result = None
            if exc.kind == "connection":
                hr.transport.close()
                _try_connect(hr)
        if result is not None and until_met(spec.until, result):
            hr.record_attempt(ps, "poll", attempt, command, result)
            _capture(hr, ps, result)
            return ActionOutcome(result, f"condition met after {time.monotonic() - started:.0f}s")
        percent = progress_of(spec.progress, result.stdout) if result else None
        journaled = _report_progress(hr, ps, percent, started, journaled)
        if time.monotonic() >= deadline:
            if result is not None:
                hr.record_attempt(ps, "poll", attempt, command, result)
            raise AttemptFailed("timeout", f"condition not met within {spec.timeout:.0f}s", result)
        hr.sleep(min(spec.interval, max(deadline - time.monotonic(), 0.0)))


def _report_progress(
    hr: HostView,
    ps: PlannedStep,
    percent: float | None,
    started: float,
    last: tuple[float | None, float],
) -> tuple[float | None, float]:
    """Emit progress: always to the console, to the journal when it moved or every 30 s."""
    now = time.monotonic()
    moved = percent is not None and (last[0] is None or abs(percent - last[0]) >= 1.0)
    durable = moved or now - last[1] >= PROGRESS_EVERY
    hr.emit(
        EventType.STEP_PROGRESS,
        ps.id,
        transient=not durable,
        data={
            "percent": percent,
            "elapsed": round(now - started, 1),
            "timeout": ps.step.wait.timeout if ps.step.wait else None,
        },
    )
    return (percent, now) if durable else last


def _try_connect(hr: HostView) -> bool:
    try:
        hr.transport.connect()
    except ConnectError:
        return False
    return True


def _reboot(hr: HostView, ps: PlannedStep, attempt: int) -> ActionOutcome:
    """Reboot so the SSH command returns cleanly, see the boot id change, reconnect."""
    spec = ps.step.reboot
    assert spec is not None
    boot_id_cmd = spec.boot_id_command or hr.host.boot_id_command or DEFAULT_BOOT_ID
    before = hr.exec(
        boot_id_cmd, ps=ps, phase="action", attempt=attempt, timeout=ps.timeout or BOOT_ID_TIMEOUT
    ).stdout.strip()
    if not before:
        raise AttemptFailed("exit", f"boot id command printed nothing: {boot_id_cmd}")
    reboot_cmd = (
        hr.render(spec.command) if spec.command else (hr.host.reboot_command or DEFAULT_REBOOT)
    )
    # in its own session (setsid): not in the process group drp kills if this exec's
    # connection drops, which a reboot makes likely
    later = f"nohup /bin/sh -c {shlex.quote('sleep 1; ' + reboot_cmd)} >/dev/null 2>&1"
    detached = f"if command -v setsid >/dev/null 2>&1; then setsid {later} & else {later} & fi"
    try:
        hr.exec(detached, ps=ps, phase="action", attempt=attempt, timeout=30)
    except AttemptFailed as exc:
        if exc.kind != "connection":
            raise
    started = time.monotonic()
    hr.transport.close()
    deadline = started + spec.timeout
    while time.monotonic() < deadline:
        hr.sleep(1.0)
        hr.emit(
            EventType.STEP_PROGRESS,
            ps.id,
            transient=True,
            message="waiting for the host to come back",
            data={
                "elapsed": round(time.monotonic() - started, 1),
                "timeout": spec.timeout,
                "percent": None,
            },
        )
        if not _try_connect(hr):
            continue
        try:
            after = hr.exec(
                boot_id_cmd,
                ps=ps,
                phase="poll",
                attempt=attempt,
                timeout=BOOT_ID_TIMEOUT,
                record=False,
            ).stdout.strip()
        except AttemptFailed:
            hr.transport.close()
            continue
        if after and after != before:
            took = time.monotonic() - started
            return ActionOutcome(
                None, f"rebooted: boot id {before[:8]}→{after[:8]}, back after {took:.0f}s"
            )
    raise AttemptFailed(
        "timeout", f"host did not come back with a new boot id within {spec.timeout:.0f}s"
    )


def _manual(hr: HostView, ps: PlannedStep) -> ActionOutcome:
    spec = ps.step.manual
    assert spec is not None
    text = hr.render(spec.instructions, shell=False)
    answer = gates.ask(hr, ps, "manual", text)
    if answer.decision is Decision.REJECT:
        raise HostStopped(
            HostStatus.REJECTED,
            f"{ps.id} rejected by {answer.by}" + (f": {answer.note}" if answer.note else ""),
        )
    if answer.decision is Decision.PAUSE:
        raise HostStopped(HostStatus.PAUSED, gates.paused_at(hr, ps, "needs approval"))
    return ActionOutcome(None, f"confirmed by {answer.by}")


def rollback_command(hr: HostView, ps: PlannedStep) -> str | None:
    """The command that undoes ``ps``: its ``rollback``, or restoring a ``put`` backup."""
    if ps.step.rollback:
        return hr.render(ps.step.rollback)
    spec = ps.step.put
    if spec is not None and spec.backup:
        dest = hr.render(spec.dest, shell=False)
        q_dest = shlex.quote(dest)
        q_bak = shlex.quote(backup_path(dest, hr.shared.options.run_id))
        return f"if [ -f {q_bak} ] && [ ! -L {q_bak} ]; then cp -p {q_bak} {q_dest}; fi"
    return None
