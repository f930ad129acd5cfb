"""Load a runbook file: parse, expand includes, validate, and cross-check; report every problem.

A runbook is accepted whole or refused with the full list of problems, each
located ``file:line:column`` with its field path and a hint.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drp import yamlsrc
from drp.errors import Problem, RunbookError
from drp.runbook.model import Defaults, Param, ParamType, RunbookHeader, Step
from drp.runbook.template import (
    HOST_KEYS,
    NAMESPACES,
    RUN_KEYS,
    TemplateProblem,
    compile_check,
    references,
)

MAX_INCLUDE_DEPTH = 5


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
        if not target.is_file():
            self.problems.append(
                source.problem(
                    (*loc, "include"),
                    f"no such include file {item['include']!r} (looked for {target})",
                    "the path is relative to the file that includes it",
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
            _check_template(text, expression, params, captured, _at(item.source, loc), problems)
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
) -> None:
    report = reporter(problems)
    try:
        tree = compile_check(text, expression=expression)
    except TemplateProblem as exc:
        report(str(exc), exc.hint, exc.lineno)
        return
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
