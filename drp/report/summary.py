"""One line per run: what ``drp log list`` shows and filters on (listed by
:mod:`drp.report.listing`).

:class:`RunData` bundles what every review command needs about one run (its
journal as read, the replayed state, the chain verification); :class:`RunSummary`
condenses it to the columns of a table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from drp.journal import (
    Journal,
    RunState,
    VerifyResult,
    journal_path,
    lock_holder,
    replay,
    resolve_run,
    run_dir,
    verify,
)
from drp.journal.anchors import AnchorResult, check_run
from drp.journal.index import Index
from drp.journal.reader import parse_bytes, read_bytes
from drp.journal.record import format_ts, parse_ts
from drp.journal.scan import verify_aside
from drp.results import RunStatus


@dataclass(frozen=True)
class RunData:
    """A run's journal as read, its replayed state, its chain verification and its anchors."""

    run_id: str
    journal: Journal
    state: RunState
    verification: VerifyResult
    anchors: AnchorResult | None = None  # None: read from a bare file, outside a state dir

    @classmethod
    def from_journal(
        cls,
        journal: Journal,
        *,
        locked: bool = False,
        anchors: AnchorResult | None = None,
        verdict: Callable[[], VerifyResult | None] | None = None,
    ) -> RunData:
        """``verdict``: the chain's verification going on aside (``None``: verify here)."""
        state = replay(journal.records, locked=locked)
        run_id = journal.run_id or journal.path.parent.name
        verification = verdict() if verdict is not None else None
        return cls(run_id, journal, state, verification or verify(journal), anchors)

    @property
    def verified(self) -> bool:
        """The chain holds and no witness or signature disagrees with it."""
        return self.verification.ok and (self.anchors is None or self.anchors.ok)


def load_path(path: Path, index: Index | None = None) -> RunData:
    """Load the run whose ``events.jsonl`` is at ``path`` (``STATE/runs/<id>/``): the state
    directory's index witness and the run's signatures are compared with it too."""
    locked = lock_holder(path.parent) is not None
    content = read_bytes(path)
    # a long journal's chain is checked on the other core while this one parses it
    verdict = verify_aside(content) if len(content) >= ASIDE_FROM else None
    journal = parse_bytes(path, content)
    state = path.parent.parent.parent
    anchors = check_run(journal, path.parent, state, index=index)
    return RunData.from_journal(journal, locked=locked, anchors=anchors, verdict=verdict)


ASIDE_FROM = 1 << 20
"""Journal bytes from which :func:`load_path` verifies the chain in a child process."""


def load_run(state_dir: Path, ref: str) -> RunData:
    """Load a run by id, unique id prefix, or ``latest``."""
    run_id = resolve_run(state_dir, ref)
    return load_path(journal_path(run_dir(state_dir, run_id)))


@dataclass(frozen=True)
class RunSummary:
    """One run in a table: who ran what, where, when, and how it ended."""

    run_id: str
    runbook: str
    started: datetime | None
    ended: datetime | None
    status: RunStatus
    operators: tuple[str, ...]
    hosts: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    records: int = 0
    verified: bool = True
    dry_run: bool = False
    incident: str = ""


def summary_json(s: RunSummary) -> dict[str, Any]:
    """A summary as plain JSON values: ``drp log list --format json`` and the list cache."""
    return {
        "run": s.run_id,
        "runbook": s.runbook,
        "started": format_ts(s.started) if s.started else None,
        "ended": format_ts(s.ended) if s.ended else None,
        "status": str(s.status),
        "incident": s.incident or None,
        "operators": list(s.operators),
        "hosts": list(s.hosts),
        "counts": dict(s.counts),
        "records": s.records,
        "verified": s.verified,
        "dry_run": s.dry_run,
    }


def summary_from_json(d: Mapping[str, Any]) -> RunSummary:
    """The summary :func:`summary_json` wrote; KeyError, TypeError or ValueError when
    ``d`` is not one."""
    counts = d["counts"]
    if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
        raise ValueError("counts must map outcomes to numbers")
    return RunSummary(
        run_id=str(d["run"]),
        runbook=str(d["runbook"]),
        started=parse_ts(d["started"]) if d["started"] else None,
        ended=parse_ts(d["ended"]) if d["ended"] else None,
        status=RunStatus(d["status"]),
        operators=tuple(str(o) for o in d["operators"]),
        hosts=tuple(str(h) for h in d["hosts"]),
        counts=MappingProxyType(dict(counts)),
        records=int(d["records"]),
        verified=d["verified"] is True,
        dry_run=d["dry_run"] is True,
        incident=str(d["incident"] or ""),
    )


def summarize(run: RunData) -> RunSummary:
    """The summary of a loaded run."""
    state = run.state
    operators = tuple(dict.fromkeys(r.operator for r in run.journal.records if r.operator))
    hosts = tuple(dict.fromkeys([*state.targets, *state.hosts]))
    counts: Counter[str] = Counter()
    for host in state.hosts.values():
        for step in host.steps.values():
            counts["in-doubt" if step.in_doubt else str(step.status or "started")] += 1
    records = run.journal.records
    return RunSummary(
        run_id=run.run_id,
        runbook=state.runbook or ("(empty journal)" if not records else "?"),
        started=state.started or (records[0].ts if records else None),
        ended=state.ended,
        status=state.status,
        operators=operators,
        hosts=hosts,
        counts=MappingProxyType(dict(sorted(counts.items()))),
        records=len(records),
        verified=run.verified,
        dry_run=state.dry_run,
        incident=state.incident,
    )


@dataclass(frozen=True)
class RunFilter:
    """Filters of ``drp log list``; ``None`` means any."""

    runbook: str | None = None
    host: str | None = None
    status: RunStatus | None = None
    operator: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    incident: str | None = None

    def match(self, s: RunSummary) -> bool:
        checks = (
            self.runbook is None or s.runbook == self.runbook,
            self.host is None or self.host in s.hosts,
            self.status is None or s.status == self.status,
            self.operator is None or any(self.operator in op for op in s.operators),
            self.since is None or (s.started is not None and s.started >= self.since),
            self.until is None or (s.started is not None and s.started <= self.until),
            self.incident is None or s.incident == self.incident,
        )
        return all(checks)
