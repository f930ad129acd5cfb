"""The plan: every step × host in order, with effective settings, rendered for review.

``drp plan`` and ``drp run --dry-run`` print a :class:`Plan`; ``drp run``
executes the very same value. Commands that use values captured at run time
are shown with placeholders (``<captures.name>``) and rendered again, for real,
just before they run.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drp.engine.defaults import DEFAULT_BOOT_ID, DEFAULT_REBOOT, backup_path, poll_limit
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
    # what the action does beyond its command, for review: a wait's condition, the
    # commands a reboot uses, the file a put writes (see _details)
    details: dict[str, Any] = field(default_factory=dict)
    console: bool = False  # may run over the host's serial console when SSH does not answer

    @property
    def id(self) -> str:
        return self.step.id

    @property
    def destructive(self) -> bool:
        return self.step.destructive

    @property
    def time_limit(self) -> float | None:
        """How long the step may take: a wait's or a reboot's own timeout, else per attempt."""
        if self.step.wait is not None:
            return self.step.wait.timeout
        if self.step.reboot is not None:
            return self.step.reboot.timeout
        return self.timeout


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
    host: Host,
    skipped: bool,
    bad: _Unrenderable,
) -> dict[str, str]:
    """The rendered commands of a step, for review (secrets masked), in the order they run."""
    out: dict[str, str] = {}
    if step.reboot is not None and not step.reboot.command:  # not a template: as written
        out["reboot"] = redactor.text(_reboot_commands(step, host)[0][0])
    for name, (text, shell) in _shown(step, host.name).items():
        try:
            out[name] = redactor.text(render(text, context, shell=shell))
        except TemplateProblem as exc:
            out[name] = f"<cannot render yet: {redactor.text(str(exc))}>"
            if not skipped and not _uses_captures(text):
                bad.add(step, name, host.name, exc)
    return out


def confirm_question(step: Step, host: str) -> str:
    """The template of the question a destructive step asks (as ``gates.confirm`` asks it)."""
    if isinstance(step.confirm, str):
        return step.confirm
    return f"{step.title} is destructive on {host}. Run it?"


def _shown(step: Step, host: str) -> dict[str, tuple[str, bool]]:
    """The templates a plan shows, by display name: (template, is a shell command).

    In the order a run uses them: the action, its guard, the confirmation, the
    verify commands, and the rollback (only on failure).
    """
    fields: dict[str, tuple[str, bool]] = {}
    for name in ("run", "local"):
        value = getattr(step, name)
        if value:
            fields[name] = (value, True)
    if step.wait:
        fields["wait"] = (step.wait.command, True)
    if step.manual:
        fields["manual"] = (step.manual.instructions, False)
    if step.put:
        fields["put"] = (step.put.dest, False)
    if step.reboot and step.reboot.command:
        fields["reboot"] = (step.reboot.command, True)
    if step.unless:
        fields["unless"] = (step.unless, True)
    if step.destructive:
        fields["confirm"] = (confirm_question(step, host), False)
    for index, command in enumerate(step.verify):
        fields[f"verify[{index}]"] = (command, True)
    if step.rollback:
        fields["rollback"] = (step.rollback, True)
    return fields


def _details(
    step: Step,
    context: dict[str, Any],
    redactor: Redactor,
    host: Host,
    skipped: bool,
    bad: _Unrenderable,
    timeout: float | None,
    display: dict[str, str],
) -> dict[str, Any]:
    """What a wait, reboot or put step does beyond the command the plan shows."""
    if step.wait is not None:
        spec = step.wait
        return {
            "interval": spec.interval,
            "timeout": spec.timeout,
            "poll_timeout": min(poll_limit(timeout, spec.interval), spec.timeout),
            "until": spec.until.model_dump(),
            "progress": spec.progress,
        }
    if step.reboot is not None:
        (_, command_from), (boot_id, boot_id_from) = _reboot_commands(step, host)
        return {
            "command": display.get("reboot", ""),  # rendered, when it is the step's
            "command_from": command_from,
            "boot_id_command": redactor.text(boot_id),
            "boot_id_from": boot_id_from,
            "timeout": step.reboot.timeout,
        }
    if step.put is not None:
        return _put_details(step, context, redactor, host.name, skipped, bad)
    return {}


def _reboot_commands(step: Step, host: Host) -> tuple[tuple[str, str], tuple[str, str]]:
    """The reboot and boot-id commands a reboot step uses on ``host``, each with its origin.

    As ``actions._reboot`` chooses them: the step's, else the host's (inventory),
    else drp's default.
    """
    spec = step.reboot
    assert spec is not None

    def pick(own: str | None, inventory: str | None, default: str) -> tuple[str, str]:
        if own:
            return own, "runbook"
        if inventory:
            return inventory, "inventory"
        return default, "default"

    return (
        pick(spec.command, host.reboot_command, DEFAULT_REBOOT),
        pick(spec.boot_id_command, host.boot_id_command, DEFAULT_BOOT_ID),
    )


def _put_details(
    step: Step,
    context: dict[str, Any],
    redactor: Redactor,
    host: str,
    skipped: bool,
    bad: _Unrenderable,
) -> dict[str, Any]:
    """The file a put writes: where from, how, and what it will contain (secrets masked).

    Inline content and templates are shown rendered (a reviewer reads what lands
    on the host); a plain source file, uploaded as written, by its size and hash.
    A sensitive step's content is not shown.
    """

    spec = step.put
    assert spec is not None
    try:
        dest = render(spec.dest, context, shell=False)
    except TemplateProblem:
        dest = spec.dest  # the display says why
    out: dict[str, Any] = {
        "dest": redactor.text(dest),
        "src": spec.src,
        "template": spec.template,
        "mode": spec.mode,
        "owner": spec.owner,
        "group": spec.group,
        "backup": redactor.text(backup_path(dest, "<run id>")) if spec.backup else None,
        "bytes": None,
        "lines": None,
        "sha256": None,
        "content": None,
        "note": "",
    }
    data, out["note"] = _put_data(step, context, redactor, host, skipped, bad)
    if data is None:
        return out
    if not spec.template:
        out["sha256"] = hashlib.sha256(data).hexdigest()  # as written: no secret in it
    # the size of what is uploaded; unknown until the captures are in
    out["bytes"] = None if out["note"] else len(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # a binary file, uploaded as written
        return out
    masked = redactor.text(text)
    out["lines"] = len(text.splitlines())
    if masked != text:
        out["bytes"] = None  # the size would tell a masked secret's length
    if step.sensitive:
        out["note"] = "; ".join(filter(None, ["content not shown: sensitive step", out["note"]]))
    elif spec.content is not None or spec.template:
        out["content"] = masked
    return out


def _put_data(
    step: Step,
    context: dict[str, Any],
    redactor: Redactor,
    host: str,
    skipped: bool,
    bad: _Unrenderable,
) -> tuple[bytes | None, str]:
    """The bytes a put uploads (None when they cannot be known now), and a note on them.

    Read and rendered as the executor does. A template that cannot render for
    another reason than captures to come is a plan problem, as a command is.
    """
    spec = step.put
    assert spec is not None
    if spec.content is not None:
        raw = spec.content.encode()
    else:
        source = Path(bad.runbook.path).parent / (spec.src or "")
        try:
            raw = source.read_bytes()
        except OSError as exc:
            return None, f"cannot read {source}: {exc.strerror} (the run would fail here)"
    if not spec.template:
        return raw, ""
    try:
        template = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text: it cannot be rendered as a template"
    try:
        data = render(template, context, shell=False).encode()
    except TemplateProblem as exc:
        if not skipped and not _uses_captures(template):
            field_name = "put.content" if spec.content is not None else "put.src"
            bad.add(step, field_name, host, exc)
        return None, f"cannot render yet: {redactor.text(str(exc))}"
    return data, "captures are filled in at run time" if _uses_captures(template) else ""


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
            timeout = step.timeout if step.timeout is not None else defaults.timeout
            display = _display(step, context, redactor, host, skipped, bad)
            planned.append(
                PlannedStep(
                    step=step,
                    host=host.name,
                    retry=step.retry or defaults.retry,
                    timeout=timeout,
                    become=become,
                    on_failure=step.on_failure or defaults.on_failure,
                    when=when,
                    display=display,
                    details=_details(step, context, redactor, host, skipped, bad, timeout, display),
                    console=runbook.console if step.console is None else step.console,
                )
            )
        per_host[host.name] = tuple(planned)
    problems += bad.problems()
    if problems:
        raise RunbookError(sorted(problems, key=lambda p: (p.file, p.line or 0, p.column or 0)))
    return Plan(runbook, inventory, hosts, params, per_host, redactor, pattern, extra_secrets)
