"""Replaying a journal into a :class:`RunState`: the fold that resume uses.

Per host and step:

- **done**: the last ``step.finished`` has outcome ok / changed / skipped (or the
  step was ``step.skipped``);
- **in doubt**: a ``step.started`` has no later ``step.finished`` for that host and
  the step is not just waiting for a human: it may or may not have acted, so its
  guard must be re-checked, or the operator asked;
- **paused**: a ``step.waiting`` not yet answered, or a ``step.finished`` with
  outcome ``paused``.

A step that ended *interrupted* or *unreachable* while it was acting (not while it
waited for a human) is in doubt too: Ctrl-C or a dropped link may have stopped it
half-way. A step whose rollback succeeded is *rolled back*, no longer done; one
whose rollback failed is in doubt. A step skipped on resume as already done keeps
the outcome it had, so what an earlier session ran can still be rolled back.

A run belongs to the incident its ``run.started`` names, or the one a later
``run.resumed`` added it to (:mod:`drp.journal.incident`).

The run status is the outcome of the last ``run.finished`` (if no ``run.resumed``
follows it); otherwise ``running`` when the journal's lock is held, else
``interrupted`` (something is in doubt) or ``paused`` (a host waits at a gate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from drp.engine.events import EventType as T
from drp.journal.record import Record, format_ts, parse_ts
from drp.results import HostStatus, RunStatus, StepStatus

LOCAL_HOST = "(local)"
"""Host key for step events that name no host (local steps)."""

DONE = frozenset({StepStatus.OK, StepStatus.CHANGED, StepStatus.SKIPPED})
ACTED = frozenset({StepStatus.OK, StepStatus.CHANGED})
CUT_SHORT = frozenset({StepStatus.INTERRUPTED, StepStatus.UNREACHABLE})


_E = TypeVar("_E", StepStatus, HostStatus, RunStatus)


def _enum(kind: type[_E], value: str | None) -> _E | None:
    try:
        return kind(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class StepState:
    """What the journal says about one step on one host."""

    status: StepStatus | None = None
    in_doubt: bool = False
    attempts: int = 0
    captures: Mapping[str, Any] = field(default_factory=dict)
    started: datetime | None = None
    finished: datetime | None = None
    waiting: bool = False
    approved_by: str | None = None
    kind: str = ""

    @property
    def done(self) -> bool:
        return self.status in DONE and not self.in_doubt


@dataclass(frozen=True)
class HostState:
    """Steps of one host, in the order they were first seen, and the host's status."""

    status: HostStatus | None = None
    steps: Mapping[str, StepState] = field(default_factory=dict)


@dataclass(frozen=True)
class RunState:
    """Everything resume needs to know about a run, folded from its journal."""

    run_id: str
    status: RunStatus
    runbook: str = ""
    runbook_path: str = ""
    runbook_sha256: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    inventory: str = ""
    inventory_sha256: str = ""
    host_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    dry_run: bool = False
    command_line: str = ""
    drp_version: str = ""
    operator: str = ""
    incident: str = ""  # from run.started, or the run.resumed that added it
    started: datetime | None = None
    ended: datetime | None = None
    hosts: Mapping[str, HostState] = field(default_factory=dict)
    approvals: Mapping[str, str] = field(default_factory=dict)
    last_seq: int = 0

    def host(self, host: str) -> HostState:
        return self.hosts.get(host, HostState())

    def done_steps(self, host: str) -> set[str]:
        """Steps finished ok / changed / skipped on ``host``: not to be run again."""
        return {name for name, s in self.host(host).steps.items() if s.done}

    def acted_steps(self, host: str) -> set[str]:
        """Done steps of ``host`` that ran (not skipped): what a later rollback undoes."""
        steps = self.host(host).steps.items()
        return {name for name, s in steps if s.done and s.status in ACTED}

    def in_doubt(self, host: str) -> set[str]:
        """Steps of ``host`` that may have acted, partly or fully: started with no end
        recorded, cut short while acting, or whose rollback failed."""
        return {name for name, s in self.host(host).steps.items() if s.in_doubt}

    def paused(self, host: str) -> set[str]:
        """Steps of ``host`` waiting for a human."""
        return {name for name, s in self.host(host).steps.items() if s.status is StepStatus.PAUSED}

    def captures(self, host: str) -> dict[str, Any]:
        """Captures of the finished steps of ``host``, merged in journal order."""
        merged: dict[str, Any] = {}
        for step in self.host(host).steps.values():
            if step.finished is not None and step.status in DONE:
                merged.update(step.captures)
        return merged


