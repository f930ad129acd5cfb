"""Pydantic field types shared by the runbook and inventory models."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from drp.durations import parse_duration

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda v: v, return_type=float),
]
"""Seconds, written as ``90``, ``30s``, ``5m``, ``1h30m`` or ``2d``."""
