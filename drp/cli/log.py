"""``drp log``: review the audit log of past runs (list, show, report, verify, export).

Only this module prints; the work is done by :mod:`drp.journal` and
:mod:`drp.report`. ``DrpError`` propagates to the app's one error boundary.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from drp.cli.console import make_console
from drp.errors import ExitCode, InputError
from drp.journal import list_run_ids, read_journal, resolve_run, state_dir, verify
from drp.journal.paths import journal_path, run_dir
from drp.journal.record import Record, format_ts
from drp.report import EXPORT_FORMATS, FORMATS, RunFilter, export, list_runs, load_run, report
from drp.report.summary import RunData
from drp.report.timeline import build_timeline, fmt_seconds
from drp.results import RunStatus
from drp.terminal import visible

app = typer.Typer(
    name="log",
    help="Review the audit log: list runs, show their events, write reports, verify, export.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", envvar="DRP_STATE_DIR", help="Where journals live.", show_default=False
    ),
]
RunArg = Annotated[str, typer.Argument(help="Run id, unique prefix of one, or 'latest'.")]


def _console() -> Console:
    return make_console(soft_wrap=True)


def _when(text: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """A ``--since``/``--until`` value (UTC unless it says otherwise).

    A bare date given as ``--until`` means the end of that day: ``--until 2026-11-21``
    keeps the runs started on the 21st.
    """
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{name}: not a date/time: {text!r} (e.g. 2026-11-21 or 2026-11-21T23:00)"
        ) from None
    if end_of_day and len(text.strip()) == len("2026-11-21"):
        when += timedelta(days=1, microseconds=-1)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _short(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if when else "-"


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(visible(text), nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot write {output}: {err.strerror}") from None
    _console().print(f"wrote {escape(str(output))}")


@app.command("list")
def list_cmd(
    *,
    state: StateDir = None,
    runbook: Annotated[str | None, typer.Option(help="Only runs of this runbook.")] = None,
    host: Annotated[str | None, typer.Option(help="Only runs that touched this host.")] = None,
    status: Annotated[RunStatus | None, typer.Option(help="Only runs with this status.")] = None,
    operator: Annotated[str | None, typer.Option(help="Only runs by this operator.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Started at or after (ISO date/time, UTC).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Started at or before (ISO date/time, UTC).")
    ] = None,
) -> None:
    """List runs, newest first.

    Example: drp log list --runbook disk-replace --host db1 --since 2026-11-01
    """
    filters = RunFilter(
        runbook,
        host,
        status,
        operator,
        _when(since, "--since"),
        _when(until, "--until", end_of_day=True),
    )
    runs = list_runs(state_dir(state), filters)
    table = Table(
        "run", "runbook", "started (UTC)", "ended", "status", "operators", "hosts", "steps", "chain"
    )
    for s in runs:
        counts = " ".join(f"{k}:{v}" for k, v in s.counts.items())
        table.add_row(
            *(
                escape(x)
                for x in (
                    s.run_id,
                    s.runbook,
                    _short(s.started),
                    _short(s.ended),
                    str(s.status),
                    ", ".join(s.operators),
                    ", ".join(s.hosts),
                    counts,
                    "ok" if s.verified else "BROKEN",
                )
            )
        )
    console = _console()
    if not runs:
        console.print("no runs found")
        return
    console.print(table)


@app.command("show")
def show_cmd(
    run: RunArg,
    state: StateDir = None,
    step: Annotated[str | None, typer.Option(help="Only this step.")] = None,
    output: Annotated[bool, typer.Option("--output", help="Show captured stdout/stderr.")] = False,
    events: Annotated[bool, typer.Option("--events", help="Every journal record.")] = False,
) -> None:
    """Show a run: each step per host with outcome, attempts, times and who approved.

    Example: drp log show 20261121-2341 --step fail-and-remove --output
    """
    data = load_run(state_dir(state), run)
    console = _console()
    records = [r for r in data.journal.records if step is None or r.step == step]
    table = _events_table(records) if events else _steps_table(data, step)
    console.print(table)
    if output:
        for r in records:
            for stream in ("stdout", "stderr"):
                text = r.data.get(stream)
                if isinstance(text, str) and text:
                    console.rule(
                        escape(
                            f"seq {r.seq} {r.host or ''} {r.step or ''} "
                            f"attempt {r.attempt or '?'} {stream}"
                        )
                    )
                    console.print(visible(text), markup=False)
    for warning in data.journal.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")


def _steps_table(data: RunData, step: str | None) -> Table:
    timeline = build_timeline(data.journal.records)
    table = Table(
        "host",
        "step",
        "kind",
        "outcome",
        "tries",
        "started (UTC)",
        "took",
        "notes",
        title=f"run {data.state.run_id}: {data.state.runbook} ({data.state.status})",
        title_justify="left",
    )
    for row in timeline.rows:
        if step is not None and row.step != step:
            continue
        notes = []
        if row.waited:
            notes.append(f"waited {fmt_seconds(row.waited)} for a person")
        if row.approved_by:
            notes.append(f"approved by {row.approved_by}")
        started = format_ts(row.start)[:-8].replace("T", " ") if row.start else ""
        table.add_row(
            *(
                escape(x)
                for x in (
                    row.host,
                    row.step,
                    row.kind,
                    row.outcome or "(not finished)",
                    str(row.attempts or ""),
                    started,
                    fmt_seconds(row.duration),
                    "; ".join(notes),
                )
            )
        )
    return table


def _events_table(records: list[Record]) -> Table:
    table = Table(
        "seq", "time (UTC)", "type", "host", "step", "try", "outcome", "exit", "took", "message"
    )
    for r in records:
        table.add_row(
            *(
                escape(x)
                for x in (
                    str(r.seq),
                    format_ts(r.ts)[:-5].replace("T", " "),
                    r.type,
                    r.host or "",
                    r.step or "",
                    str(r.attempt or ""),
                    r.outcome or "",
                    "" if r.exit_code is None else str(r.exit_code),
                    fmt_seconds(r.duration) if r.duration is not None else "",
                    r.message,
                )
            )
        )
    return table


@app.command("report")
def report_cmd(
    run: RunArg,
    state: StateDir = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, html or json.")] = "md",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE.")] = None,
) -> None:
    """Write the post-incident report of a run (timeline, waits, failures, approvals).

    Example: drp log report latest --format html --output incident.html
    """
    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    _write(report(load_run(state_dir(state), run), fmt), output)


@app.command("verify")
def verify_cmd(
    run: Annotated[str | None, typer.Argument(help="Run id, prefix, or 'latest'.")] = None,
    state: StateDir = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Verify every run.")] = False,
) -> None:
    """Check a journal's hash chain: any edited, removed or reordered record is named.

    Example: drp log verify 20261121-2341   (or: drp log verify --all)
    """
    root = state_dir(state)
    if (run is None) == (not all_runs):
        raise InputError("give a RUN or --all (not both)")
    ids = list_run_ids(root) if all_runs else [resolve_run(root, run or "")]
    console, failed = _console(), 0
    for run_id in ids:
        journal = read_journal(journal_path(run_dir(root, run_id)))
        result = verify(journal)
        failed += not result.ok
        mark = "[green]ok[/]" if result.ok else "[red]FAILED[/]"
        console.print(f"{mark} {escape(run_id)}: {escape(str(result))}")
        for warning in result.warnings:
            console.print(f"  [yellow]warning:[/] {escape(warning)}")
    if failed:
        raise typer.Exit(int(ExitCode.JOURNAL))


@app.command("export")
def export_cmd(
    runs: Annotated[list[str] | None, typer.Argument(help="Runs (default: all).")] = None,
    state: StateDir = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE.")] = None,
) -> None:
    """Export journal records as JSON lines (as stored) or CSV.

    Example: drp log export --format csv --output runs.csv
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(
            f"--format: unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})"
        )
    root = state_dir(state)
    ids = [resolve_run(root, r) for r in runs] if runs else list_run_ids(root)
    journals = [read_journal(journal_path(run_dir(root, i))) for i in ids]
    _write(export(journals, fmt), output)
