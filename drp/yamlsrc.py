"""YAML sources with positions: load a file into plain data plus a map of where each value is.

Runbooks and inventories are validated by pydantic; this module is what lets
every validation problem say ``file:line:column``. It also turns pydantic's
errors into :class:`drp.errors.Problem` values with a hint ("did you mean").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from drp.errors import Problem

MAX_FILE_BYTES = 1024 * 1024  # a runbook or inventory larger than 1 MiB is a mistake
MAX_DEPTH = 100  # lists and mappings nested deeper than this are a mistake (or an attack)
MAX_NODES = 200_000  # values in a document, counting each alias as what it expands to

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
    """Parse YAML text into a :class:`Source`; syntax errors become an InputError.

    Before anything walks the document, its shape is checked: nesting deeper
    than :data:`MAX_DEPTH`, an alias that contains itself, and more than
    :data:`MAX_NODES` values once aliases are expanded (an "alias bomb") are
    refused with a located problem, in time proportional to the file's size.
    """
    from drp.errors import InputError

    loader: yaml.SafeLoader | None = None
    try:
        loader = _Loader(text)  # the pure-Python reader checks characters here already
        node = loader.get_single_node()
    except (yaml.YAMLError, RecursionError) as exc:
        # A parser may refuse deep nesting itself (libyaml since PyYAML 6.0.4, the
        # pure-Python composer by recursion): whoever noticed, the author gets drp's
        # own located problem, found by a second parse that stops at MAX_DEPTH.
        deep = _find_deep_nesting(text, path)
        if deep is not None:
            raise InputError([deep]) from None
        if isinstance(exc, yaml.MarkedYAMLError):
            raise InputError([_yaml_problem(exc, path, text)]) from None
        if isinstance(exc, yaml.reader.ReaderError):
            raise InputError([_character_problem(exc, path, text)]) from None
        hint = _DEPTH_HINT if isinstance(exc, RecursionError) or "nest" in str(exc) else ""
        raise _input_error(path, f"invalid YAML: {exc or 'nesting is too deep'}", hint) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise _input_error(path, "file holds no YAML document", "a YAML mapping is expected")
    shape = _shape_problem(node, path, text)
    if shape is not None:
        raise InputError([shape])
    problems: list[Problem] = []
    _duplicate_keys(node, path, (), problems)
    if problems:
        raise InputError(problems)
    try:  # build the data from the node already composed: one parse, not two
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise InputError([_yaml_problem(exc, path, text)]) from None
    except yaml.YAMLError as exc:
        raise _input_error(path, f"invalid YAML: {exc}", "") from None
    positions: dict[Loc, tuple[int, int]] = {}
    _walk(node, (), positions)
    return Source(path, data, positions)


_DEPTH_HINT = f"lists and mappings may nest at most {MAX_DEPTH} levels deep"
_BRACES_HINT = 'quote values that start with {{, e.g. run: "{{ params.x }} --now"'
# where the parser was when it gave up: for these, where the construct opened is the news
_OPENED = {
    "while scanning a quoted scalar": "the quote opened here is never closed",
    "while parsing a flow sequence": "the '[' opened here is not closed properly",
    "while parsing a flow mapping": "the '{' opened here is not closed properly",
}


def _yaml_problem(exc: yaml.MarkedYAMLError, path: str, text: str) -> Problem:
    """A located problem from a YAML error, pointing where the author must look."""
    problem = str(exc.problem or exc.context or "syntax error")
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {problem}"
    context = str(exc.context or "")
    if exc.context_mark is not None and context in _OPENED:
        unclosed = "end of stream" in problem or "document" in problem
        if unclosed or context != "while scanning a quoted scalar":
            if exc.problem_mark is not None:
                where = f"line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
                message = f"invalid YAML: {_OPENED[context]} ({problem} at {where})"
            else:
                message = f"invalid YAML: {_OPENED[context]}"
            mark = exc.context_mark
    hint = "check indentation, quoting and colons"
    if context == "while scanning a quoted scalar" and mark is exc.context_mark:
        hint = "close the quote; inside '...' write '' for a quote, inside \"...\" write \\\""
    elif "mapping values are not allowed" in problem:
        hint = "quote a value that contains ': ', e.g. run: \"echo: done\""
    elif "unhashable key" in problem:
        message = "invalid YAML: a mapping key must be a plain value, not a list or a mapping"
        hint = "a key cannot be a list or a mapping"
    elif "could not determine a constructor" in problem:
        message = f"invalid YAML: {problem}"
        hint = "drp reads plain YAML: remove the tag, or quote the value"
    marks = [m for m in (exc.problem_mark, exc.context_mark) if m is not None]
    lines = text.splitlines()
    for candidate in marks if "mapping values" not in problem else []:
        line = lines[candidate.line] if candidate.line < len(lines) else ""
        if re.search(r"(^|[:\-\[,])\s*\{\{", line):
            hint = _BRACES_HINT
            break
    line_no = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    return Problem(path, line_no, column, "", message, hint)


def _character_problem(exc: yaml.reader.ReaderError, path: str, text: str) -> Problem:
    """A character YAML refuses (a control character, a NUL: a binary file?), located."""
    before = text[: exc.position]
    line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
    char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
    return Problem(
        path,
        line,
        column,
        "",
        f"invalid YAML: character U+{char:04X} is not allowed",
        "YAML files are text: remove control characters; is this a binary file?",
    )


_Children = list[tuple[str | int | None, yaml.Node]]


def _children(node: yaml.Node) -> _Children:
    """(the key or index it sits at, child) for a node; ``None`` for a mapping's key nodes."""
    if isinstance(node, yaml.MappingNode):
        out: list[tuple[str | int | None, yaml.Node]] = []
        for key_node, value_node in node.value:
            out.append((None, key_node))
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            out.append((str(key) if key is not None else None, value_node))
        return out
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    return []


