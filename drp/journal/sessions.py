"""The sessions of a run: each ``drp run`` / ``drp resume`` (or ``drp log note``) that wrote to it.

A session starts at a ``run.started`` or ``run.resumed`` record (a note is a session of
its own) and ends at its ``run.finished``; one with no ``run.finished`` before the next
session (or the end of the journal) *ended without a word*: killed (``kill -9``), crashed,
the machine lost, or still running when its lock is held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from drp.engine.events import AFTERWORDS
from drp.journal.record import Record

STARTS = ("run.started", "run.resumed", "run.note")
ANNOTATIONS = AFTERWORDS  # records that may follow run.finished (not run steps)


@dataclass(frozen=True)
class Session:
    """One session: its number (1-based), first and last record, how it ended."""

    number: int
    kind: str  # "run", "resume" or "note"
    first: Record
    last: Record
    finished: Record | None
    operator: str = ""
    identity: Mapping[str, Any] = field(default_factory=dict)
    signing: Mapping[str, Any] = field(default_factory=dict)

    @property
    def started(self) -> datetime:
        return self.first.ts

    @property
    def ended(self) -> datetime:
        return self.last.ts

    @property
    def outcome(self) -> str:
        """How it ended: the run's status, or why nobody knows."""
        if self.kind == "note":
            return "note"
        if self.finished is not None:
            return self.finished.outcome or "?"
        return "without run.finished (killed, crashed or still running)"

    @property
    def seqs(self) -> tuple[int, int]:
        return self.first.seq, self.last.seq


def _mapping(value: object) -> Mapping[str, Any]:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else MappingProxyType({})


def split_sessions(records: Sequence[Record]) -> list[Session]:
    """The sessions of a run's records (file order); records before any start form none."""
    out: list[Session] = []
    current: list[Record] = []

    def close() -> None:
        if not current:
            return
        first = current[0]
        kind = {"run.started": "run", "run.resumed": "resume"}.get(first.type, "note")
        finished = next((r for r in current if r.type == "run.finished"), None)
        out.append(
            Session(
                len(out) + 1,
                kind,
                first,
                current[-1],
                finished,
                first.operator or "",
                _mapping(first.data.get("identity")),
                _mapping(first.data.get("signing")),
            )
        )

    for record in records:
        if record.type in STARTS:
            close()
            current = [record]
        elif current:
            current.append(record)
    close()
    return out
