"""Plan rendering: how a plan looks to a person (``drp plan``, a dry run) or as JSON.

``print_plan`` prints every step × host in order, rendered, with what makes it
risky; ``plan_json`` is the same plan as data, for ``--format json``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from drp.durations import format_duration

if TYPE_CHECKING:
    from drp.engine.plan import Plan, PlannedStep


def print_plan(console: Console, plan: Plan, incident: str | None = None) -> None:
    """The dry-run view: every step × host in order, rendered, with what makes it risky.

    One block per step: a header (id, kind, title, flags), then one labelled
    field per line of what the run does: the action, what its kind adds (a
    wait's condition, a reboot's commands, a put's file), the guard, the
    confirmation, verify, rollback, captures. Lines are never wrapped here: a
    command reads as it will run (a terminal wraps what is too wide).
    """
    say = functools.partial(console.print, soft_wrap=True)
    book = plan.runbook
    say(f"[bold]{escape(plan_summary(plan))}[/]")
    say(
        f"[bold]plan[/] {escape(book.name)} (sha256 {book.sha256[:12]}…)  "
        f"targets {escape(plan.targets)} → {escape(', '.join(h.name for h in plan.hosts))}"
    )
    if incident:
        say(f"incident: {escape(incident)}")
    params = plan.params.masked()
    if params:
        say("params: " + ", ".join(f"{k}={escape(repr(v))}" for k, v in params.items()))
    for host in plan.hosts:
        say(f"\n[bold]{escape(host.name)}[/] ({escape(host.address)}:{host.port})")
        for index, ps in enumerate(plan.steps[host.name], 1):
            say(
                f" {index:>2}. [bold]{escape(ps.id)}[/] [dim]{ps.step.kind}[/]  "
                f"{escape(ps.step.title)}{_flags(ps)}"
            )
            if ps.when:
                say(f"       when: {escape(ps.when)}")
            for label, text in _plan_fields(ps):
                _print_field(console, label, text)
    say("\n[dim]dry run: nothing was contacted, nothing was changed[/]")


def plan_summary(plan: Plan) -> str:
    """One line first: what the run does, counted over every step × host.

    ``12 steps on 2 hosts: 4 destructive, 2 manual gates, 2 reboots``
    """
    every = [ps for steps in plan.steps.values() for ps in steps]
    hosts = len(plan.hosts)
    destructive = sum(1 for ps in every if ps.destructive)  # each asks first
    gates = sum(1 for ps in every if ps.step.kind == "manual")
    reboots = sum(1 for ps in every if ps.step.kind == "reboot")
    parts = [f"{destructive} destructive", _count(gates, "manual gate")]
    parts.append(_count(reboots, "reboot"))
    return f"{_count(len(every), 'step')} on {_count(hosts, 'host')}: {', '.join(parts)}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _flags(ps: PlannedStep) -> str:
    flags = []
    if ps.destructive:
        flags.append("[red]destructive, asks first[/]")
    if ps.step.kind == "manual":
        flags.append("[yellow]manual gate[/]")
    if ps.step.kind == "manual":
        return "  \\[" + "; ".join(flags) + "]"
    if ps.become:
        flags.append("sudo")
    if ps.retry.attempts > 1:
        flags.append(f"retry ×{ps.retry.attempts} on {','.join(map(str, ps.retry.failures))}")
    if ps.time_limit:
        flags.append(f"timeout {format_duration(ps.time_limit)}")
    if ps.step.success_codes != [0]:
        flags.append(f"success: exit {','.join(map(str, ps.step.success_codes))}")
    if ps.step.sensitive:
        flags.append("[yellow]sensitive[/]: output not shown or journaled")
    if ps.on_failure != "abort":
        flags.append(f"on failure: {ps.on_failure}")
    # '\\[': a literal bracket, not the start of rich markup ('[sudo; …]' would vanish)
    return ("  \\[" + "; ".join(flags) + "]") if flags else ""


PLAN_LINES = 20  # lines of a put's content the text plan shows (JSON has all of it)


def _plan_fields(ps: PlannedStep) -> list[tuple[str, str]]:
    """The labelled fields of a step's block: its action and what its kind adds first."""
    display = dict(ps.display)
    fields: list[tuple[str, str]] = []
    action = ps.step.kind
    if action in display:
        fields.append((action, display.pop(action)))
    details = ps.details
    if ps.step.wait is not None:
        fields += _wait_fields(details)
    elif ps.step.reboot is not None:
        fields += _reboot_fields(ps, details)
    elif ps.step.put is not None:
        fields += _put_fields(details)
    fields += display.items()
    if ps.step.capture:
        names = [name if rx else f"{name} (all of stdout)" for name, rx in ps.step.capture.items()]
        masked = "  (sensitive: journaled as <sensitive>, captured again on resume)"
        fields.append(("captures", ", ".join(names) + (masked if ps.step.sensitive else "")))
    return fields


def _wait_fields(details: dict[str, Any]) -> list[tuple[str, str]]:
    until = details["until"]
    conditions = []
    if until.get("exit") is not None:
        conditions.append(f"exit code {until['exit']}")
    if until.get("match"):
        conditions.append(f"output matches '{until['match']}'")
    if until.get("not_match"):
        conditions.append(f"output does not match '{until['not_match']}'")
    fields = [("until", " and ".join(conditions) or "the first poll (no condition)")]
    if details.get("progress"):
        fields.append(("progress", f"'{details['progress']}' (group 1: percent done)"))
    fields.append(
        (
            "polls",
            f"every {format_duration(details['interval'])} for at most "
            f"{format_duration(details['timeout'])} (each poll at most "
            f"{format_duration(details['poll_timeout'])}; a poll lost to the link is 'not yet')",
        )
    )
    return fields


_ORIGIN = {
    "runbook": "the step's",
    "inventory": "{host}'s {key} in the inventory",
    "default": "drp's default; {host} has no {key} in the inventory",
}


def _reboot_fields(ps: PlannedStep, details: dict[str, Any]) -> list[tuple[str, str]]:
    def origin(which: str, key: str) -> str:
        return _ORIGIN[details[f"{which}_from"]].format(host=ps.host, key=key)

    return [
        ("from", f"{origin('command', 'reboot_command')}; started detached, in its own session"),
        ("boot id", f"{details['boot_id_command']}  ({origin('boot_id', 'boot_id_command')})"),
        (
            "back",
            "when the host answers with a different boot id, within "
            f"{format_duration(details['timeout'])}",
        ),
    ]


def _put_fields(details: dict[str, Any]) -> list[tuple[str, str]]:
    lines = details["lines"]
    size = [f"{lines} line{'' if lines == 1 else 's'}" if lines is not None else ""]
    size.append(f"{details['bytes']} bytes" if details["bytes"] is not None else "")
    if details["sha256"]:
        size.append(f"sha256 {details['sha256'][:12]}…")
    if details["note"]:
        size.append(details["note"])
    how = "rendered as a template" if details["template"] else "as written"
    where = details["src"] if details["src"] is not None else "inline content"
    said = ", ".join(filter(None, size))
    source = f"{where}, {how}" + (f" ({said})" if said else "")
    content = details["content"]
    if content is not None:
        every = content.splitlines() or [""]
        shown = every[:PLAN_LINES]
        if len(every) > PLAN_LINES:
            shown.append(f"… {len(every) - PLAN_LINES} more lines (--format json has them all)")
        source += ":\n" + "\n".join(f"│ {line}" for line in shown)
    mode = f"mode {details['mode']}" if details["mode"] else "mode unchanged (0644 if new)"
    owner = ":".join(filter(None, [details["owner"], details["group"]]))
    if details["group"] and not details["owner"]:
        owner = f"group {details['group']}"
    elif owner:
        owner = f"owner {owner}"
    backup = (
        f"backup {details['backup']} (a rollback restores it)" if details["backup"] else "no backup"
    )
    file = ", ".join([mode, owner or "owner unchanged", backup, "left alone if identical"])
    return [("from", source), ("file", file)]


def _print_field(console: Console, label: str, text: str) -> None:
    lines = text.rstrip("\n").splitlines() or [""]
    console.print(f"       {label}: {lines[0]}", markup=False, soft_wrap=True)
    for line in lines[1:]:
        console.print(f"       {' ' * len(label)}  {line}", markup=False, soft_wrap=True)


def plan_json(plan: Plan, incident: str | None = None) -> dict[str, Any]:
    """The plan as data, for ``--format json``.

    Per step: ``timeout`` is how long the step may take (a wait's or a reboot's
    own timeout, else per attempt); ``commands`` holds every rendered template
    (action, guard, confirmation, verify, rollback); a wait, reboot or put step
    also has an object named after its kind with what it does beyond that.
    """
    return {
        "runbook": plan.runbook.name,
        "sha256": plan.runbook.sha256,
        "targets": plan.targets,
        "incident": incident,
        "summary": plan_summary(plan),
        "params": plan.params.masked(),
        "hosts": {
            host.name: [_step_json(ps) for ps in plan.steps[host.name]] for host in plan.hosts
        },
    }


def _step_json(ps: PlannedStep) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ps.id,
        "kind": ps.step.kind,
        "name": ps.step.title,
        "destructive": ps.destructive,
        "manual": ps.step.kind == "manual",
        "become": ps.become,
        "timeout": ps.time_limit,
        "when": ps.when,
        "retry": ps.retry.model_dump(),
        "on_failure": ps.on_failure,
        "success_codes": list(ps.step.success_codes),
        "sensitive": ps.step.sensitive,
        "captures": dict(ps.step.capture),
        "commands": ps.display,
    }
    if ps.details:
        out[ps.step.kind] = ps.details
    return out