def _shape_problem(root: yaml.Node, path: str, text: str) -> Problem | None:
    """Depth, self-containing aliases and expanded size, each node visited once."""
    sizes: dict[int, int] = {}  # id(node) -> number of values it expands to
    on_path: set[int] = {id(root)}
    first = _children(root)
    stack: list[tuple[yaml.Node, Loc, _Children, Iterator[tuple[str | int | None, yaml.Node]]]] = [
        (root, (), first, iter(first))
    ]
    while stack:
        node, loc, children, pending = stack[-1]
        step = next(pending, None)
        if step is None:
            stack.pop()
            on_path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for _, child in children)
            continue
        part, child = step
        child_loc = loc if part is None else (*loc, part)
        if id(child) in on_path:
            return _recursive_alias(child, child_loc, path, text)
        if id(child) in sizes:  # an alias to a node already measured
            continue
        if len(stack) >= MAX_DEPTH:
            return _too_deep(path, child.start_mark, child_loc)
        on_path.add(id(child))
        below = _children(child)
        stack.append((child, child_loc, below, iter(below)))
    total = sizes[id(root)]
    if total <= MAX_NODES:
        return None
    node, loc = root, ()  # point at the innermost value that alone is too big: its first
    while True:  # occurrence in the file is where it is written (an anchor comes before aliases)
        big = next(((k, c) for k, c in _children(node) if sizes[id(c)] > MAX_NODES), None)
        if big is None:
            break
        part, node = big
        loc = loc if part is None else (*loc, part)
    through = " through aliases" if total > len(sizes) else ""
    return Problem(
        path,
        node.start_mark.line + 1,
        node.start_mark.column + 1,
        _short_loc(loc),
        f"this value expands to {sizes[id(node)]} values{through}; the limit is {MAX_NODES}",
        "an alias bomb? aliases that repeat other aliases grow exponentially; "
        "write the values out, or repeat fewer",
    )


def _short_loc(loc: Loc, keep: int = 6) -> str:
    """A field path for a message; a hundred levels of it help nobody."""
    return format_loc(loc) if len(loc) <= keep else format_loc(loc[:keep]) + "…"


