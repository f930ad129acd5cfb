"""YAML sources with positions: load a file into plain data plus a map of where each value is.

Runbooks and inventories are validated by pydantic; this module is what lets
every validation problem say ``file:line:column``. It also turns pydantic's
errors into :class:`drp.errors.Problem` values with a hint ("did you mean").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from drp.errors import Problem

MAX_FILE_BYTES = 1024 * 1024  # a runbook or inventory larger than 1 MiB is a mistake

Loc = tuple[str | int, ...]


@dataclass
class Source:
    """Parsed YAML plus where each node was (1-based line and column)."""

    path: str
    data: Any
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Loc) -> tuple[int | None, int | None]:
        """The position of ``loc``, or of its nearest parent that has one."""
        probe = tuple(loc)
        while True:
            if probe in self.positions:
                return self.positions[probe]
            if not probe:
                return (None, None)
            probe = probe[:-1]

    def problem(self, loc: Loc, message: str, hint: str = "") -> Problem:
        line, column = self.where(loc)
        return Problem(self.path, line, column, format_loc(loc), message, hint)


def format_loc(loc: Iterable[str | int]) -> str:
    """``("steps", 3, "retry", "attempts")`` → ``steps[3].retry.attempts``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# libyaml's parser when PyYAML was built with it (the wheels are): same nodes and
# marks, several times faster than the pure-Python one on a 200-step runbook.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _walk(node: yaml.Node, loc: Loc, positions: dict[Loc, tuple[int, int]]) -> None:
    positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key_loc = (*loc, key_node.value)
                _walk(value_node, key_loc, positions)
                # point a problem about the key itself at the key, not the value
                positions.setdefault(
                    (*key_loc, "__key__"),
                    (key_node.start_mark.line + 1, key_node.start_mark.column + 1),
                )
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), positions)


def _duplicate_keys(node: yaml.Node, path: str, loc: Loc, problems: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    Problem(
                        path,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        format_loc((*loc, key)),
                        f"duplicate key {key!r}",
                        "each key may appear once in a mapping; remove or rename one",
                    )
                )
            seen.add(key)
            _duplicate_keys(value_node, path, (*loc, key), problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _duplicate_keys(item, path, (*loc, index), problems)


def read_text(path: Path) -> str:
    """Read a UTF-8 text file, turning every way it can be unreadable into a Problem."""
    name = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _input_error(
            name, f"cannot read file: {exc.strerror or exc}", "check the path"
        ) from None
    if path.is_dir():
        raise _input_error(name, "is a directory, not a file", "name a .yaml file")
    if size > MAX_FILE_BYTES:
        raise _input_error(
            name,
            f"file is {size} bytes; the limit is {MAX_FILE_BYTES}",
            "a runbook or inventory this large is almost surely the wrong file",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _input_error(
            name, f"cannot read file: {exc.strerror or exc}", "check permissions"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _input_error(
            name, f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8", line=line
        ) from None
    if not text.strip():
        raise _input_error(name, "file is empty", "a YAML mapping is expected")
    return text


def parse(text: str, path: str) -> Source:
    """Parse YAML text into a :class:`Source`; syntax errors become an InputError."""
    from drp.errors import InputError

    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        message = f"invalid YAML: {exc.problem or exc.context}"
        raise InputError(
            [Problem(path, line, column, "", message, "check indentation, quoting and colons")]
        ) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(path, None, None, "", f"invalid YAML: {exc}", "")]) from None
    finally:
        loader.dispose()
    if node is None:
        raise _input_error(path, "file holds no YAML document", "a YAML mapping is expected")
    problems: list[Problem] = []
    _duplicate_keys(node, path, (), problems)
    if problems:
        raise InputError(problems)
    try:  # build the data from the node already composed: one parse, not two
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _input_error(path, f"invalid YAML: {exc}", "") from None
    positions: dict[Loc, tuple[int, int]] = {}
    _walk(node, (), positions)
    return Source(path, data, positions)


def load(path: Path) -> Source:
    """Read and parse one YAML file."""
    return parse(read_text(path), str(path))


def _input_error(path: str, message: str, hint: str, line: int | None = None) -> Exception:
    from drp.errors import InputError

    return InputError([Problem(path, line, None, "", message, hint)])


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _allowed_fields(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model at ``loc`` (best effort, for "did you mean")."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields:
            return []
        if part not in fields:  # a key of a dict of models (hosts.NAME): same model
            continue
        annotation = fields[part].annotation
        current = _first_model(annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return [info.alias or name for name, info in fields.items()]


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def problems_from(
    exc: ValidationError, source: Source, model: type[BaseModel], prefix: Loc = ()
) -> list[Problem]:
    """Turn a pydantic ValidationError into located Problems, one per error."""
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        kind = error["type"]
        loc: Loc = (*prefix, *_data_loc(source.data, prefix, error["loc"], kind == "missing"))
        message = str(error["msg"])
        hint = ""
        if kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = _allowed_fields(model, tuple(loc[len(prefix) : -1]))
            hint = _suggest(key, allowed) or (
                f"allowed keys: {', '.join(sorted(allowed))}" if allowed else ""
            )
            message = f"unknown key {key!r}"
            line, column = source.where((*loc, "__key__"))
            problems.append(Problem(source.path, line, column, format_loc(loc), message, hint))
            continue
        if kind == "missing":
            message = "required key is missing"
            hint = f"add '{loc[-1]}:'"
        elif kind.startswith("value_error"):
            message = message.removeprefix("Value error, ")
        problems.append(source.problem(loc, message, hint))
    return _merge_alternatives(problems)


def _merge_alternatives(problems: list[Problem]) -> list[Problem]:
    """Union types give one error per alternative at the same place: say them once."""
    merged: list[Problem] = []
    for problem in problems:
        last = merged[-1] if merged else None
        if last and (last.file, last.line, last.column, last.field) == (
            problem.file,
            problem.line,
            problem.column,
            problem.field,
        ):
            merged[-1] = Problem(
                last.file,
                last.line,
                last.column,
                last.field,
                f"{last.message}; or {problem.message[0].lower()}{problem.message[1:]}",
                last.hint or problem.hint,
            )
        else:
            merged.append(problem)
    return merged


def _data_loc(data: Any, prefix: Loc, raw: tuple[str | int, ...], missing: bool) -> Loc:
    """Keep the parts of pydantic's ``loc`` that name keys and indexes in the data.

    pydantic also puts union member names in ``loc`` (``str``, ``literal['a']``,
    ``function-after[...]``); they are not in the document, so they are dropped.
    A "missing" error ends with a key that is, by definition, not there: kept.
    """
    node = data
    for part in prefix:
        node = _child(node, part)
    kept: list[str | int] = []
    for index, part in enumerate(raw):
        child = _child(node, part)
        if child is not _ABSENT:
            kept.append(part)
            node = child
        elif missing and index == len(raw) - 1:
            kept.append(part)
    return tuple(kept)


_ABSENT = object()


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT
