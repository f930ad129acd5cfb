"""The plan: every step × host in order, with effective settings, rendered for review.

``drp plan`` and ``drp run --dry-run`` print a :class:`Plan`; ``drp run``
executes the very same value. Commands that use values captured at run time
are shown with placeholders (``<captures.name>``) and rendered again, for real,
just before they run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drp.errors import InventoryError, Problem, RunbookError
from drp.inventory import Host, Inventory
from drp.redact import Redactor
from drp.runbook.loader import Runbook
from drp.runbook.model import RetryPolicy, Step
from drp.runbook.params import Params
from drp.runbook.template import Placeholder, TemplateProblem, evaluate, references, render
from drp.runbook.template import compile_check as _compile


@dataclass(frozen=True)
class PlannedStep:
    """One step as it will run on one host."""

    step: Step
    host: str
    retry: RetryPolicy
    timeout: float | None
    become: bool
    on_failure: str
    when: str | None
    display: dict[str, str]

    @property
    def id(self) -> str:
        return self.step.id

    @property
    def destructive(self) -> bool:
        return self.step.destructive


@dataclass(frozen=True)
class Plan:
    """What a run will do. Frozen: the engine executes it, never edits it."""

    runbook: Runbook
    inventory: Inventory
    hosts: tuple[Host, ...]
    params: Params
    steps: dict[str, tuple[PlannedStep, ...]]
    redactor: Redactor
    targets: str
    extra_secrets: tuple[str, ...] = field(default=())

    def context(self, host: Host, captures: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
        """The names a template sees on ``host``."""
        return {
            "params": dict(self.params.values),
            "host": host.template_view(),
            "vars": dict(host.vars),
            "captures": captures,
            "run": run,
        }

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)


@functools.lru_cache(maxsize=4096)
def _uses_captures(text: str, expression: bool = False) -> bool:
    return any(r.namespace == "captures" for r in references(_compile(text, expression=expression)))


# display name -> the step field it shows (the key of Runbook.origins)
_FIELD_OF = {
    "wait": "wait.command",
    "manual": "manual.instructions",
    "put": "put.dest",
    "reboot": "reboot.command",
}


class _Unrenderable:
    """Templates that cannot render on a host for a reason other than captures to come.

    They would fail the same way at run time, in the middle of a run: the plan
    refuses them. One problem per field and reason, naming the hosts.
    """

    def __init__(self, runbook: Runbook, redactor: Redactor) -> None:
        self.runbook = runbook
        self.redactor = redactor
        self.found: dict[tuple[str, str], list[str]] = {}

    def add(self, step: Step, field_name: str, host: str, exc: TemplateProblem) -> None:
        key = f"steps.{step.id}.{_FIELD_OF.get(field_name, field_name)}"
        reason = self.redactor.text(exc.reason)  # a Python error may quote a value
        self.found.setdefault((key, reason), []).append(host)

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for (key, reason), hosts in self.found.items():
            shown = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
            out.append(
                self.runbook.problem(
                    key,
                    f"cannot render on {shown}: {reason}",
                    "it would fail the same way at run time; fix the template, or give "
                    "those hosts what it needs, e.g. the var in the inventory",
                )
            )
        return out


def _display(
    step: Step,
    context: dict[str, Any],
    redactor: Redactor,
    host: str,
    skipped: bool,
    bad: _Unrenderable,
) -> dict[str, str]:
    """The rendered commands of a step, for review (secrets masked)."""
    out: dict[str, str] = {}
    for name, (text, shell) in _shown(step).items():
        try:
            out[name] = redactor.text(render(text, context, shell=shell))
        except TemplateProblem as exc:
            out[name] = f"<cannot render yet: {redactor.text(str(exc))}>"
            if not skipped and not _uses_captures(text):
                bad.add(step, name, host, exc)
    if not skipped:
        for name, text in _checked_only(step, bad.runbook):
            try:
                render(text, context, shell=False)
            except TemplateProblem as exc:
                if not _uses_captures(text):
                    bad.add(step, name, host, exc)
    return out


def _shown(step: Step) -> dict[str, tuple[str, bool]]:
    """The templates a plan shows, by display name: (template, is a shell command)."""
    fields: dict[str, tuple[str, bool]] = {}
    for name in ("run", "local", "unless", "rollback"):
        value = getattr(step, name)
        if value:
            fields[name] = (value, True)
    for index, command in enumerate(step.verify):
        fields[f"verify[{index}]"] = (command, True)
    if step.wait:
        fields["wait"] = (step.wait.command, True)
    if step.manual:
        fields["manual"] = (step.manual.instructions, False)
    if step.put:
        fields["put"] = (step.put.dest, False)
    if step.reboot:
        fields["reboot"] = (step.reboot.command or "<host's reboot command>", True)
    return fields


def _checked_only(step: Step, runbook: Runbook) -> list[tuple[str, str]]:
    """Text templates the plan does not show but the run renders: rendered here, as a check."""
    out: list[tuple[str, str]] = []
    if isinstance(step.confirm, str) and step.confirm:
        out.append(("confirm", step.confirm))
    if step.put and step.put.template:
        if step.put.content is not None:
            out.append(("put.content", step.put.content))
        elif step.put.src is not None:  # read as the executor reads it
            try:
                source = Path(runbook.path).parent / step.put.src
                out.append(("put.src", source.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                pass  # the run reports it as the step's failure, as it always did
    return out


def _when_display(
    step: Step, context: dict[str, Any], host: str, bad: _Unrenderable
) -> tuple[str | None, bool]:
    """What the plan says about ``when``, and whether the step is skipped on this host."""
    if not step.when:
        return None, False
    if _uses_captures(step.when, expression=True):
        return f"{step.when}  (decided at run time)", False
    try:
        if evaluate(step.when, context):
            return f"{step.when}  → true", False
        return f"{step.when}  → false (skipped)", True
    except TemplateProblem as exc:
        bad.add(step, "when", host, exc)
        return f"{step.when}  (cannot evaluate: {exc.reason})", False


def _step_hosts(
    runbook: Runbook, hosts: tuple[Host, ...], inventory: Inventory, problems: list[Problem]
) -> dict[str, set[str]]:
    """Each step's hosts among the run's; a ``hosts:`` matching nothing at all is a problem.

    A pattern that matches inventory hosts, none of them in this run, is fine:
    the step is for other hosts (a web-only step in a run on databases).
    """
    run = {h.name for h in hosts}
    out: dict[str, set[str]] = {}
    for step in runbook.steps:
        if not step.hosts:
            out[step.id] = run
            continue
        try:
            out[step.id] = {h.name for h in inventory.select(step.hosts)} & run
        except InventoryError as exc:
            first = exc.problems[0] if exc.problems else None
            problems.append(
                runbook.problem(
                    f"steps.{step.id}.hosts",
                    f"no host or group of {inventory.path} matches {step.hosts!r}",
                    (first.hint if first else "")
                    or "run 'drp inventory list' to see hosts and groups",
                )
            )
            out[step.id] = set()
    return out


def build_plan(
    runbook: Runbook,
    inventory: Inventory,
    params: Params,
    *,
    targets: str | None = None,
    limit: str | None = None,
    extra_secrets: tuple[str, ...] = (),
) -> Plan:
    """Resolve targets and render every step for every host; nothing is contacted."""
    pattern = targets or runbook.targets
    if not pattern:
        raise InventoryError(
            [
                Problem(
                    runbook.path,
                    None,
                    None,
                    "targets",
                    "no targets: the runbook names none",
                    "pass --host HOST or --targets PATTERN",
                )
            ]
        )
    hosts = tuple(inventory.select(pattern, limit))
    if not hosts:
        raise InventoryError(
            [
                Problem(
                    inventory.path,
                    None,
                    None,
                    "",
                    f"no hosts match {pattern!r}" + (f" limited to {limit!r}" if limit else ""),
                    "run 'drp inventory list' to see hosts and groups",
                )
            ]
        )
    redactor = Redactor.of([*params.secrets(), *extra_secrets])
    defaults = runbook.defaults
    per_host: dict[str, tuple[PlannedStep, ...]] = {}
    placeholder_run = {
        "id": "<run id>",
        "runbook": runbook.name,
        "operator": "<operator>",
        "dry_run": True,
    }
    problems: list[Problem] = []
    step_hosts = _step_hosts(runbook, hosts, inventory, problems)
    bad = _Unrenderable(runbook, redactor)
    for host in hosts:
        context = {
            "params": dict(params.values),
            "host": host.template_view(),
            "vars": dict(host.vars),
            "captures": Placeholder("captures"),
            "run": placeholder_run,
        }
        planned: list[PlannedStep] = []
        for step in runbook.steps:
            if host.name not in step_hosts[step.id]:
                continue
            become = (
                step.become
                if step.become is not None
                else (defaults.become or host.become is not None)
            )
            when, skipped = _when_display(step, context, host.name, bad)
            planned.append(
                PlannedStep(
                    step=step,
                    host=host.name,
                    retry=step.retry or defaults.retry,
                    timeout=step.timeout if step.timeout is not None else defaults.timeout,
                    become=become,
                    on_failure=step.on_failure or defaults.on_failure,
                    when=when,
                    display=_display(step, context, redactor, host.name, skipped, bad),
                )
            )
        per_host[host.name] = tuple(planned)
    problems += bad.problems()
    if problems:
        raise RunbookError(sorted(problems, key=lambda p: (p.file, p.line or 0, p.column or 0)))
    return Plan(runbook, inventory, hosts, params, per_host, redactor, pattern, extra_secrets)
