"""Pydantic field types shared by the runbook and inventory models."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from drp.durations import parse_duration, positive_duration

# What parse_duration accepts, as an ECMA-262 regex for JSON Schema: a number of
# seconds, or number+unit parts (ms, s, m, h, d); spaces anywhere are ignored and
# the whole may be surrounded by whitespace. tests/unit/test_schema.py holds the
# two to the same answers.
_S = " *"
_DIGITS = f"(?:[0-9]{_S})+"
_NUMBER = f"{_DIGITS}(?:\\.{_S}{_DIGITS})?"
_UNIT = f"(?:m{_S}s{_S}|s{_S}|m{_S}|h{_S}|d{_S})"
DURATION_PATTERN = f"^\\s*{_S}(?:{_NUMBER}|(?:{_NUMBER}{_UNIT})+)\\s*$"

DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "seconds, or a string like '30s', '5m', '1h30m', '2d'",
}

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda v: v, return_type=float),
    WithJsonSchema(DURATION_SCHEMA, mode="validation"),
]
"""Seconds, written as ``90``, ``30s``, ``5m``, ``1h30m`` or ``2d``."""

PositiveDuration = Annotated[
    float,
    BeforeValidator(positive_duration),
    PlainSerializer(lambda v: v, return_type=float),
    WithJsonSchema(
        {
            **DURATION_SCHEMA,
            "description": "more than zero: " + str(DURATION_SCHEMA["description"]),
        },
        mode="validation",
    ),
]
"""A Duration that must be more than zero: timeouts and intervals (``0s`` would never wait)."""