@dataclass
class _Step:
    """A step's state while the fold runs: changed in place, record by record (a frozen
    copy per record cost most of the time a 30,000-record journal takes to fold)."""

    status: StepStatus | None = None
    in_doubt: bool = False
    attempts: int = 0
    captures: Mapping[str, Any] = field(default_factory=dict)
    started: datetime | None = None
    finished: datetime | None = None
    waiting: bool = False
    approved_by: str | None = None
    kind: str = ""

    def apply(self, rec: Record) -> None:
        kind = rec.type
        if kind == T.STEP_STARTED:
            self.kind = str(rec.data.get("kind") or self.kind)
            self.started, self.finished, self.in_doubt, self.waiting = rec.ts, None, True, False
        elif kind == T.STEP_ATTEMPT:
            if rec.data.get("phase") in (None, "action"):
                self.attempts += 1
            self.waiting = False
        elif kind == T.STEP_WAITING:
            if rec.data.get("kind") == "in-doubt":  # asking about a step in doubt settles nothing
                self.in_doubt, self.waiting = True, False
            else:
                self.status, self.waiting = StepStatus.PAUSED, True
        elif kind == T.STEP_APPROVED:
            by = rec.data.get("by")
            self.waiting, self.approved_by = False, str(by) if by is not None else ""
        elif kind == T.STEP_REJECTED:
            self.status, self.waiting, self.in_doubt = StepStatus.REJECTED, False, False
        elif kind == T.ROLLBACK_FINISHED:  # undone: to run again; a failed undo leaves it unknown
            if rec.outcome == "ok":
                self.status, self.in_doubt = StepStatus.ROLLED_BACK, False
            else:
                self.in_doubt = True
        elif kind in (T.STEP_FINISHED, T.STEP_SKIPPED):
            self._end(rec)

    def _end(self, rec: Record) -> None:
        skipped = rec.type == T.STEP_SKIPPED
        status = StepStatus.SKIPPED if skipped else _enum(StepStatus, rec.outcome)
        # a journal from before host.resumed: a step skipped on resume as done keeps the
        # outcome of the session that ran it
        if skipped and rec.data.get("reason") == "done" and self.status in DONE:
            status = self.status
        self.in_doubt = status in CUT_SHORT and not self.waiting and self.kind != "manual"
        self.status, self.waiting, self.finished = status, status is StepStatus.PAUSED, rec.ts
        caps = rec.data.get("captures")
        self.captures = MappingProxyType(dict(caps) if isinstance(caps, Mapping) else {})

    def freeze(self) -> StepState:
        # a step that only waits for a human has not acted: it is paused, not in doubt
        return StepState(**{**vars(self), "in_doubt": self.in_doubt and not self.waiting})


def _host_status(steps: Mapping[str, StepState], final: HostStatus | None) -> HostStatus | None:
    if final is not None:
        return final
    if any(s.in_doubt for s in steps.values()):
        return HostStatus.INTERRUPTED
    if any(s.status is StepStatus.PAUSED for s in steps.values()):
        return HostStatus.PAUSED
    return None


def _run_status(hosts: Mapping[str, HostState], final: RunStatus | None, locked: bool) -> RunStatus:
    if final is not None:
        return final
    if locked:
        return RunStatus.RUNNING
    statuses = {h.status for h in hosts.values()}
    if HostStatus.INTERRUPTED in statuses:
        return RunStatus.INTERRUPTED
    if HostStatus.PAUSED in statuses:
        return RunStatus.PAUSED
    return RunStatus.INTERRUPTED


def _as_records(records: Iterable[Record | Mapping[str, Any]]) -> list[Record]:
    return [r if isinstance(r, Record) else Record.from_dict(r) for r in records]


