"""Parameters: turn ``--param k=v``, a params file and prompts into typed, checked values."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drp.durations import parse_duration
from drp.errors import ParamError, Problem
from drp.inventory import Inventory
from drp.runbook.loader import Runbook
from drp.runbook.model import Param, ParamType

Prompt = Callable[[str, Param], str]
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


@dataclass(frozen=True)
class Params:
    """Resolved parameter values, and which of them are secret."""

    values: dict[str, Any]
    secret_names: frozenset[str]

    def secrets(self) -> list[Any]:
        return [self.values[n] for n in self.secret_names if self.values.get(n) is not None]

    def masked(self) -> dict[str, Any]:
        from drp.redact import MASK

        return {
            k: (MASK if k in self.secret_names and v is not None else v)
            for k, v in self.values.items()
        }


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}``; a missing ``=`` is an error."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParamError(
                [
                    Problem(
                        "--param",
                        None,
                        None,
                        item,
                        "expected NAME=VALUE",
                        "e.g. --param failed=/dev/sdb",
                    )
                ]
            )
        out[name.strip()] = value
    return out


def coerce(name: str, param: Param, raw: Any, inventory: Inventory | None) -> Any:
    """Convert one raw value to the param's type; ValueError says what is wrong."""
    kind = param.type
    if kind is ParamType.INT:
        if isinstance(raw, bool):
            raise ValueError("expected a whole number")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected a whole number, got {raw!r}") from None
    if kind is ParamType.BOOL:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind is ParamType.DURATION:
        return parse_duration(raw)
    value = str(raw)
    if kind is ParamType.CHOICE and value not in (param.choices or []):
        raise ValueError(f"{value!r} is not one of {', '.join(param.choices or [])}")
    if kind is ParamType.HOST and inventory is not None and value not in inventory.hosts:
        raise ValueError(f"no inventory host named {value!r}")
    if kind is ParamType.GROUP and inventory is not None and value not in inventory.groups:
        raise ValueError(f"no inventory group named {value!r}")
    if param.pattern and not re.fullmatch(param.pattern, value):
        raise ValueError(f"{value!r} does not match the pattern {param.pattern!r}")
    return value


def resolve_params(
    runbook: Runbook,
    given: Mapping[str, Any],
    inventory: Inventory | None,
    prompt: Prompt | None = None,
) -> Params:
    """Check and type every param; report every problem at once (unknown, missing, invalid)."""
    problems: list[Problem] = []
    for name in given:
        if name not in runbook.params:
            close = difflib.get_close_matches(name, list(runbook.params), n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else (f"params of {runbook.name}: {', '.join(runbook.params) or 'none'}")
            )
            problems.append(Problem("--param", None, None, name, "unknown param", hint))
    values: dict[str, Any] = {}
    for name, param in runbook.params.items():
        raw = given.get(name)
        if raw is None and param.default is None and param.required and prompt is not None:
            raw = prompt(name, param)
        if raw is None:
            raw = param.default
        if raw is None:
            if param.required:
                problems.append(
                    Problem(
                        "--param",
                        None,
                        None,
                        name,
                        "required param missing",
                        f"add --param {name}=VALUE ({param.help or param.type})",
                    )
                )
            values[name] = None
            continue
        try:
            values[name] = coerce(name, param, raw, inventory)
        except ValueError as exc:
            problems.append(Problem("--param", None, None, name, str(exc), param.help))
    if problems:
        raise ParamError(problems)
    secret = frozenset(n for n, p in runbook.params.items() if p.secret)
    return Params(values, secret)
