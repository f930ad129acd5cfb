"""The plan: every step × host in order, with effective settings, rendered for review.

``drp plan`` and ``drp run --dry-run`` print a :class:`Plan`; ``drp run``
executes the very same value. Commands that use values captured at run time
are shown with placeholders (``<captures.name>``) and rendered again, for real,
just before they run.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from drp.errors import InventoryError, Problem
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


def _uses_captures(text: str, expression: bool = False) -> bool:
    return any(r.namespace == "captures" for r in references(_compile(text, expression=expression)))


def _display(step: Step, context: dict[str, Any], redactor: Redactor) -> dict[str, str]:
    """The rendered commands of a step, for review (secrets masked)."""
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
    out: dict[str, str] = {}
    for name, (text, shell) in fields.items():
        try:
            out[name] = redactor.text(render(text, context, shell=shell))
        except TemplateProblem as exc:
            out[name] = f"<cannot render yet: {exc}>"
    return out


def _when_display(step: Step, context: dict[str, Any]) -> str | None:
    if not step.when:
        return None
    if _uses_captures(step.when, expression=True):
        return f"{step.when}  (decided at run time)"
    try:
        return f"{step.when}  → {'true' if evaluate(step.when, context) else 'false (skipped)'}"
    except TemplateProblem as exc:
        return f"{step.when}  (cannot evaluate yet: {exc})"


def _step_hosts(step: Step, hosts: tuple[Host, ...], inventory: Inventory) -> set[str]:
    if not step.hosts:
        return {h.name for h in hosts}
    try:
        chosen = {h.name for h in inventory.select(step.hosts)}
    except InventoryError:
        chosen = {h.name for h in hosts if fnmatch.fnmatchcase(h.name, step.hosts)}
    return chosen & {h.name for h in hosts}


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
            if host.name not in _step_hosts(step, hosts, inventory):
                continue
            become = (
                step.become
                if step.become is not None
                else (defaults.become or host.become is not None)
            )
            planned.append(
                PlannedStep(
                    step=step,
                    host=host.name,
                    retry=step.retry or defaults.retry,
                    timeout=step.timeout if step.timeout is not None else defaults.timeout,
                    become=become,
                    on_failure=step.on_failure or defaults.on_failure,
                    when=_when_display(step, context),
                    display=_display(step, context, redactor),
                )
            )
        per_host[host.name] = tuple(planned)
    return Plan(runbook, inventory, hosts, params, per_host, redactor, pattern, extra_secrets)
