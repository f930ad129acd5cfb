"""An incident: the runs tagged with one id, folded into one timeline.

Several runs make one incident (``drp run … --incident ID``, see
:mod:`drp.journal.incident`). :func:`load_incident` reads every run of the state
directory that carries the id (each journal read and its chain and anchors verified,
as for one run), oldest first; :func:`incident_timeline` folds their timelines into
one: every run's sessions, steps, rollbacks, failures, decisions, notes and paths to
the hosts, the milestones in wall-clock order, and the time split over the whole
incident, where *between sessions* is the time no session of any run was active and
nobody was asked. A one-run incident's timeline is that run's timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from drp.errors import InputError, JournalError
from drp.journal import journal_path, list_run_ids, run_dir, runs_dir
from drp.journal.incident import validate_incident
from drp.journal.index import read_index
from drp.report.model import Timeline, idle_gaps, union_seconds
from drp.report.render import (
    cell,
    clock,
    command_lines,
    in_format,
    integrity,
    iso,
    md_body,
    md_sessions,
    md_tail,
    run_facts,
    run_tag,
    timeline_dict,
)
from drp.report.summary import RunData, load_path
from drp.report.timeline import build_timeline, gap_milestones


@dataclass(frozen=True)
class Incident:
    """An incident id and its runs, in the order they started."""

    id: str
    runs: tuple[RunData, ...]

    @property
    def verified(self) -> bool:
        """Every run's chain holds and no witness or signature disagrees."""
        return all(r.verified for r in self.runs)

    @property
    def integrity(self) -> str:
        """One line: were all journals verified while this report read them."""
        bad = [r.run_id for r in self.runs if not r.verified]
        if bad:
            return f"{len(bad)} of {len(self.runs)} journals FAILED verification: {', '.join(bad)}"
        return (
            f"all {len(self.runs)} journals verified while reading them (hash chain, "
            "witnesses and signatures where found)"
        )

    @property
    def warnings(self) -> list[str]:
        return [f"{r.run_id}: {w}" for r in self.runs for w in r.journal.warnings]

    def operators(self) -> list[str]:
        return list(
            dict.fromkeys(x.operator for r in self.runs for x in r.journal.records if x.operator)
        )

    def hosts(self) -> list[str]:
        return list(dict.fromkeys(h for r in self.runs for h in [*r.state.targets, *r.state.hosts]))


def load_incident(state_dir: Path, incident: str) -> Incident:
    """The runs under ``state_dir`` tagged with ``incident``; an :class:`InputError` when
    none is (a typo, or runs not tagged: say how to tag them)."""
    validate_incident(incident)
    index = read_index(state_dir)
    runs = []
    for run_id in list_run_ids(state_dir):
        try:
            run = load_path(journal_path(run_dir(state_dir, run_id)), index)
        except JournalError:
            continue  # vanished between listing and reading
        if run.state.incident == incident:
            runs.append(run)
    if not runs:
        raise InputError(
            f"no run of incident {incident!r} in {runs_dir(state_dir)}: tag runs with "
            "'drp run … --incident ID' or 'drp resume RUN --incident ID' "
            "(see 'drp log list', its incident column)"
        )
    return Incident(incident, tuple(runs))


def incident_timeline(runs: Sequence[RunData]) -> Timeline:
    """One timeline of several runs (a single run's timeline when there is one)."""
    parts = [build_timeline(r.journal.records) for r in runs]
    if len(parts) == 1:
        return parts[0]
    starts = [t.started for t in parts if t.started is not None]
    ends = [t.ended for t in parts if t.ended is not None]
    started, ended = (min(starts), max(ends)) if starts and ends else (None, None)
    waits = tuple(w for t in parts for w in t.waits)
    sessions = tuple(s for t in parts for s in t.sessions)
    gaps = idle_gaps(started, ended, sessions, waits)
    total = (ended - started).total_seconds() if started and ended else 0.0
    human, idle = union_seconds(waits), sum(g.seconds for g in gaps)
    milestones = [m for t in parts for m in t.milestones if m.kind != "idle"]
    milestones += gap_milestones(gaps)
    return Timeline(
        rows=tuple(r for t in parts for r in t.rows),
        milestones=tuple(sorted(milestones, key=lambda m: m.ts)),
        failures=tuple(sorted((f for t in parts for f in t.failures), key=lambda f: f.ts)),
        decisions=tuple(sorted((d for t in parts for d in t.decisions), key=lambda d: d.ts)),
        waits=waits,
        started=started,
        ended=ended,
        human_wait=human,
        machine_time=max(0.0, total - human - idle),
        idle=idle,
        sessions=sessions,
        notes=tuple(sorted((n for t in parts for n in t.notes), key=lambda n: n.ts)),
        reaches=tuple(x for t in parts for x in t.reaches),
        gaps=gaps,
        runs=tuple(r for t in parts for r in t.runs),
    )


