"""The stored form of one event: a versioned, hash-chained JSON object on one line.

Format (version 1; fields that are ``None`` are omitted)::

    {"v": 1, "seq": 1, "ts": "2026-11-21T23:41:12.123456Z", "run": "<run id>",
     "type": "step.finished", "operator": "ana@laptop", "host": "db1", "step": "x",
     "attempt": 1, "outcome": "ok", "exit_code": 0, "duration": 0.9, "message": "...",
     "data": {...}, "prev": "<hash of previous record or 64 zeros>", "hash": "<sha256>"}

``hash`` is the SHA-256 (hex) of the canonical JSON of the record without ``hash``:
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``. Each
record names the hash of the one before in ``prev``, so editing, removing or
reordering a record breaks the chain at that point.

A stored line is ``json.dumps(record, separators=(",", ":"), ensure_ascii=False)``
in the field order above; :func:`is_canonical_line` checks a line has exactly
that form, so even edits that do not change the parsed value are noticed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from drp.engine.events import Event

VERSION = 1
GENESIS = "0" * 64
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_OPTIONAL = ("operator", "host", "step", "attempt", "outcome", "exit_code", "duration", "message")


def format_ts(when: datetime) -> str:
    """``2026-11-21T23:41:12.123456Z`` (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime(TS_FORMAT)


_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def parse_ts(text: str) -> datetime:
    """The aware UTC datetime of a stored timestamp (exactly what :func:`format_ts`
    writes); ValueError when malformed. ``fromisoformat`` after a strict pattern:
    a tenth of ``strptime``'s cost, which dominated reading a long journal."""
    if not _TS.fullmatch(text):
        raise ValueError(f"timestamp {text!r} is not in the form {TS_FORMAT}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


# Made once: ``json.dumps`` with any non-default option builds a new encoder per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_LINE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical(record: Mapping[str, Any]) -> str:
    """The canonical JSON text that the hash covers (``hash`` itself excluded)."""
    return _CANONICAL.encode({k: v for k, v in record.items() if k != "hash"})


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of :func:`canonical` of ``record``."""
    return hashlib.sha256(canonical(record).encode("utf-8")).hexdigest()


def dump_line(record: Mapping[str, Any]) -> str:
    """The stored line of a record (without the trailing newline)."""
    return _LINE.encode(record)


def is_canonical_line(line: str, record: Mapping[str, Any]) -> bool:
    """True when ``line`` is exactly what the writer produces for ``record``."""
    return dump_line(record) == line


def build_record(event: Event, *, seq: int, operator: str, prev: str) -> dict[str, Any]:
    """The stored dict of ``event``: plain JSON values only, hashed and chained to ``prev``."""
    raw: dict[str, Any] = {
        "v": VERSION,
        "seq": seq,
        "ts": format_ts(event.ts),
        "run": event.run_id,
        "type": str(event.type),
    }
    values = {
        "operator": operator or None,
        "host": event.host,
        "step": event.step,
        "attempt": event.attempt,
        "outcome": str(event.outcome) if event.outcome is not None else None,
        "exit_code": event.exit_code,
        "duration": event.duration,
        "message": event.message or None,
    }
    raw.update({k: values[k] for k in _OPTIONAL if values[k] is not None})
    if event.data:
        raw["data"] = dict(event.data)
    raw["prev"] = prev
    # what a reader will see: odd values (a tuple, a Path, an enum member) round-trip
    # through JSON into lists and strings; a record of plain JSON values (almost all of
    # them) is copied as it is, which skips an encode and a decode
    try:
        record: dict[str, Any] = _plain_copy(raw)
    except _NotPlain:
        record = json.loads(_ODD.encode(raw))
    record["hash"] = record_hash(record)
    return record


_ODD = json.JSONEncoder(ensure_ascii=False, default=str)
_SCALARS = (str, int, float, bool)


class _NotPlain(Exception):
    """A value ``json.loads`` would not return as it is."""


def _plain_copy(value: Any) -> Any:
    """A copy of ``value`` (its dicts and lists new) when it is made of exactly the
    types ``json.loads`` returns; _NotPlain otherwise (a ``str`` subclass such as an
    enum member, a tuple, a key that is not text)."""
    kind = type(value)
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copy[key] = _plain_copy(item)
        return copy
    if kind is list:
        return [_plain_copy(item) for item in value]
    if kind in _SCALARS or value is None:
        return value
    raise _NotPlain


#: The optional fields of a record and the JSON types each may hold.
_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("prev", str),
    ("hash", str),
    ("operator", str),
    ("host", str),
    ("step", str),
    ("attempt", int),
    ("outcome", str),
    ("exit_code", int),
    ("duration", (int, float)),
    ("message", str),
    ("data", dict),
)


def _typed(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The optional fields present in ``fields``; ValueError when one has the wrong type."""
    found: dict[str, Any] = {}
    for key, kind in _TYPES:
        value = fields.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or value is True or value is False:
            raise ValueError(f"field {key!r} has the wrong type")
        found[key] = value
    return found


def checked_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The optional fields of a stored dict, once its version and required fields are
    checked (the timestamp's form is :func:`parse_ts`'s); ValueError naming the first
    field that is missing or has the wrong type."""
    if fields.get("v") != VERSION:
        raise ValueError(f"unsupported record version {fields.get('v')!r}")
    for key, kind in (("seq", int), ("ts", str), ("run", str), ("type", str)):
        if not isinstance(fields.get(key), kind):
            raise ValueError(f"field {key!r} is missing or has the wrong type")
    return _typed(fields)


@dataclass(frozen=True)
class Record:
    """One journal record as read back: typed fields plus the stored mapping."""

    seq: int
    ts: datetime
    run: str
    type: str
    prev: str
    hash: str
    operator: str | None = None
    host: str | None = None
    step: str | None = None
    attempt: int | None = None
    outcome: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any], line: int = 0, *, owned: bool = False) -> Record:
        """Parse a stored dict; ValueError when a field is missing or has the wrong type.

        ``owned``: the caller hands ``fields`` over (a dict fresh from ``json.loads``
        that nobody else holds), so it is wrapped read-only instead of copied."""
        found = checked_fields(fields)
        duration = found.get("duration")
        return cls(
            seq=fields["seq"],
            ts=parse_ts(fields["ts"]),
            run=fields["run"],
            type=fields["type"],
            prev=found.get("prev", ""),
            hash=found.get("hash", ""),
            operator=found.get("operator"),
            host=found.get("host"),
            step=found.get("step"),
            attempt=found.get("attempt"),
            outcome=found.get("outcome"),
            exit_code=found.get("exit_code"),
            duration=float(duration) if duration is not None else None,
            message=found.get("message", ""),
            data=MappingProxyType(
                found["data"] if owned and "data" in found else dict(found.get("data", {}))
            ),
            fields=MappingProxyType(fields if owned and isinstance(fields, dict) else dict(fields)),
            line=line,
        )
