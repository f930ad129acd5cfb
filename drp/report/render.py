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
from collections.abc import Callable, Sequence
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
            f"session {t.where(s.first.run, s.number)} ({s.kind}) {clock(s.started, tz)} → "
            f"{clock(s.ended, tz)}: "
            f"operator {s.operator or '?'} ({facts}); ended {s.outcome}"
        )
    return out


def path_lines(t: Timeline) -> list[str]:
    """One line per host and path per session: how drp reached it, and how many steps ran."""
    return [
        f"{x.host}: {x.via}{' ' + x.address if x.address else ''} in session "
        f"{t.where(x.run, x.session)}, {x.steps} step{'' if x.steps == 1 else 's'}"
        for x in t.reaches
    ]


def run_tag(t: Timeline, run: str) -> str:
    """``r2`` for the second run of an incident; empty for a single run."""
    return f"r{t.runs.index(run) + 1}" if len(t.runs) > 1 and run in t.runs else ""


def command_lines(run: RunData) -> list[str]:
    """The command line of the start and of every resume, in order."""
    lines = [
        str(r.data["command_line"])
        for r in run.journal.records
        if r.type in ("run.started", "run.resumed") and r.data.get("command_line")
    ]
    return lines


def share(part: float, total: float) -> str:
    return f"{100 * part / total:.1f}%" if total > 0 else "-"


def cell(value: object) -> str:
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
        f"# Run {cell(run.run_id)}: {cell(s.runbook or '?')} ({s.status})",
        "",
        f"- **Runbook**: {cell(s.runbook)} `{cell(s.runbook_path)}` sha256 "
        f"`{cell(s.runbook_sha256)}`",
        f"- **Inventory**: `{cell(s.inventory)}` sha256 `{cell(s.inventory_sha256)}`",
        f"- **Operators** (labels as typed; facts per session below): {cell(', '.join(operators))}",
        f"- **Hosts**: {cell(', '.join(hosts))}",
        f"- **Params** (secrets masked): {cell(params)}",
        f"- **Dry run**: {'yes' if s.dry_run else 'no'}",
        f"- **Incident**: {cell(s.incident) or '(none)'}",
        f"- **drp version**: {cell(s.drp_version or '?')} (report by drp {drp.__version__})",
        f"- **Started**: {clock(s.started, tz)}  **Ended**: {clock(s.ended, tz)}  (times in {tz})",
        f"- **Status**: {s.status}",
        f"- **Integrity**: {cell(integrity(run))}",
        "",
        f"**Summary**: {cell(t.summary) or '(none: drp log note RUN --summary TEXT)'}",
        "",
        *md_sessions(t, tz, command_lines(run)),
    ]


def md_sessions(
    t: Timeline, tz: tzinfo, commands: Sequence[str], title: str = "Sessions"
) -> list[str]:
    """The sessions, one line each, then the command lines that started them."""
    return [
        f"## {title}",
        "",
        *(f"- {cell(line)}" for line in session_lines(t, tz)),
        "",
        "Command lines:",
        "",
        "```",
        *(_fence(c) for c in commands),
        "```",
    ]


def md_body(t: Timeline, tz: tzinfo) -> list[str]:
    out = [
        "",
        "## Time",
        "",
        f"- Elapsed: {fmt_seconds(t.total)} ({t.total:.1f}s)",
        f"- Waiting on humans: {fmt_seconds(t.human_wait)} ({t.human_wait:.1f}s, "
        f"{share(t.human_wait, t.total)})",
        f"- Machine time: {fmt_seconds(t.machine_time)} ({t.machine_time:.1f}s, "
        f"{share(t.machine_time, t.total)})",
        f"- Between sessions (drp not running, nobody asked): {fmt_seconds(t.idle)} "
        f"({t.idle:.1f}s, {share(t.idle, t.total)})",
        "",
        f"## Timeline ({tz})",
        "",
        "```",
    ]
    width = max((len(m.host or "") for m in t.milestones), default=0)
    swidth = max((len(m.step or "") for m in t.milestones), default=0)
    for m in t.milestones:
        tag = f"{run_tag(t, m.run):<4}" if len(t.runs) > 1 else ""
        line = (
            f"{clock(m.ts, tz)}  {tag}{(m.host or '').ljust(width)}  {(m.step or '').ljust(swidth)}"
        )
        out.append(_fence(f"{line}  {m.text}".replace("\n", " ")))
    out += [
        "```",
        "",
        "## Paths to the hosts (SSH, fallback, console)",
        "",
        *([f"- {cell(x)}" for x in path_lines(t)] or ["None."]),
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
            f"| {t.where(r.run, r.session)} | {cell(r.host)} | {cell(step)} | {cell(r.label)} | "
            f"{r.attempts} | {clock(r.start, tz)} | {clock(r.end, tz)} | "
            f"{fmt_seconds(r.duration)} | {fmt_seconds(r.waited) if r.waited else ''} |"
        )
    out += ["", "## Rollbacks", ""]
    out += [
        f"- {clock(r.end or r.start, tz)} {cell(r.host)} rollback of {cell(r.step)}: "
        f"{cell(r.outcome or 'no end recorded')} (session {t.where(r.run, r.session)})"
        for r in t.rollbacks
    ] or ["None."]
    out += ["", "## Notes", ""]
    out += [
        f"- {clock(n.ts, tz)} {cell(n.by)}{' on ' + cell(n.step) if n.step else ''}: {cell(n.text)}"
        for n in t.notes
    ] or ["None."]
    return out