def _runs_table(incident: Incident, t: Timeline, tz: tzinfo) -> list[str]:
    out = [
        "| run | id | runbook | status | started | ended | operators | params (secrets masked) "
        "| integrity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in incident.runs:
        s = r.state
        operators = ", ".join(dict.fromkeys(x.operator for x in r.journal.records if x.operator))
        params = ", ".join(f"{k}={v}" for k, v in s.params.items()) or "(none)"
        out.append(
            f"| {run_tag(t, r.run_id) or 'r1'} | {cell(r.run_id)} | {cell(s.runbook)} | "
            f"{s.status} | {clock(s.started, tz)} | {clock(s.ended, tz)} | {cell(operators)} | "
            f"{cell(params)} | {cell(integrity(r))} |"
        )
    return out


def render_incident_md(incident: Incident, tz: tzinfo = UTC) -> str:
    """The incident's report as Markdown: its runs, then the one timeline."""
    t = incident_timeline(incident.runs)
    summaries = [
        f"- {run_tag(t, r.run_id) or 'r1'}: {cell(n.text)}"
        for r in incident.runs
        for n in build_timeline(r.journal.records).notes[-1:]
        if n.summary
    ]
    lines = [
        f"# Incident {cell(incident.id)}: {len(incident.runs)} runs",
        "",
        f"- **Operators** (labels as typed; facts per session below): "
        f"{cell(', '.join(incident.operators()))}",
        f"- **Hosts**: {cell(', '.join(incident.hosts()))}",
        f"- **Started**: {clock(t.started, tz)}  **Ended**: {clock(t.ended, tz)}  (times in {tz})",
        f"- **Integrity**: {cell(incident.integrity)}",
        "",
        "## Runs",
        "",
        *_runs_table(incident, t, tz),
        "",
        "**Summaries**:",
        "",
        *(summaries or ["(none: drp log note RUN --summary TEXT)"]),
        "",
        *md_sessions(
            t, tz, [c for r in incident.runs for c in command_lines(r)], "Sessions (who did what)"
        ),
    ]
    return "\n".join([*lines, *md_body(t, tz), *md_tail(incident.warnings, t, tz)]) + "\n"


def incident_dict(incident: Incident) -> dict[str, Any]:
    """The incident's report as plain data (what the JSON format prints)."""
    t = incident_timeline(incident.runs)
    return {
        "incident": incident.id,
        "runs": [{"tag": run_tag(t, r.run_id) or "r1", **run_facts(r)} for r in incident.runs],
        "operators": incident.operators(),
        "hosts": incident.hosts(),
        "started": iso(t.started),
        "ended": iso(t.ended),
        "integrity": {
            "ok": incident.verified,
            "journals": len(incident.runs),
            "failed": [r.run_id for r in incident.runs if not r.verified],
            "text": incident.integrity,
        },
        **timeline_dict(t),
        "warnings": incident.warnings,
    }


def incident_report(incident: Incident, fmt: str = "md", tz: tzinfo = UTC) -> str:
    """The post-incident report of all the incident's runs in ``md``, ``html`` or ``json``."""
    from drp.report.html import render_incident_html  # html imports this module

    return in_format(
        fmt,
        md=lambda: render_incident_md(incident, tz),
        data=lambda: incident_dict(incident),
        html=lambda: render_incident_html(incident, tz),
    )
