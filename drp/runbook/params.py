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
    """Convert one raw value to the param's type; ValueError says what is wrong.

    The message quotes the value, except a secret param's: that is never echoed.
    """
    shown = "the value (secret, not shown)" if param.secret else repr(raw)
    kind = param.type
    if kind is ParamType.INT:
        return _int(raw, shown)
    if kind is ParamType.BOOL:
        return _bool(raw, shown)
    if kind is ParamType.DURATION:
        try:
            return parse_duration(raw)
        except ValueError as exc:
            if param.secret:
                raise ValueError(
                    f"invalid duration: {shown}; write e.g. '45s', '10m', '1h30m', '2d'"
                ) from None
            raise ValueError(str(exc)) from None
    value = str(raw)
    if kind is ParamType.CHOICE and value not in (param.choices or []):
        close = difflib.get_close_matches(value, param.choices or [], n=1)
        also = f" (did you mean {close[0]!r}?)" if close and not param.secret else ""
        raise ValueError(f"{shown} is not one of {', '.join(param.choices or [])}{also}")
    if kind in (ParamType.HOST, ParamType.GROUP) and inventory is not None:
        what, known = (
            ("host", inventory.hosts) if kind is ParamType.HOST else ("group", inventory.groups)
        )
        if value not in known:
            close = difflib.get_close_matches(value, list(known), n=1)
            also = f" (did you mean {close[0]!r}?)" if close and not param.secret else ""
            raise ValueError(f"no inventory {what} named {shown}{also}")
    if param.pattern and not re.fullmatch(param.pattern, value):
        raise ValueError(f"{shown} does not match the pattern {param.pattern!r}")
    return value


def _int(raw: Any, shown: str) -> int:
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise ValueError(f"expected a whole number, got {shown}")
    try:
        return int(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"expected a whole number, got {shown}") from None


def _bool(raw: Any, shown: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(f"expected true or false, got {shown}")


Origin = tuple[str, int | None, int | None]
"""Where a given value was written: a params file with line and column, or ``--param``."""

_CLI: Origin = ("--param", None, None)


def resolve_params(
    runbook: Runbook,
    given: Mapping[str, Any],
    inventory: Inventory | None,
    prompt: Prompt | None = None,
    origins: Mapping[str, Origin] | None = None,
) -> Params:
    """Check and type every param; report every problem at once (unknown, missing, invalid).

    ``origins`` says where each given value was written (default: ``--param``).
    """
    problems: list[Problem] = []
    where = origins or {}
    for name in given:
        if name not in runbook.params:
            close = difflib.get_close_matches(name, list(runbook.params), n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else (f"params of {runbook.name}: {', '.join(runbook.params) or 'none'}")
            )
            problems.append(Problem(*where.get(name, _CLI), name, "unknown param", hint))
    values: dict[str, Any] = {}
    for name, param in runbook.params.items():
        raw = given.get(name)
        if raw is None and param.default is None and param.required and prompt is not None:
            raw = prompt(name, param)
        from_default = raw is None and param.default is not None
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
            if from_default:  # the loader checked the rest: this needs the inventory
                problems.append(_bad_default(runbook, name, param, str(exc), inventory))
            else:
                problems.append(Problem(*where.get(name, _CLI), name, str(exc), param.help))
    if problems:
        raise ParamError(problems)
    secret = frozenset(n for n, p in runbook.params.items() if p.secret)
    return Params(values, secret)


def _bad_default(
    runbook: Runbook, name: str, param: Param, reason: str, inventory: Inventory | None
) -> Problem:
    """A host or group default the inventory does not have: where it is written, what to do.

    ``reason`` (from :func:`coerce`) already suggests the nearest name.
    """
    hint = f"pass --param {name}=VALUE, or change the default"
    where = f" of {inventory.path}" if inventory is not None else ""
    return runbook.problem(
        f"params.{name}.default", f"the default does not fit the inventory{where}: {reason}", hint
    )