def md_tail(warnings: Sequence[str], t: Timeline, tz: tzinfo) -> list[str]:
    out = ["", "## Failures and retries", ""]
    if not t.failures:
        out.append("None.")
    for f in t.failures:
        code = f"exit {f.exit_code}" if f.exit_code is not None else "no exit code"
        attempt = f"attempt {f.attempt}" if f.attempt is not None else f.phase
        out.append(
            f"- {clock(f.ts, tz)} {cell(f.host)} {cell(f.step)}: {attempt} "
            f"({cell(f.phase)}) {cell(f.outcome)}, {code}"
        )
        if f.excerpt:
            out += ["", "  ```", *(f"  {_fence(x)}" for x in f.excerpt.splitlines()), "  ```"]
    out += ["", "## Decisions (gates, confirmations, steps in doubt)", ""]
    if not t.decisions:
        out.append("None.")
    for d in t.decisions:
        waited = f" after waiting {fmt_seconds(d.waited)}" if d.waited is not None else ""
        note = f": {cell(d.note)}" if d.note else ""
        out.append(
            f"- {clock(d.ts, tz)} {cell(d.host)} {cell(d.step)} ({d.kind}) {d.decision} by "
            f"**{cell(d.by)}**{waited}{note}"
        )
    if warnings:
        out += ["", "## Journal warnings", "", *(f"- {cell(w)}" for w in warnings)]
    return out


def render_md(run: RunData, tz: tzinfo = UTC) -> str:
    """The report as Markdown."""
    t = build_timeline(run.journal.records)
    tail = md_tail(run.journal.warnings, t, tz)
    return "\n".join([*_md_header(run, t, tz), *md_body(t, tz), *tail]) + "\n"


def _plain(item: Any) -> dict[str, Any]:
    """A timeline dataclass as JSON-ready data (datetimes as ISO 8601 UTC)."""
    out = {k: iso(v) if isinstance(v, datetime) else v for k, v in vars(item).items()}
    for name in ("duration", "elapsed"):
        if hasattr(item, name) and name not in out:
            out[name] = getattr(item, name)
    return out


def run_facts(run: RunData) -> dict[str, Any]:
    """What a report says about one run before its timeline (the JSON header)."""
    s, v = run.state, run.verification
    return {
        "run": run.run_id,
        "status": str(s.status),
        "incident": s.incident or None,
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
        "integrity": {
            "ok": run.verified,
            "chain_ok": v.ok,
            "records": v.records,
            "line": v.line,
            "seq": v.seq,
            "problem": v.problem,
            "witnesses": list(run.anchors.problems + run.anchors.notes) if run.anchors else [],
        },
    }


def timeline_dict(t: Timeline) -> dict[str, Any]:
    """A timeline as plain data: time split, sessions, paths, steps, failures, approvals."""
    return {
        "time": {
            "total": t.total,
            "human_wait": t.human_wait,
            "machine": t.machine_time,
            "idle": t.idle,
        },
        "summary": t.summary,
        "sessions": [
            {
                "run": x.first.run,
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
        "paths": [_plain(x) for x in t.reaches],
        "gaps": [{**_plain(g), "seconds": g.seconds} for g in t.gaps],
        "notes": [_plain(n) for n in t.notes],
        "rollbacks": [_plain(r) for r in t.rollbacks],
        "milestones": [_plain(m) for m in t.milestones],
        "steps": [_plain(r) for r in t.rows],
        "failures": [_plain(f) for f in t.failures],
        "approvals": [_plain(d) for d in t.decisions],
    }


def report_dict(run: RunData) -> dict[str, Any]:
    """The report as plain data (what the JSON format prints)."""
    t = build_timeline(run.journal.records)
    return {**run_facts(run), **timeline_dict(t), "warnings": list(run.journal.warnings)}


def report(run: RunData, fmt: str = "md", tz: tzinfo = UTC) -> str:
    """The post-incident report of ``run`` in ``md``, ``html`` or ``json``."""
    from drp.report.html import render_html  # html imports this module

    return in_format(
        fmt,
        md=lambda: render_md(run, tz),
        data=lambda: report_dict(run),
        html=lambda: render_html(run, tz),
    )


def in_format(
    fmt: str, *, md: Callable[[], str], data: Callable[[], object], html: Callable[[], str]
) -> str:
    """One report in ``fmt``: Markdown (made safe to read in a terminal: host output
    is shown, not obeyed), JSON of ``data``, or HTML; an unknown format is refused."""
    if fmt == "md":
        return visible(md())
    if fmt == "json":
        return json.dumps(data(), indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "html":
        return html()
    raise InputError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")
