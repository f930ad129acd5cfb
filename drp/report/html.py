"""The report as one self-contained HTML file, with an inline SVG timeline chart.

No external resources and no JavaScript: inline CSS, an SVG with one lane per
row of the timeline (each run of a step, each rollback), bars placed by start and
duration and coloured by outcome; a step whose end was never recorded (its session
was killed) ends where its session's last record is. Waits
on humans longer than :data:`GAP_MIN` are collapsed into a fixed-width, labelled
gap so that a 20-hour gate does not squash the minutes of machine work.
Every value from the journal goes through :func:`html.escape`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from html import escape

from drp.report.incident import Incident, incident_dict, incident_timeline
from drp.report.model import merged
from drp.report.render import (
    clock,
    command_lines,
    integrity,
    path_lines,
    report_dict,
    run_tag,
    session_lines,
)
from drp.report.summary import RunData
from drp.report.timeline import Timeline, build_timeline, fmt_seconds

GAP_MIN = 600.0
GAP_PX = 60.0
LABEL_PX = 260.0
CHART_PX = 900.0
LANE_PX = 22.0
COLORS = {
    "ok": "#2e9d4f",
    "changed": "#2f6fd0",
    "skipped": "#9aa3ad",
    "failed": "#d13b3b",
    "unreachable": "#8b1f9c",
    "paused": "#e0a000",
    "rejected": "#b5651d",
    "interrupted": "#555555",
    "rolled-back": "#c76ad1",
    "rollback failed": "#7a0000",
    None: "#555555",
}
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d232a;background:#fff}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f3f5f7}.bad{color:#b00;font-weight:bold}.good{color:#17692f}
pre{background:#f6f8fa;padding:8px;overflow-x:auto}.legend span{margin-right:12px}
.sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


class _Scale:
    """Maps wall-clock times to x, collapsing long human waits and long stretches when
    nobody worked into fixed, labelled gaps."""

    def __init__(self, t: Timeline, start: datetime, end: datetime) -> None:
        self.start = start
        spans = [(w.start, w.end) for w in t.waits if w.seconds >= GAP_MIN]
        idle = [(g.start, g.end) for g in t.gaps if g.seconds >= GAP_MIN]
        self.gaps = merged([*spans, *idle])
        self.idle = {a for a, _ in idle}
        collapsed = sum((b - a).total_seconds() for a, b in self.gaps)
        active = max((end - start).total_seconds() - collapsed, 1e-3)
        self.px = (CHART_PX - GAP_PX * len(self.gaps)) / active

    def label(self, start: datetime, end: datetime) -> str:
        what = "nobody working" if start in self.idle else "human wait"
        return f"{what} {fmt_seconds((end - start).total_seconds())}"

    def x(self, when: datetime) -> float:
        seconds = (when - self.start).total_seconds()
        extra = 0.0
        for a, b in self.gaps:
            if when >= b:
                seconds -= (b - a).total_seconds()
                extra += GAP_PX
            elif when > a:
                seconds -= (when - a).total_seconds()
                extra += GAP_PX * (when - a).total_seconds() / max((b - a).total_seconds(), 1e-9)
        return LABEL_PX + max(seconds, 0.0) * self.px + extra


def chart(t: Timeline, tz: tzinfo = UTC) -> str:
    """The inline SVG timeline: one lane per (host, step)."""
    if t.started is None or t.ended is None or not t.rows:
        return "<p>No steps recorded.</p>"
    scale = _Scale(t, t.started, t.ended)
    height = LANE_PX * len(t.rows) + 40
    width = LABEL_PX + CHART_PX + 20
    parts = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        'aria-label="timeline of steps per host">'
    ]
    for a, b in scale.gaps:
        x0 = scale.x(a)
        parts.append(
            f'<rect class="gap" x="{x0:.1f}" y="0" width="{GAP_PX:.0f}" height="{height - 20:.0f}"'
            ' fill="#fff4d6" stroke="#e0a000" stroke-dasharray="4 3"/>'
            f'<text x="{x0 + GAP_PX / 2:.1f}" y="{height - 6:.0f}" font-size="11" '
            f'text-anchor="middle">{_e(scale.label(a, b))}</text>'
        )
    ends = {(s.first.run, s.number): s.ended for s in t.sessions}
    for i, row in enumerate(t.rows):
        y = 10 + i * LANE_PX
        name = f"rollback {row.step}" if row.kind == "rollback" else row.step
        parts.append(
            f'<text x="4" y="{y + 14:.0f}" font-size="12">{_e(row.host)}  {_e(name)}  '
            f"({_e(t.where(row.run, row.session))})</text>"
        )
        if row.start is None:
            continue
        end = row.end or ends.get((row.run, row.session)) or t.ended
        x0, x1 = scale.x(row.start), scale.x(end)
        color = COLORS.get(row.outcome, COLORS[None])
        tip = (
            f"{row.host} {name}: {row.label}, session {row.session}, "
            f"{clock(row.start, tz)} → {clock(end, tz)} ({fmt_seconds(row.duration)})"
        )
        parts.append(
            f'<rect class="bar" data-run="{_e(row.run)}" data-host="{_e(row.host)}" '
            f'data-step="{_e(row.step)}" '
            f'data-kind="{_e(row.kind)}" data-session="{row.session}" '
            f'data-outcome="{_e(row.outcome or "in doubt")}" x="{x0:.1f}" y="{y + 2:.0f}" '
            f'width="{max(x1 - x0, 3.0):.1f}" height="{LANE_PX - 6:.0f}" fill="{color}">'
            f"<title>{_e(tip)}</title></rect>"
        )
    parts.append(
        f'<text x="{LABEL_PX:.0f}" y="{height - 6:.0f}" font-size="11">{_e(clock(t.started, tz))}'
        f'</text><text x="{LABEL_PX + CHART_PX:.0f}" y="{height - 6:.0f}" font-size="11" '
        f'text-anchor="end">{_e(clock(t.ended, tz))}</text></svg>'
    )
    return "".join(parts)


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    hdr = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{hdr}</tr>{body}</table>"


def _header(run: RunData, t: Timeline, tz: tzinfo) -> str:
    d = report_dict(run)
    ok = run.verification.ok
    facts = [
        (
            "Runbook",
            f"{d['runbook']['name']} ({d['runbook']['path']}) sha256 {d['runbook']['sha256']}",
        ),
        ("Inventory", f"{d['inventory']['path']} sha256 {d['inventory']['sha256']}"),
        ("Operators (labels as typed)", ", ".join(d["operators"])),
        ("Summary", d["summary"] or "(none: drp log note RUN --summary TEXT)"),
        ("Hosts", ", ".join(d["hosts"])),
        ("Params (secrets masked)", ", ".join(f"{k}={v}" for k, v in d["params"].items())),
        ("Dry run", "yes" if d["dry_run"] else "no"),
        ("Incident", d["incident"] or "(none)"),
        ("drp version", d["drp_version"]),
        ("Started", clock(run.state.started, tz)),
        ("Ended", clock(run.state.ended, tz)),
        ("Status", d["status"]),
    ]
    rows = [[_e(k), _e(v)] for k, v in facts]
    rows.append(
        ["Integrity", f'<span class="{"good" if ok else "bad"}">{_e(integrity(run))}</span>']
    )
    return (
        f"<h1>Run {_e(run.run_id)}: {_e(run.state.runbook)} ({_e(d['status'])})</h1>"
        f"{_table(['', ''], rows)}"
    )


def _sessions(runs: Sequence[RunData], t: Timeline, tz: tzinfo) -> str:
    cmds = "\n".join(c for run in runs for c in command_lines(run))
    sessions = "".join(f'<li class="session">{_e(x)}</li>' for x in session_lines(t, tz))
    return f"<h2>Sessions</h2><ul>{sessions}</ul><h2>Command lines</h2><pre>{_e(cmds)}</pre>"


def _time_table(t: Timeline) -> str:
    def share(x: float) -> str:
        return f"{100 * x / t.total:.1f}%" if t.total > 0 else "-"

    return _table(
        ["", "duration", "share"],
        [
            ["elapsed", _e(fmt_seconds(t.total)), "100%"],
            ["waiting on humans", _e(fmt_seconds(t.human_wait)), share(t.human_wait)],
            ["machine time", _e(fmt_seconds(t.machine_time)), share(t.machine_time)],
            ["between sessions", _e(fmt_seconds(t.idle)), share(t.idle)],
        ],
    )


def _steps_table(t: Timeline, tz: tzinfo) -> str:
    head = ["session", "host", "step", "outcome", "attempts", "start", "end", "duration"]
    rows = [
        [
            _e(x)
            for x in (
                t.where(r.run, r.session),
                r.host,
                f"rollback of {r.step}" if r.kind == "rollback" else r.step,
                r.label,
                r.attempts,
                clock(r.start, tz),
                clock(r.end, tz),
                fmt_seconds(r.duration),
            )
        ]
        for r in t.rows
    ]
    return _table(head, rows, "step-row")


def _failures_table(t: Timeline, tz: tzinfo) -> str:
    if not t.failures:
        return "<p>None.</p>"
    head = ["time", "host", "step", "attempt", "phase", "exit", "stderr"]
    rows = [
        [
            *(_e(x) for x in (clock(f.ts, tz), f.host, f.step, f.attempt, f.phase, f.exit_code)),
            f"<pre>{_e(f.excerpt)}</pre>",
        ]
        for f in t.failures
    ]
    return _table(head, rows)


def _approvals_table(t: Timeline, tz: tzinfo) -> str:
    if not t.decisions:
        return "<p>None.</p>"
    head = ["time", "host", "step", "gate", "decision", "by", "waited", "note"]
    rows = [
        [
            _e(x)
            for x in (
                clock(d.ts, tz),
                d.host,
                d.step,
                d.kind,
                d.decision,
                d.by,
                fmt_seconds(d.waited),
                d.note,
            )
        ]
        for d in t.decisions
    ]
    return _table(head, rows)


def _sections(t: Timeline, tz: tzinfo, sessions: str) -> str:
    miles = _table(
        ["time", "host", "step", "event"],
        [[_e(clock(m.ts, tz)), _e(m.host), _e(m.step), _e(m.text)] for m in t.milestones],
        "milestone",
    )
    legend = "".join(
        f'<span><i class="sw" style="background:{c}"></i>{_e(k)}</span>'
        for k, c in COLORS.items()
        if k is not None
    )
    return (
        f"<h2>Time</h2>{_time_table(t)}<h2>Timeline chart ({_e(tz)})</h2>{chart(t, tz)}"
        f'<p class="legend">{legend}</p>{sessions}<h2>Milestones ({_e(tz)})</h2>{miles}'
        f"<h2>Paths to the hosts (SSH, fallback, console)</h2>{_paths(t)}"
        f"<h2>Steps and rollbacks</h2>{_steps_table(t, tz)}<h2>Failures and retries</h2>"
        f"{_failures_table(t, tz)}<h2>Decisions (gates, confirmations, steps in doubt)</h2>"
        f"{_approvals_table(t, tz)}<h2>Notes</h2>{_notes_table(t, tz)}"
    )


def _paths(t: Timeline) -> str:
    lines = "".join(f'<li class="path">{_e(x)}</li>' for x in path_lines(t))
    return f"<ul>{lines}</ul>" if lines else "<p>None.</p>"


def _notes_table(t: Timeline, tz: tzinfo) -> str:
    if not t.notes:
        return "<p>None.</p>"
    rows = [
        [_e(x) for x in (clock(n.ts, tz), n.by, n.step or "", n.text, "yes" if n.summary else "")]
        for n in t.notes
    ]
    return _table(["time", "by", "step", "note", "summary"], rows, "note")


def render_html(run: RunData, tz: tzinfo = UTC) -> str:
    """The whole report as one HTML document."""
    t = build_timeline(run.journal.records)
    warnings = "".join(f"<li>{_e(w)}</li>" for w in run.journal.warnings)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>drp report {_e(run.run_id)}</title><style>{CSS}</style></head><body>"
        f"{_header(run, t, tz)}{_sections(t, tz, _sessions([run], t, tz))}"
        + (f"<h2>Journal warnings</h2><ul>{warnings}</ul>" if warnings else "")
        + "</body></html>\n"
    )


def _incident_header(incident: Incident, t: Timeline, tz: tzinfo) -> str:
    d = incident_dict(incident)
    ok = incident.verified
    facts = [
        ("Operators (labels as typed)", ", ".join(d["operators"])),
        ("Hosts", ", ".join(d["hosts"])),
        ("Started", clock(t.started, tz)),
        ("Ended", clock(t.ended, tz)),
    ]
    rows = [[_e(k), _e(v)] for k, v in facts]
    rows.append(
        ["Integrity", f'<span class="{"good" if ok else "bad"}">{_e(incident.integrity)}</span>']
    )
    runs = [
        [
            _e(x)
            for x in (
                run_tag(t, r.run_id) or "r1",
                r.run_id,
                r.state.runbook,
                r.state.status,
                clock(r.state.started, tz),
                clock(r.state.ended, tz),
                ", ".join(f"{k}={v}" for k, v in r.state.params.items()),
                build_timeline(r.journal.records).summary,
                integrity(r),
            )
        ]
        for r in incident.runs
    ]
    head = ["run", "id", "runbook", "status", "started", "ended", "params (secrets masked)"]
    return (
        f"<h1>Incident {_e(incident.id)}: {len(incident.runs)} runs</h1>"
        f"{_table(['', ''], rows)}<h2>Runs</h2>"
        f"{_table([*head, 'summary', 'integrity'], runs, 'run-row')}"
    )


def render_incident_html(incident: Incident, tz: tzinfo = UTC) -> str:
    """The report of all the incident's runs as one HTML document."""
    t = incident_timeline(incident.runs)
    warnings = "".join(f"<li>{_e(w)}</li>" for w in incident.warnings)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>drp incident report {_e(incident.id)}</title><style>{CSS}</style></head><body>"
        f"{_incident_header(incident, t, tz)}"
        f"{_sections(t, tz, _sessions(incident.runs, t, tz))}"
        + (f"<h2>Journal warnings</h2><ul>{warnings}</ul>" if warnings else "")
        + "</body></html>\n"
    )