def _recursive_alias(node: yaml.Node, loc: Loc, path: str, text: str) -> Problem:
    """Point at the alias (``*name``) that makes a value contain itself."""
    mark = _find_recursive_alias(text) or node.start_mark
    return Problem(
        path,
        mark.line + 1,
        mark.column + 1,
        _short_loc(loc),
        "recursive alias: this value contains itself",
        "an alias may only refer to a value that is complete before it",
    )


def _too_deep(path: str, mark: yaml.Mark, loc: Loc) -> Problem:
    """The one problem for nesting past :data:`MAX_DEPTH`, whichever check found it."""
    return Problem(
        path,
        mark.line + 1,
        mark.column + 1,
        _short_loc(loc),
        f"nesting deeper than {MAX_DEPTH} levels",
        _DEPTH_HINT,
    )


class _Tracer(yaml.SafeLoader):
    """The pure-Python composer, used on error paths only, that stops early and says where.

    It stops at an alias to a node still being composed (a recursive alias), and
    at the first value nested deeper than :data:`MAX_DEPTH` (before any parser's
    own limit or Python's recursion limit is reached).
    """

    recursive_alias: yaml.Mark | None = None
    too_deep: tuple[yaml.Mark, Loc] | None = None

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._loc: list[str | int] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None and target.end_mark is None:  # still open: recursion
                self.recursive_alias = event.start_mark
                raise yaml.YAMLError("recursive alias")
        part = _part(index)
        if part is not None:
            self._loc.append(part)
        # the document is level 1, as in _shape_problem; a mapping's key one below it
        depth = len(self._loc) + 1 + (index is None and parent is not None)
        if depth > MAX_DEPTH:
            self.too_deep = (self.peek_event().start_mark, tuple(self._loc))  # type: ignore[no-untyped-call]
            raise yaml.YAMLError("nesting too deep")
        try:
            return super().compose_node(parent, index)
        finally:
            if part is not None:
                self._loc.pop()


def _part(index: Any) -> str | int | None:
    """Where a node sits in its parent: a list index, a mapping key, or ``None`` for a key."""
    if isinstance(index, int):
        return index
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)
    if isinstance(index, yaml.Node):
        return "?"  # a complex key: the value still counts one level
    return None


def _trace(text: str) -> _Tracer:
    """Only on error paths: a second, slower parse that sees aliases and depth as it goes."""
    try:
        tracer = _Tracer(text)
    except yaml.YAMLError:  # characters YAML refuses: nothing to trace
        return _Tracer("")
    try:
        tracer.get_single_node()
    except (yaml.YAMLError, RecursionError):
        pass
    finally:
        tracer.dispose()
    return tracer


def _find_recursive_alias(text: str) -> yaml.Mark | None:
    return _trace(text).recursive_alias


def _find_deep_nesting(text: str, path: str) -> Problem | None:
    found = _trace(text).too_deep
    return None if found is None else _too_deep(path, *found)


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
        elif kind in ("literal_error", "enum"):
            allowed = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
            given = error.get("input")
            close = _suggest(given, allowed) if isinstance(given, str) else ""
            hint = close or (f"one of: {', '.join(allowed)}" if allowed else "")
        else:
            hint = _TYPE_HINTS.get(kind, "")
        problems.append(source.problem(loc, message, hint))
    return _merge_alternatives(problems)


# what to write instead, for the errors that say only what the value is not
_TYPE_HINTS = {
    "int_type": "write a whole number, e.g. 3",
    "int_parsing": "write a whole number, e.g. 3",
    "int_from_float": "write a whole number, e.g. 3",
    "float_type": "write a number, e.g. 2 or 1.5",
    "float_parsing": "write a number, e.g. 2 or 1.5",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "string_type": "write text; quote it when YAML reads it as something else, "
    "e.g. '0644', 'yes', \"{{ params.x }}\"",
    "list_type": "write a list: [a, b], or one '- item' per line",
    "dict_type": "write a mapping: one 'key: value' per line",
    "model_type": "write a mapping: one 'key: value' per line",
    "model_attributes_type": "write a mapping: one 'key: value' per line",
    "too_short": "add at least one item",
    "string_pattern_mismatch": "see docs/runbooks.md for the allowed spelling",
}


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
