"""Durations as operators write them (``90``, ``30s``, ``5m``, ``1h30m``, ``2d``), in seconds."""

from __future__ import annotations

import math
import re
from typing import Any

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: The longest duration drp takes (a year): past it a timeout or a delay is a typo, and
#: ``.inf`` (YAML's infinity) would make a retry sleep for ever or a plan fail to format it.
MAX_SECONDS = 366 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``1h30m``; ValueError when malformed.

    Infinite, NaN and over-a-year values are refused: every duration drp takes
    bounds a wait, a sleep or a timeout.
    """
    seconds = _seconds(value)
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(
            f"duration {value!r} is out of range: at most {MAX_SECONDS / 86400:.0f}d "
            "(a number of seconds or a string like '30s', '5m', '2h')"
        )
    return seconds


def positive_duration(value: Any) -> float:
    """A duration that must be more than zero (a timeout, an interval): ValueError if not."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be more than zero (got {value!r}): write e.g. '30s', '10m'")
    return seconds


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s', '5m', '2h'")
    if isinstance(value, int | float):
        if value < 0:  # -inf and nan are caught by the caller
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration is a number of seconds or a string like '30s', '5m', '2h'")
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if not text or _PART.sub("", text):
        raise ValueError(f"invalid duration {value!r}: write e.g. '45s', '10m', '1h30m', '2d'")
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """A short human form: ``0.4s``, ``12s``, ``4m05s``, ``2h03m``, ``1d02h``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
