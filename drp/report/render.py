"""The post-incident report of a run, in Markdown, JSON or self-contained HTML.

It reads like the timelines of the outages drp was born from: a header (who ran
which runbook, at which sha, where, with which masked params and command lines;
for each session the ``--operator`` label beside the facts: OS user, machine, key),
the operator's summary and notes, every session and how it ended, the milestones
with full ISO 8601 times (seconds, time zone), the split between time spent
waiting on humans and machine time, every step run and every rollback, every
failure and retry with its exit code and stderr, who decided what at which gate
(steps in doubt included), and whether the chain and its anchors verified.

Journal content is untrusted: Markdown table cells are escaped, and the HTML
renderer (:mod:`drp.report.html`) escapes every value.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from typing import Any

import drp
from drp.errors import InputError
from drp.report.summary import RunData
from drp.report.timeline import Timeline, build_timeline, fmt_seconds
from drp.terminal import visible

FORMATS = ("md", "html", "json")


def clock(when: datetime | None, tz: tzinfo = UTC) -> str:
    """``2026-11-21T23:41:12+00:00`` in ``tz``: ISO 8601, seconds, the zone stated."""
    return when.astimezone(tz).isoformat(timespec="seconds") if when is not None else "-"


def iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


def integrity(run: RunData) -> str:
    v, anchors = run.verification, run.anchors
    if not v.ok:
        return f"HASH CHAIN BROKEN: {v}"
    if anchors is not None and anchors.problems:
        return "WITNESS DISAGREES: " + "; ".join(anchors.problems)
    torn = " (a torn last line was ignored)" if run.journal.torn is not None else ""
    said = "; ".join(anchors.notes) if anchors is not None else "no witness read"
    return f"hash chain verified ({v.records} records){torn}; {said}"


def session_lines(t: Timeline, tz: tzinfo = UTC) -> list[str]:
    """One line per session: when, who (label and facts), how it ended."""
    out = []
    for s in t.sessions:
        ident = s.identity
        facts = (
            f"OS user {ident.get('os_user', '?')} on {ident.get('host', '?')}"
            + (f", key {ident['key_fingerprint']}" if ident.get("key_fingerprint") else "")
            if ident
            else "no identity recorded"
        )
        out.append(
            f"session {s.number} ({s.kind}) {clock(s.started, tz)} → {clock(s.ended, tz)}: "
            f"operator {s.operator or '?'} ({facts}); ended {s.outcome}"
        )
    return out


def command_lines(run: RunData) -> list[str]:
    """The command line of the start and of every resume, in order."""
    lines = [
        str(r.data["command_line"])
        for r in run.journal.records
        if r.type in ("run.started", "run.resumed") and r.data.get("command_line")
    ]
    return lines


def _share(part: float, total: float) -> str:
    return f"{100 * part / total:.1f}%" if total > 0 else "-"


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _fence(text: str) -> str:
    return text.replace("```", "'''")


def _md_header(run: RunData, t: Timeline, tz: tzinfo) -> list[str]:
    s = run.state
    operators = dict.fromkeys(r.operator for r in run.journal.records if r.operator)
    params = ", ".join(f"{k}={v}" for k, v in s.params.items()) or "(none)"
    hosts = dict.fromkeys([*s.targets, *s.hosts])
    return [
        f"# Run {_cell(run.run_id)}: {_cell(s.runbook or '?')} ({s.status})",
        "",
        f"- **Runbook**: {_cell(s.runbook)} `{_cell(s.runbook_path)}` sha256 "
        f"`{_cell(s.runbook_sha256)}`",
        f"- **Inventory**: `{_cell(s.inventory)}` sha256 `{_cell(s.inventory_sha256)}`",
        f"- **Operators** (labels as typed; facts per session below): "
        f"{_cell(', '.join(operators))}",
        f"- **Hosts**: {_cell(', '.join(hosts))}",
        f"- **Params** (secrets masked): {_cell(params)}",
        f"- **Dry run**: {'yes' if s.dry_run else 'no'}",
        f"- **drp version**: {_cell(s.drp_version or '?')} (report by drp {drp.__version__})",
        f"- **Started**: {clock(s.started, tz)}  **Ended**: {clock(s.ended, tz)}  (times in {tz})",
        f"- **Status**: {s.status}",
        f"- **Integrity**: {_cell(integrity(run))}",
        "",
        f"**Summary**: {_cell(t.summary) or '(none: drp log note RUN --summary TEXT)'}",
        "",
        "## Sessions",
        "",
        *(f"- {_cell(line)}" for line in session_lines(t, tz)),
        "",
        "Command lines:",
        "",
        "```",
        *(_fence(c) for c in command_lines(run)),
        "```",
    ]


def _md_body(t: Timeline, tz: tzinfo) -> list[str]:
    out = [
        "",
        "## Time",
        "",
        f"- Elapsed: {fmt_seconds(t.total)} ({t.total:.1f}s)",
        f"- Waiting on humans: {fmt_seconds(t.human_wait)} ({t.human_wait:.1f}s, "
        f"{_share(t.human_wait, t.total)})",
        f"- Machine time: {fmt_seconds(t.machine_time)} ({t.machine_time:.1f}s, "
        f"{_share(t.machine_time, t.total)})",
        f"- Between sessions (drp not running, nobody asked): {fmt_seconds(t.idle)} "
        f"({t.idle:.1f}s, {_share(t.idle, t.total)})",
        "",
        f"## Timeline ({tz})",
        "",
        "```",
    ]
    width = max((len(m.host or "") for m in t.milestones), default=0)
    swidth = max((len(m.step or "") for m in t.milestones), default=0)
    for m in t.milestones:
        line = f"{clock(m.ts, tz)}  {(m.host or '').ljust(width)}  {(m.step or '').ljust(swidth)}"
        out.append(_fence(f"{line}  {m.text}".replace("\n", " ")))
    out += [
        "```",
        "",
        "## Steps",
        "",
        "| session | host | step | outcome | attempts | start | end | duration "
        "| waited on humans |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in t.rows:
        step = f"rollback of {r.step}" if r.kind == "rollback" else r.step
        out.append(
            f"| {r.session} | {_cell(r.host)} | {_cell(step)} | {_cell(r.label)} | "
            f"{r.attempts} | {clock(r.start, tz)} | {clock(r.end, tz)} | "
            f"{fmt_seconds(r.duration)} | {fmt_seconds(r.waited) if r.waited else ''} |"
        )
    out += ["", "## Rollbacks", ""]
    out += [
        f"- {clock(r.end or r.start, tz)} {_cell(r.host)} rollback of {_cell(r.step)}: "
        f"{_cell(r.outcome or 'no end recorded')} (session {r.session})"
        for r in t.rollbacks
    ] or ["None."]
    out += ["", "## Notes", ""]
    out += [
        f"- {clock(n.ts, tz)} {_cell(n.by)}{' on ' + _cell(n.step) if n.step else ''}: "
        f"{_cell(n.text)}"
        for n in t.notes
    ] or ["None."]
    return out


def _md_tail(run: RunData, t: Timeline, tz: tzinfo) -> list[str]:
    out = ["", "## Failures and retries", ""]
    if not t.failures:
        out.append("None.")
    for f in t.failures:
        code = f"exit {f.exit_code}" if f.exit_code is not None else "no exit code"
        attempt = f"attempt {f.attempt}" if f.attempt is not None else f.phase
        out.append(
            f"- {clock(f.ts, tz)} {_cell(f.host)} {_cell(f.step)}: {attempt} "
            f"({_cell(f.phase)}) {_cell(f.outcome)}, {code}"
        )
        if f.excerpt:
            out += ["", "  ```", *(f"  {_fence(x)}" for x in f.excerpt.splitlines()), "  ```"]
    out += ["", "## Decisions (gates, confirmations, steps in doubt)", ""]
    if not t.decisions:
        out.append("None.")
    for d in t.decisions:
        waited = f" after waiting {fmt_seconds(d.waited)}" if d.waited is not None else ""
        note = f": {_cell(d.note)}" if d.note else ""
        out.append(
            f"- {clock(d.ts, tz)} {_cell(d.host)} {_cell(d.step)} ({d.kind}) {d.decision} by "
            f"**{_cell(d.by)}**{waited}{note}"
        )
    if run.journal.warnings:
        out += ["", "## Journal warnings", "", *(f"- {_cell(w)}" for w in run.journal.warnings)]
    return out


def render_md(run: RunData, tz: tzinfo = UTC) -> str:
    """The report as Markdown."""
    t = build_timeline(run.journal.records)
    return "\n".join([*_md_header(run, t, tz), *_md_body(t, tz), *_md_tail(run, t, tz)]) + "\n"


def _plain(item: Any) -> dict[str, Any]:
    """A timeline dataclass as JSON-ready data (datetimes as ISO 8601 UTC)."""
    out = {k: iso(v) if isinstance(v, datetime) else v for k, v in vars(item).items()}
    for name in ("duration", "elapsed"):
        if hasattr(item, name) and name not in out:
            out[name] = getattr(item, name)
    return out


def report_dict(run: RunData) -> dict[str, Any]:
    """The report as plain data (what the JSON format prints)."""
    s, t, v = run.state, build_timeline(run.journal.records), run.verification
    return {
        "run": run.run_id,
        "status": str(s.status),
        "runbook": {"name": s.runbook, "path": s.runbook_path, "sha256": s.runbook_sha256},
        "inventory": {"path": s.inventory, "sha256": s.inventory_sha256},
        "operators": list(dict.fromkeys(r.operator for r in run.journal.records if r.operator)),
        "hosts": list(dict.fromkeys([*s.targets, *s.hosts])),
        "params": dict(s.params),
        "dry_run": s.dry_run,
        "drp_version": s.drp_version,
        "command_lines": command_lines(run),
        "started": iso(s.started),
        "ended": iso(s.ended),
        "time": {
            "total": t.total,
            "human_wait": t.human_wait,
            "machine": t.machine_time,
            "idle": t.idle,
        },
        "integrity": {
            "ok": run.verified,
            "chain_ok": v.ok,
            "records": v.records,
            "line": v.line,
            "seq": v.seq,
            "problem": v.problem,
            "witnesses": list(run.anchors.problems + run.anchors.notes) if run.anchors else [],
        },
        "summary": t.summary,
        "sessions": [
            {
                "number": x.number,
                "kind": x.kind,
                "started": iso(x.started),
                "ended": iso(x.ended),
                "outcome": x.outcome,
                "operator": x.operator,
                "identity": dict(x.identity),
                "signing": dict(x.signing),
            }
            for x in t.sessions
        ],
        "notes": [_plain(n) for n in t.notes],
        "rollbacks": [_plain(r) for r in t.rollbacks],
        "milestones": [_plain(m) for m in t.milestones],
        "steps": [_plain(r) for r in t.rows],
        "failures": [_plain(f) for f in t.failures],
        "approvals": [_plain(d) for d in t.decisions],
        "warnings": list(run.journal.warnings),
    }


def report(run: RunData, fmt: str = "md", tz: tzinfo = UTC) -> str:
    """The post-incident report of ``run`` in ``md``, ``html`` or ``json``."""
    if fmt == "md":  # text to read in a terminal too: host output shown, not obeyed
        return visible(render_md(run, tz))
    if fmt == "json":
        return json.dumps(report_dict(run), indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "html":
        from drp.report.html import render_html  # html imports this module

        return render_html(run, tz)
    raise InputError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")
