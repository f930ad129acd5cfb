"""Validate an inventory file section by section: what a bad host or group leaves of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from drp import yamlsrc
from drp.errors import Problem
from drp.inventory.model import GroupSpec, HostSpec, InventoryFile, name_problem

_SECTIONS = {"hosts": "host", "groups": "group"}
_KINDS = {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}


@dataclass
class _Spec:
    """The inventory as far as it is valid: what a bad host or group leaves of the file."""

    top: InventoryFile  # known_hosts, defaults, vars (hosts and groups are below)
    declared: list[str]  # every host name written, usable or not
    declared_groups: list[str]
    hosts: dict[str, HostSpec]
    groups: dict[str, GroupSpec]


def _validate(source: yamlsrc.Source, problems: list[Problem]) -> _Spec:
    data: dict[Any, Any] = source.data
    top = {key: value for key, value in data.items() if key not in _SECTIONS}
    head = _valid(InventoryFile, top, (), source, problems) or InventoryFile()
    declared: list[str] = []
    hosts: dict[str, HostSpec] = {}
    for name, value in _entries(source, "hosts", problems):
        declared.append(name)
        if isinstance(value, str):  # `db1: 10.0.0.1`
            problems.append(
                source.problem(
                    ("hosts", name),
                    f"a host's settings are a mapping, not {value!r}",
                    f"write {name}: {{address: {value}}}",
                )
            )
            continue
        host = (
            HostSpec()
            if value is None
            else _valid(HostSpec, value, ("hosts", name), source, problems)
        )
        if host is not None:
            hosts[name] = host
    declared_groups: list[str] = []
    groups: dict[str, GroupSpec] = {}
    for name, value in _entries(source, "groups", problems):
        declared_groups.append(name)
        group = (
            GroupSpec()
            if value is None
            else _valid(GroupSpec, value, ("groups", name), source, problems)
        )
        if group is not None:
            groups[name] = group
    return _Spec(head, declared, declared_groups, hosts, groups)


def _entries(
    source: yamlsrc.Source, section: str, problems: list[Problem]
) -> list[tuple[str, Any]]:
    """The (name, settings) pairs of ``hosts:`` or ``groups:``, each name checked at its key."""
    data: dict[Any, Any] = source.data
    kind = _SECTIONS[section]
    if section not in data:
        return []
    raw = data[section]
    if raw is None:
        problems.append(
            source.problem(
                (section,), f"'{section}' is empty", f"indent the {section} under it, or remove it"
            )
        )
        return []
    if not isinstance(raw, dict):
        problems.append(
            source.problem(
                (section,),
                f"'{section}' must be a mapping of {kind} names to their settings, "
                f"not {_KINDS.get(type(raw), 'a ' + type(raw).__name__)}",
                f"one 'NAME: {{...}}' per line, indented under '{section}:'",
            )
        )
        return []
    out: list[tuple[str, Any]] = []
    for name, value in raw.items():
        wrong = name_problem(name, kind)
        if wrong:
            line, column = source.where((section, str(name), "__key__"))
            field = yamlsrc.format_loc((section, str(name)) if str(name) else (section,))
            problems.append(Problem(source.path, line, column, field, *wrong))
            # keep a misspelt name: what else is wrong with the entry still shows
            if not isinstance(name, str):
                continue
        out.append((name, value))
    return out


_M = TypeVar("_M", bound=BaseModel)


def _valid(
    model: type[_M], data: Any, loc: yamlsrc.Loc, source: yamlsrc.Source, problems: list[Problem]
) -> _M | None:
    """``data`` as a ``model``; when it is not, its problems, and the model of its valid keys."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(yamlsrc.problems_from(exc, source, model, loc))
        errors = exc.errors(include_url=False)
    if not isinstance(data, dict) or any(not error["loc"] for error in errors):
        return None
    bad = {error["loc"][0] for error in errors}
    try:
        return model.model_validate({k: v for k, v in data.items() if k not in bad})
    except ValidationError:  # pragma: no cover - what is left was valid on its own
        return None