def _inputs(d: Mapping[str, Any]) -> dict[str, Any]:
    """What a session ran with (``run.started``, or a later ``run.resumed``): the
    runbook's sha256, params, inventory and its hosts' settings; only what it says."""
    found: dict[str, Any] = {}
    for name in ("runbook_sha256", "inventory", "inventory_sha256", "incident"):
        if d.get(name):
            found[name] = str(d[name])
    params, hosts = d.get("params"), d.get("hosts")
    if isinstance(params, Mapping):
        found["params"] = MappingProxyType(dict(params))
    if isinstance(hosts, Mapping):
        found["host_settings"] = MappingProxyType(
            {str(k): MappingProxyType(dict(v)) for k, v in hosts.items() if isinstance(v, Mapping)}
        )
    return found


def _start_fields(rec: Record) -> dict[str, Any]:
    d = rec.data
    targets = d.get("targets") or ()
    return {
        "runbook": str(d.get("runbook") or ""),
        "runbook_path": str(d.get("runbook_path") or ""),
        "runbook_sha256": "",
        "params": MappingProxyType({}),
        "inventory": "",
        "inventory_sha256": "",
        "incident": "",
        **_inputs(d),
        "targets": tuple(str(t) for t in targets) if isinstance(targets, list) else (),
        "dry_run": bool(d.get("dry_run", False)),
        "command_line": str(d.get("command_line") or ""),
        "drp_version": str(d.get("drp_version") or ""),
        "operator": rec.operator or "",
        "started": rec.ts,
    }


class Fold:
    """The fold of :func:`replay` while it runs: fed record by record, it can be kept as
    JSON (:meth:`to_json`, a checkpoint beside the journal, :mod:`drp.journal.checkpoint`)
    and taken up again (:meth:`from_json`) to fold only the records written since; the
    :class:`RunState` it gives is then exactly the one a fold of every record gives."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.steps: dict[str, dict[str, _Step]] = {}
        self.host_final: dict[str, HostStatus | None] = {}
        self.approvals: dict[str, str] = {}
        self.final: RunStatus | None = None
        self.ended: datetime | None = None
        self.run_id = ""
        self.last_seq = 0
        self.records = 0

    def feed(self, rec: Record) -> None:
        """Fold one more record (file order)."""
        if not self.records:
            self.run_id = rec.run
        self.records += 1
        self.last_seq = rec.seq
        host = rec.host if rec.host is not None else LOCAL_HOST
        if rec.type == T.RUN_STARTED and not self.info:
            self.info = _start_fields(rec)
        elif rec.type == T.RUN_RESUMED:
            self.final, self.ended = None, None
            self.info.update(_inputs(rec.data))  # what the later session ran with
        elif rec.type == T.RUN_FINISHED:
            self.final, self.ended = _enum(RunStatus, rec.outcome) or RunStatus.FAILED, rec.ts
        elif rec.type == T.HOST_FINISHED and rec.host is not None:
            self.host_final[host] = _enum(HostStatus, rec.outcome)
        elif (
            rec.type.startswith("step.") or rec.type == T.ROLLBACK_FINISHED
        ) and rec.step is not None:
            self.host_final.pop(host, None)  # the host is active again
            per_host = self.steps.setdefault(host, {})
            step = per_host.get(rec.step)
            if step is None:
                step = per_host[rec.step] = _Step()
            step.apply(rec)
            if rec.type == T.STEP_APPROVED:
                self.approvals[rec.step] = str(rec.data.get("by") or rec.operator or "")
        if rec.host is not None and rec.host not in self.steps and rec.type.startswith("host."):
            self.steps.setdefault(host, {})

    def state(self, *, locked: bool = False) -> RunState:
        """The :class:`RunState` of the records fed so far."""
        hosts: dict[str, HostState] = {}
        for name, per_host in self.steps.items():
            frozen = {k: v.freeze() for k, v in per_host.items()}
            hosts[name] = HostState(
                _host_status(frozen, self.host_final.get(name)), MappingProxyType(frozen)
            )
        return RunState(
            run_id=self.run_id,
            status=_run_status(hosts, self.final, locked),
            ended=self.ended,
            hosts=MappingProxyType(hosts),
            approvals=MappingProxyType(dict(self.approvals)),
            last_seq=self.last_seq,
            **self.info,
        )

    def to_json(self) -> dict[str, Any]:
        """The fold as plain JSON values (see :meth:`from_json`)."""
        return {
            "info": {k: _plain(v) for k, v in self.info.items()},
            "steps": {
                host: {name: _step_json(step) for name, step in per_host.items()}
                for host, per_host in self.steps.items()
            },
            "host_final": {k: _opt_str(v) for k, v in self.host_final.items()},
            "approvals": dict(self.approvals),
            "final": _opt_str(self.final),
            "ended": _opt_ts(self.ended),
            "run_id": self.run_id,
            "last_seq": self.last_seq,
            "records": self.records,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Fold:
        """The fold :meth:`to_json` wrote; KeyError, TypeError or ValueError when ``d``
        is not one."""
        fold = cls()
        fold.info = {k: _info_value(k, v) for k, v in d["info"].items()}
        fold.steps = {
            str(host): {str(name): _step_from(s) for name, s in per_host.items()}
            for host, per_host in d["steps"].items()
        }
        fold.host_final = {str(k): _enum(HostStatus, v) for k, v in d["host_final"].items()}
        fold.approvals = {str(k): str(v) for k, v in d["approvals"].items()}
        fold.final = _enum(RunStatus, d["final"])
        fold.ended = parse_ts(d["ended"]) if d["ended"] is not None else None
        fold.run_id, fold.last_seq = str(d["run_id"]), int(d["last_seq"])
        fold.records = int(d["records"])
        return fold


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def _plain(value: Any) -> Any:
    """A fold value as JSON: read-only mappings as objects, tuples as lists, times as text."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return format_ts(value)
    return value


