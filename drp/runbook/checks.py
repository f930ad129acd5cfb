"""Cross-checks of loaded steps: unique ids, templates, literal fields, ``put.src`` files.

Templates are checked against the names they may use (params, earlier captures,
host and run keys); fields drp uses as written must hold no ``{{ }}``.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from drp import yamlsrc
from drp.errors import Problem
from drp.runbook.includes import _Located
from drp.runbook.model import Step
from drp.runbook.shellctx import misplaced
from drp.runbook.template import (
    HOST_KEYS,
    NAMESPACES,
    RUN_KEYS,
    TemplateProblem,
    compile_check,
    is_plain,
    references,
)


def _templates(step: Step) -> Iterator[tuple[str, str, bool]]:
    """(field, template, is_expression) for every value of a step drp renders."""
    simple = {
        "run": step.run,
        "local": step.local,
        "unless": step.unless,
        "rollback": step.rollback,
        "name": step.name,
    }
    for name, value in simple.items():
        if value:
            yield name, value, False
    for index, command in enumerate(step.verify):
        yield f"verify[{index}]", command, False
    if step.wait:
        yield "wait.command", step.wait.command, False
    if step.manual:
        yield "manual.instructions", step.manual.instructions, False
    if step.put:
        yield "put.dest", step.put.dest, False
        if step.put.content is not None and step.put.template:
            yield "put.content", step.put.content, False
    if step.reboot and step.reboot.command:
        yield "reboot.command", step.reboot.command, False
    if isinstance(step.confirm, str) and step.confirm:
        yield "confirm", step.confirm, False
    if step.when:
        yield "when", step.when, True


#: the fields drp runs through a shell: their placeholders must sit where quoting holds
_SHELL_FIELDS = re.compile(
    r"(run|local|unless|rollback|verify\[\d+\]|wait\.command|reboot\.command)$"
)


def _field_loc(loc: yamlsrc.Loc, name: str) -> yamlsrc.Loc:
    """``steps[3]`` + ``verify[0]`` → ``("steps", 3, "verify", 0)``."""
    parts = name.replace("[", ".").replace("]", "").split(".")
    return (*loc, *(int(p) if p.isdigit() else p for p in parts))


def _duplicate_ids(located: list[_Located], problems: list[Problem]) -> None:
    """Step ids are checkpoint keys: each must be unique (checked even on invalid steps)."""
    seen: set[str] = set()
    for item in located:
        step_id = item.data.get("id") if isinstance(item.data, dict) else None
        if not isinstance(step_id, str):
            continue
        if step_id in seen:
            problems.append(
                item.source.problem(
                    (*item.loc, "id"),
                    f"duplicate step id {step_id!r}",
                    "step ids are checkpoint keys and must be unique; rename one",
                )
            )
        seen.add(step_id)


Report = Callable[[str, str, int | None], None]  # message, hint, line in the template


def _cross_check(
    params: set[str] | None,
    steps: list[tuple[Step, _Located]],
    problems: list[Problem],
    base: Path | None,
) -> None:
    """Templates against the names they may use; fields drp does not render, left literal.

    ``params`` is None for an include file checked on its own: params and
    captures then depend on the includer, and are not checked. ``base`` is the
    directory ``put.src`` is relative to (the runbook's, as the executor reads it).
    """
    captured: set[str] = set()
    for step, item in steps:
        for name, text, expression in _templates(step):
            loc = _field_loc(item.loc, name)
            shell = not expression and bool(_SHELL_FIELDS.match(name))
            reporter = _at(item.source, loc)
            _check_template(text, expression, params, captured, reporter, problems, shell=shell)
        _not_templates(step, item, problems)
        if step.put and step.put.src is not None and base is not None:
            _check_put_src(step, item, base, params, captured, problems)
        captured |= set(step.capture)


def _at(source: yamlsrc.Source, loc: yamlsrc.Loc) -> Callable[[list[Problem]], Report]:
    """Report problems of a template written at ``loc`` (its own line said when not the first)."""

    def bind(problems: list[Problem]) -> Report:
        def report(message: str, hint: str, line: int | None) -> None:
            where = f" (line {line} of the template)" if line and line > 1 else ""
            problems.append(source.problem(loc, message + where, hint))

        return report

    return bind


def _not_templates(step: Step, item: _Located, problems: list[Problem]) -> None:
    """Values drp uses as written: ``{{ }}`` in them would never be rendered."""
    literal = {
        "hosts": (step.hosts, "an inventory pattern, used as written", "e.g. hosts: db*"),
        "reboot.boot_id_command": (
            step.reboot.boot_id_command if step.reboot else None,
            "run as written, not rendered",
            "write the command out; only reboot.command is a template",
        ),
        "put.src": (
            step.put.src if step.put else None,
            "a file name, not rendered",
            "name the file; 'template: true' renders its content",
        ),
    }
    for name, (value, what, hint) in literal.items():
        if value and ("{{" in value or "{%" in value):
            problems.append(
                item.source.problem(_field_loc(item.loc, name), f"{name} is {what}", hint)
            )


def _check_put_src(
    step: Step,
    item: _Located,
    base: Path,
    params: set[str] | None,
    captured: set[str],
    problems: list[Problem],
) -> None:
    assert step.put is not None and step.put.src is not None
    src = step.put.src
    if "{{" in src or "{%" in src:
        return  # reported by _not_templates
    loc = _field_loc(item.loc, "put.src")
    path = base / src
    if not path.is_file():
        problems.append(
            item.source.problem(
                loc,
                f"no such file {src!r} (looked for {path})",
                "src is relative to the runbook file's directory",
            )
        )
        return
    if not step.put.template:
        return
    try:
        size = path.stat().st_size
        text = path.read_text(encoding="utf-8") if size <= yamlsrc.MAX_FILE_BYTES else None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(
            item.source.problem(loc, f"cannot read the template {src!r}: {exc}", "check the file")
        )
        return
    if text is None:
        problems.append(
            item.source.problem(
                loc,
                f"the template {src!r} is {size} bytes; the limit is {yamlsrc.MAX_FILE_BYTES}",
                "is this the right file?",
            )
        )
        return
    field_name = yamlsrc.format_loc(loc)

    def bind(found: list[Problem]) -> Report:
        def report(message: str, hint: str, line: int | None) -> None:
            found.append(Problem(str(path), line, None, field_name, message, hint))

        return report

    _check_template(text, False, params, captured, bind, problems)


def _check_template(
    text: str,
    expression: bool,
    params: set[str] | None,
    captured: set[str],
    reporter: Callable[[list[Problem]], Report],
    problems: list[Problem],
    *,
    shell: bool = False,
) -> None:
    if not expression and is_plain(text):  # nothing to compile, nothing it reads
        return
    report = reporter(problems)
    try:
        tree = compile_check(text, expression=expression)
    except TemplateProblem as exc:
        report(str(exc), exc.hint, exc.lineno)
        return
    if shell:  # drp's quoting makes a value one word only outside the author's quotes
        spots = Counter(misplaced(tree))  # several on one line and in one place: told once
        for spot, count in spots.items():
            which = "a {{ }} placeholder" if count == 1 else f"{count} {{{{ }}}} placeholders"
            report(f"{which} {spot.where}", spot.hint, spot.lineno)
    for ref in references(tree):
        if ref.namespace not in NAMESPACES:
            report(
                f"unknown name {ref.namespace!r} in template",
                f"use one of {', '.join(NAMESPACES)}, e.g. params.{ref.namespace}",
                ref.lineno,
            )
        elif ref.namespace in ("host", "run") and ref.name:
            keys = HOST_KEYS if ref.namespace == "host" else RUN_KEYS
            if ref.name not in keys:
                report(
                    f"{ref.namespace} has no {ref.name!r}",
                    _declared(ref.namespace, ref.name, list(keys), what="keys"),
                    ref.lineno,
                )
        elif params is None:
            continue  # an include file on its own: params and captures are the includer's
        elif ref.namespace == "params" and ref.name and ref.name not in params:
            report(
                f"undefined param {ref.name!r}",
                _declared("params", ref.name, sorted(params)),
                ref.lineno,
            )
        elif ref.namespace == "captures" and ref.name and ref.name not in captured:
            report(
                f"capture {ref.name!r} is not set by an earlier step",
                _declared("captures", ref.name, sorted(captured)),
                ref.lineno,
            )


def _declared(kind: str, name: str, known: list[str], what: str = "") -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {kind}.{close[0]}?"
    label = f"{kind} {what}" if what else f"declared {kind}"
    return f"{label}: {', '.join(known)}" if known else f"no {kind} are declared"
