"""Load a runbook file: parse, expand includes, validate, and cross-check; report every problem.

A runbook is accepted whole or refused with the full list of problems, each
located ``file:line:column`` with its field path and a hint.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drp import yamlsrc
from drp.errors import Problem, RunbookError
from drp.runbook.checks import _cross_check, _duplicate_ids, _field_loc, _templates
from drp.runbook.includes import _Collector, _Located
from drp.runbook.model import Defaults, Param, ParamType, RunbookHeader, Step
from drp.runbook.notify import NotifySpec


@dataclass(frozen=True)
class Origin:
    """Where something in a loaded runbook was written: for problems found after loading."""

    file: str
    line: int | None
    column: int | None
    field: str


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
    # "params.NAME.default", "steps.ID", "steps.ID.FIELD" (e.g. steps.ID.wait.command)
    origins: Mapping[str, Origin] = field(default_factory=dict, compare=False, repr=False)
    console: bool = False  # steps may run over a serial console (a step's console: overrides)
    notify: NotifySpec | None = None  # the runbook's own channels (drp.notify adds the team's)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def problem(self, key: str, message: str, hint: str = "") -> Problem:
        """A Problem located where ``key`` was written (or its step, or the runbook file)."""
        probe = key
        while probe:
            origin = self.origins.get(probe)
            if origin is not None:
                return Problem(origin.file, origin.line, origin.column, origin.field, message, hint)
            probe = probe.rpartition(".")[0] if probe.count(".") > 1 else ""
        return Problem(self.path, None, None, key, message, hint)


def load_runbook(path: Path) -> Runbook:
    """Read, expand and validate a runbook; raise RunbookError with every problem found."""
    collector = _Collector()
    source = _read_main(collector, path)
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
    if header is not None:
        _check_defaults(header, source, collector.problems)
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
    _cross_check(declared, steps, collector.problems, base=path.parent)
    if located == [] and raw_steps == []:
        collector.problems.append(
            source.problem(("steps",), "a runbook needs at least one step", "add '- id: ...' items")
        )
    if collector.problems or header is None:
        raise RunbookError(_in_order(collector.problems, str(path)))
    digest = hashlib.sha256()  # of the contents and the names relative to the runbook:
    for name, content in collector.files:  # the same from any working directory
        relative = os.path.relpath(name, path.parent)
        digest.update(relative.encode() + b"\0" + content + b"\0")
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
        origins=_origins(source, header, steps),
        console=header.console,
        notify=header.notify,
    )


def load_steps(path: Path) -> int:
    """Check an include file (a step list) on its own; return how many steps it has.

    Structure, step ids and template syntax are checked, with the names drp
    knows (host, run). Params and captures depend on the runbook that includes
    the file, and ``put.src`` is found relative to that runbook: those are
    checked where the file is included.
    """
    collector = _Collector()
    source = _read_main(collector, path)
    data: Any = source.data
    loc: yamlsrc.Loc = ()
    if isinstance(data, dict) and set(data) == {"steps"}:
        data, loc = data["steps"], ("steps",)
    elif not isinstance(data, list):
        raise RunbookError(
            [
                source.problem(
                    (),
                    "an include file is a list of steps, or a mapping with only 'steps:'",
                    "write '- id: ...' items, or 'steps:' followed by them",
                )
            ]
        )
    located = list(collector.steps(data, source, loc, 0, (path.resolve(),)))
    steps = _validate_steps(located, collector.problems)
    _duplicate_ids(located, collector.problems)
    _cross_check(None, steps, collector.problems, base=None)
    if not located and not collector.problems:
        collector.problems.append(source.problem(loc, "an include file needs at least one step"))
    if collector.problems:
        raise RunbookError(_in_order(collector.problems, str(path)))
    return len(steps)


def _read_main(collector: _Collector, path: Path) -> yamlsrc.Source:
    try:
        return collector.read(path)
    except RunbookError:
        raise
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        if problems is None:
            raise
        raise RunbookError(problems) from None


def _in_order(problems: list[Problem], main: str) -> list[Problem]:
    """The main file's problems first, then each other file's, each in line order."""
    return sorted(problems, key=lambda p: (p.file != main, p.file, p.line or 0))


def _check_defaults(header: RunbookHeader, source: yamlsrc.Source, problems: list[Problem]) -> None:
    """A default is a value like any other: of its param's type, in its choices, matching."""
    from drp.runbook.params import coerce  # params imports this module

    for name, param in header.params.items():
        if param.default is None:
            continue
        loc = ("params", name, "default")
        if not isinstance(param.default, str | int | float | bool):
            problems.append(
                source.problem(
                    loc,
                    "a default is text, a number, or true/false",
                    "not a list or a mapping; quote a value YAML reads otherwise, "
                    "e.g. default: '2020-01-01'",
                )
            )
            continue
        try:
            coerce(name, param, param.default, None)
        except ValueError as exc:
            problems.append(source.problem(loc, f"invalid default: {exc}", _fix_default(param)))


def _fix_default(param: Param) -> str:
    if param.type is ParamType.CHOICE:
        return f"use one of the choices: {', '.join(param.choices or [])}"
    if param.pattern:
        return "make the default match the pattern, or change the pattern"
    return f"write a default of type {param.type.value}"


def _origins(
    source: yamlsrc.Source,
    header: RunbookHeader,
    steps: list[tuple[Step, _Located]],
) -> dict[str, Origin]:
    def origin(src: yamlsrc.Source, loc: yamlsrc.Loc) -> Origin:
        line, column = src.where(loc)
        return Origin(src.path, line, column, yamlsrc.format_loc(loc))

    out: dict[str, Origin] = {}
    for name in header.params:
        out[f"params.{name}"] = origin(source, ("params", name))
        out[f"params.{name}.default"] = origin(source, ("params", name, "default"))
    for step, item in steps:
        out[f"steps.{step.id}"] = origin(item.source, item.loc)
        fields = [name for name, _, _ in _templates(step)] + ["hosts", "put.src"]
        for name in fields:
            out[f"steps.{step.id}.{name}"] = origin(item.source, _field_loc(item.loc, name))
    return out


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