def _info_value(key: str, value: Any) -> Any:
    """An ``info`` value back in the type :func:`_start_fields` and :func:`_inputs` give."""
    if key == "started":
        return parse_ts(value)
    if key == "targets":
        return tuple(str(t) for t in value)
    if key == "params":
        return MappingProxyType(dict(value))
    if key == "host_settings":
        return MappingProxyType({str(k): MappingProxyType(dict(v)) for k, v in value.items()})
    if not isinstance(value, str | bool):
        raise TypeError(f"fold field {key!r} has the wrong type")
    return value


def _ts(text: str | None) -> datetime | None:
    """A time the fold kept (:func:`format_ts` wrote it; ``fromisoformat`` reads the ``Z``)."""
    return None if text is None else datetime.fromisoformat(text)


def _step_json(step: _Step) -> dict[str, Any]:
    return {
        "status": _opt_str(step.status),
        "in_doubt": step.in_doubt,
        "attempts": step.attempts,
        "captures": dict(step.captures),
        "started": _opt_ts(step.started),
        "finished": _opt_ts(step.finished),
        "waiting": step.waiting,
        "approved_by": step.approved_by,
        "kind": step.kind,
    }


def _step_from(d: Mapping[str, Any]) -> _Step:
    captures = d["captures"]
    if not isinstance(captures, dict):
        raise TypeError("captures must be an object")
    return _Step(
        status=_enum(StepStatus, d["status"]),
        in_doubt=d["in_doubt"] is True,
        attempts=int(d["attempts"]),
        captures=MappingProxyType(captures),
        started=_ts(d["started"]),
        finished=_ts(d["finished"]),
        waiting=d["waiting"] is True,
        approved_by=None if d["approved_by"] is None else str(d["approved_by"]),
        kind=str(d["kind"]),
    )


def replay(records: Iterable[Record | Mapping[str, Any]], *, locked: bool = False) -> RunState:
    """Fold journal records (read back, or as returned by ``append``) into a RunState.

    ``locked`` says whether a live process holds the journal's lock (see
    :func:`drp.journal.writer.lock_holder`); it only matters for unfinished runs.
    """
    fold = Fold()
    for rec in _as_records(records):
        fold.feed(rec)
    return fold.state(locked=locked)
