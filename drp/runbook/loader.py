"""Load a runbook file: parse, expand includes, validate, and cross-check; report every problem.

A runbook is accepted whole or refused with the full list of problems, each
located ``file:line:column`` with its field path and a hint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drp import yamlsrc
from drp.errors import Problem, RunbookError
from drp.runbook.model import Defaults, Param, RunbookHeader, Step
from drp.runbook.template import NAMESPACES, TemplateProblem, compile_check, references

MAX_INCLUDE_DEPTH = 5


@dataclass(frozen=True)
class Runbook:
    """A validated runbook with its includes expanded; ``sha256`` covers every file read."""

    name: str
    summary: str
    description: str
    params: dict[str, Param]
    targets: str | None
    defaults: Defaults
    serial: int | str | None
    max_fail_percentage: float | None
    steps: tuple[Step, ...]
    path: str
    sha256: str
    files: tuple[str, ...]

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


@dataclass(frozen=True)
class _Located:
    data: Any
    source: yamlsrc.Source
    loc: yamlsrc.Loc


class _Collector:
    """Reads the main file and its includes, remembering every file's bytes for the hash."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.files: list[tuple[str, bytes]] = []

    def read(self, path: Path) -> yamlsrc.Source:
        source = yamlsrc.load(path)
        self.files.append((str(path), path.read_bytes()))
        return source

    def steps(
        self,
        items: Any,
        source: yamlsrc.Source,
        loc: yamlsrc.Loc,
        depth: int,
        chain: tuple[Path, ...],
    ) -> Iterator[_Located]:
        if not isinstance(items, list):
            self.problems.append(
                source.problem(loc, "must be a list of steps", "write '- id: ...' items")
            )
            return
        for index, item in enumerate(items):
            here = (*loc, index)
            if isinstance(item, dict) and "include" in item:
                yield from self._include(item, source, here, depth, chain)
            else:
                yield _Located(item, source, here)

    def _include(
        self,
        item: dict[str, Any],
        source: yamlsrc.Source,
        loc: yamlsrc.Loc,
        depth: int,
        chain: tuple[Path, ...],
    ) -> Iterator[_Located]:
        extra = set(item) - {"include"}
        if extra or not isinstance(item["include"], str):
            self.problems.append(
                source.problem(
                    loc,
                    "an include item is exactly '- include: path/to/steps.yaml'",
                    f"unexpected keys: {', '.join(sorted(extra))}" if extra else "",
                )
            )
            return
        target = (Path(source.path).parent / item["include"]).resolve()
        if depth >= MAX_INCLUDE_DEPTH or target in chain:
            self.problems.append(
                source.problem(
                    (*loc, "include"),
                    "include cycle or nesting deeper than 5",
                    "an included file may not include its includer",
                )
            )
            return
        try:
            included = self.read(target)
        except RunbookError as exc:
            self.problems.extend(exc.problems)
            return
        except Exception as exc:  # InputError from yamlsrc
            problems = getattr(exc, "problems", None)
            if problems is None:
                raise
            self.problems.extend(problems)
            return
        data = included.data
        inner_loc: yamlsrc.Loc = ()
        if isinstance(data, dict) and "steps" in data:
            data, inner_loc = data["steps"], ("steps",)
        yield from self.steps(data, included, inner_loc, depth + 1, (*chain, target))


def load_runbook(path: Path) -> Runbook:
    """Read, expand and validate a runbook; raise RunbookError with every problem found."""
    collector = _Collector()
    try:
        source = collector.read(path)
    except RunbookError:
        raise
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        if problems is None:
            raise
        raise RunbookError(problems) from None
    if not isinstance(source.data, dict):
        raise RunbookError(
            [source.problem((), "a runbook is a YAML mapping", "start with 'name:' and 'steps:'")]
        )
    data = dict(source.data)
    raw_steps = data.pop("steps", None)
    header: RunbookHeader | None = None
    try:
        header = RunbookHeader.model_validate(data)
    except ValidationError as exc:
        collector.problems.extend(yamlsrc.problems_from(exc, source, RunbookHeader))
    if raw_steps is None:
        collector.problems.append(
            source.problem(
                (), "required key 'steps' is missing", "add 'steps:' with at least one step"
            )
        )
        raw_steps = []
    located = list(collector.steps(raw_steps, source, ("steps",), 0, (path.resolve(),)))
    steps = _validate_steps(located, collector.problems)
    raw_params = data.get("params")
    declared = set(header.params if header else raw_params if isinstance(raw_params, dict) else [])
    _duplicate_ids(located, collector.problems)
    _cross_check(declared, steps, collector.problems)
    if located == [] and raw_steps == []:
        collector.problems.append(
            source.problem(("steps",), "a runbook needs at least one step", "add '- id: ...' items")
        )
    if collector.problems or header is None:
        raise RunbookError(
            sorted(collector.problems, key=lambda p: (p.file != str(path), p.file, p.line or 0))
        )
    digest = hashlib.sha256()
    for name, content in collector.files:
        digest.update(name.encode() + b"\0" + content + b"\0")
    return Runbook(
        name=header.name,
        summary=header.summary,
        description=header.description,
        params=dict(header.params),
        targets=header.targets,
        defaults=header.defaults,
        serial=header.serial,
        max_fail_percentage=header.max_fail_percentage,
        steps=tuple(step for step, _ in steps),
        path=str(path),
        sha256=digest.hexdigest(),
        files=tuple(name for name, _ in collector.files),
    )


def _validate_steps(
    located: list[_Located], problems: list[Problem]
) -> list[tuple[Step, _Located]]:
    steps: list[tuple[Step, _Located]] = []
    for item in located:
        if not isinstance(item.data, dict):
            problems.append(
                item.source.problem(
                    item.loc, "a step is a mapping", "write '- id: name' then its action"
                )
            )
            continue
        try:
            steps.append((Step.model_validate(item.data), item))
        except ValidationError as exc:
            problems.extend(yamlsrc.problems_from(exc, item.source, Step, prefix=item.loc))
    return steps


def _templates(step: Step) -> Iterator[tuple[str, str, bool]]:
    """(field, template, is_expression) for every templated value of a step."""
    simple = {
        "run": step.run,
        "local": step.local,
        "unless": step.unless,
        "rollback": step.rollback,
        "name": step.name,
    }
    for field, value in simple.items():
        if value:
            yield field, value, False
    for index, command in enumerate(step.verify):
        yield f"verify[{index}]", command, False
    if step.wait:
        yield "wait.command", step.wait.command, False
    if step.manual:
        yield "manual.instructions", step.manual.instructions, False
    if step.put:
        yield "put.dest", step.put.dest, False
        if step.put.content is not None:
            yield "put.content", step.put.content, False
    if step.reboot and step.reboot.command:
        yield "reboot.command", step.reboot.command, False
    if step.when:
        yield "when", step.when, True


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


def _cross_check(
    params: set[str], steps: list[tuple[Step, _Located]], problems: list[Problem]
) -> None:
    captured: set[str] = set()
    for step, item in steps:
        for field, text, expression in _templates(step):
            _check_template(text, expression, params, captured, item, field, problems)
        captured |= set(step.capture)


def _check_template(
    text: str,
    expression: bool,
    params: set[str],
    captured: set[str],
    item: _Located,
    field: str,
    problems: list[Problem],
) -> None:
    loc = (*item.loc, *field.replace("[", ".").replace("]", "").split("."))
    loc = tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in loc)
    try:
        tree = compile_check(text, expression=expression)
    except TemplateProblem as exc:
        problems.append(item.source.problem(loc, str(exc), "check {{ }} and {% %} pairs"))
        return
    for ref in references(tree):
        if ref.namespace not in NAMESPACES:
            problems.append(
                item.source.problem(
                    loc,
                    f"unknown name {ref.namespace!r} in template",
                    f"use one of {', '.join(NAMESPACES)}, e.g. params.{ref.namespace}",
                )
            )
        elif ref.namespace == "params" and ref.name and ref.name not in params:
            problems.append(
                item.source.problem(
                    loc,
                    f"undefined param {ref.name!r}",
                    _declared("params", ref.name, sorted(params)),
                )
            )
        elif ref.namespace == "captures" and ref.name and ref.name not in captured:
            problems.append(
                item.source.problem(
                    loc,
                    f"capture {ref.name!r} is not set by an earlier step",
                    _declared("captures", ref.name, sorted(captured)),
                )
            )


def _declared(kind: str, name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {kind}.{close[0]}?"
    return f"declared {kind}: {', '.join(known)}" if known else f"no {kind} are declared"
