"""``drp log``: review the audit log of past runs (list, show, report, verify, export).

Only this module prints; the work is done by :mod:`drp.journal` and
:mod:`drp.report`. ``DrpError`` propagates to the app's one error boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from drp.cli.anchoring import SignKeyOption
from drp.cli.common import echo_json, listing_console
from drp.cli.run import FormatOption
from drp.cli.store import StoreArg, read_store
from drp.errors import ExitCode, InputError
from drp.journal import list_run_ids, read_journal, resolve_run, state_dir
from drp.journal.incident import validate_incident
from drp.journal.paths import journal_path, run_dir
from drp.journal.record import Record
from drp.report import EXPORT_FORMATS, FORMATS, RunFilter, export, list_runs, load_run, report
from drp.report.incident import incident_report, load_incident
from drp.report.model import StepRow
from drp.report.render import session_lines
from drp.report.summary import RunData, RunSummary, summarize, summary_json
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
    return listing_console()


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
    return when.astimezone(UTC).isoformat(timespec="seconds") if when else "-"


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
    incident: Annotated[
        str | None, typer.Option(help="Only runs tagged with this incident id.")
    ] = None,
    fmt: str = FormatOption,
    store: StoreArg = None,
) -> None:
    """List runs, newest first (by the time they started); with --store, the whole team's.

    Example: drp log list --runbook disk-replace --host db1 --since 2026-11-01

    Example: drp log list --incident 2019-09-disk

    Example: drp log list --store "$DRP_STORE"
    """
    filters = RunFilter(
        runbook,
        host,
        status,
        operator,
        _when(since, "--since"),
        _when(until, "--until", end_of_day=True),
        validate_incident(incident) if incident is not None else None,
    )
    runs = _store_runs(store, filters) if store else list_runs(state_dir(state), filters)
    if fmt == "json":
        echo_json([summary_json(s) for s in runs])
        return
    console = listing_console()
    if not runs:
        console.print("no runs found")
        return
    rows = [
        (
            s.run_id,
            s.runbook,
            _short(s.started),
            _short(s.ended),
            str(s.status),
            s.incident,
            ", ".join(s.operators),
            ", ".join(s.hosts),
            " ".join(f"{k}:{v}" for k, v in s.counts.items()),
            "ok" if s.verified else "BROKEN",
        )
        for s in runs
    ]
    if len(rows) > LONG_TABLE:
        _print_table(console, "", LIST_COLUMNS, rows)
        return
    table = Table(*LIST_COLUMNS[1:])
    for column in table.columns:  # narrow terminal: the other columns wrap, never end in "…"
        column.overflow = "fold"
    longest = max(len(s.run_id) for s in runs)  # a run id is never cut: it is typed again
    table.columns.insert(0, Column("run", no_wrap=True, min_width=longest, overflow="fold"))
    for cells in rows:
        table.add_row(*(escape(x) for x in cells))
    console.print(table)


LIST_COLUMNS = (
    "run",
    "runbook",
    "started (UTC)",
    "ended",
    "status",
    "incident",
    "operators",
    "hosts",
    "steps",
    "chain",
)


def _store_runs(url: str, filters: RunFilter) -> list[RunSummary]:
    """The summaries of the store's runs matching ``filters``, newest first (the chain
    checked from the store's rows; the local witnesses do not apply there)."""
    runs = [summarize(RunData.from_journal(j)) for j in read_store(url, None)]
    return [s for s in reversed(runs) if filters.match(s)]


def _load(state: Path | None, run: str, store: str | None) -> RunData:
    """A run from the state directory, or from the store when one is given."""
    if store:
        return RunData.from_journal(read_store(store, run)[0])
    return load_run(state_dir(state), run)


@app.command("show")
def show_cmd(
    run: RunArg,
    state: StateDir = None,
    step: Annotated[str | None, typer.Option(help="Only this step.")] = None,
    output: Annotated[bool, typer.Option("--output", help="Show captured stdout/stderr.")] = False,
    events: Annotated[bool, typer.Option("--events", help="Every journal record.")] = False,
    store: StoreArg = None,
) -> None:
    """Show a run: each step per host with outcome, attempts, times and who approved.

    Example: drp log show 20261121-2341 --step fail-and-remove --output

    Example: drp log show 20261121-2341 --store "$DRP_STORE" (a teammate's run)
    """
    data = _load(state, run, store)
    console = _console()
    records = [r for r in data.journal.records if step is None or r.step == step]
    timeline = build_timeline(data.journal.records)
    if events:
        _print_table(console, "", EVENT_COLUMNS, [_event_row(r) for r in records])
    else:
        title = f"run {data.state.run_id}: {data.state.runbook} ({data.state.status})" + (
            f", incident {data.state.incident}" if data.state.incident else ""
        )
        rows = [_step_row(row) for row in timeline.rows if step is None or row.step == step]
        _print_table(console, title, STEP_COLUMNS, rows)
        for line in session_lines(timeline):
            console.print(escape(line))
        if timeline.summary:
            console.print(f"summary: {escape(timeline.summary)}")
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


STEP_COLUMNS = ("session", "host", "step", "kind", "outcome", "tries", "started", "took", "notes")
EVENT_COLUMNS = ("seq", "time", "type", "host", "step", "try", "outcome", "exit", "took", "message")
LONG_TABLE = 300
"""Rows past which a table is printed as plain aligned columns: rich lays a table out
at about half a millisecond a row, 7.5 s for a 10,000-step run."""


def _step_row(row: StepRow) -> tuple[str, ...]:
    notes = []
    if row.waited:
        notes.append(f"waited {fmt_seconds(row.waited)} for a person")
    if row.approved_by:
        notes.append(f"approved by {row.approved_by}")
    return (
        str(row.session),
        row.host,
        row.step,
        row.kind,
        row.label,
        str(row.attempts or ""),
        _short(row.start),
        fmt_seconds(row.duration),
        "; ".join(notes),
    )


def _event_row(r: Record) -> tuple[str, ...]:
    return (
        str(r.seq),
        r.ts.isoformat(timespec="milliseconds"),
        r.type,
        r.host or "",
        r.step or "",
        str(r.attempt or ""),
        r.outcome or "",
        "" if r.exit_code is None else str(r.exit_code),
        fmt_seconds(r.duration) if r.duration is not None else "",
        r.message,
    )


def _print_table(
    console: Console, title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]
) -> None:
    """A rich table; past :data:`LONG_TABLE` rows, aligned plain columns written as they
    are formed (one line per row, every character a terminal would act on escaped)."""
    if len(rows) <= LONG_TABLE:
        table = Table(*columns, title=title or None, title_justify="left")
        for cells in rows:
            table.add_row(*(escape(x) for x in cells))
        console.print(table)
        return
    shown = [tuple(" ".join(visible(x).splitlines()) for x in cells) for cells in rows]
    widths = [max(cell_len(c), *(cell_len(r[i]) for r in shown)) for i, c in enumerate(columns)]
    widths[-1] = 0  # the last column is not padded

    def line(cells: tuple[str, ...]) -> str:
        padded = (c + " " * (w - cell_len(c)) for c, w in zip(cells, widths, strict=True))
        return "  ".join(padded).rstrip() + "\n"

    out = console.file
    if title:
        out.write(visible(title) + "\n")
    out.write(line(columns))
    out.write(line(tuple("-" * max(w, len(c)) for c, w in zip(columns, widths, strict=True))))
    for cells in shown:
        out.write(line(cells))
    out.flush()


@app.command("report")
def report_cmd(
    run: Annotated[
        str | None, typer.Argument(help="Run id, unique prefix of one, or 'latest'.")
    ] = None,
    state: StateDir = None,
    incident: Annotated[
        str | None,
        typer.Option(
            "--incident", help="One report across every run tagged with this incident id."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, html or json.")] = "md",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE.")] = None,
    store: StoreArg = None,
) -> None:
    """Write the post-incident report of a run, or of an incident's runs (timeline, who did
    what, paths to the hosts, waits, failures, rollbacks, approvals).

    Example: drp log report latest --format html --output incident.html

    Example: drp log report --incident 2019-09-disk --format html -o 2019-09-disk.html
    """
    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if (run is None) == (incident is None):
        raise InputError("give a RUN or --incident ID (not both)")
    if store and incident is not None:
        raise InputError("--store reports one run: give a RUN")
    root = state_dir(state)
    if store:
        _write(report(_load(state, run or "", store), fmt), output)
    elif incident is not None:
        _write(incident_report(load_incident(root, incident), fmt), output)
    else:
        _write(report(load_run(root, run or ""), fmt), output)


@app.command("verify")
def verify_cmd(
    run: Annotated[str | None, typer.Argument(help="Run id, prefix, or 'latest'.")] = None,
    state: StateDir = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Verify every run, and name the deleted ones.")
    ] = False,
    allowed_signers: Annotated[
        Path | None,
        typer.Option(
            "--allowed-signers",
            help="OpenSSH allowed_signers file: check the signatures, name each session's signer.",
        ),
    ] = None,
    hosts: Annotated[
        bool, typer.Option("--hosts", help="Also read the witnesses on the run's hosts (SSH).")
    ] = False,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", "-i", envvar="DRP_INVENTORY", help="For --hosts.")
    ] = None,
    fmt: str = FormatOption,
    store: StoreArg = None,
) -> None:
    """Check a journal's hash chain and its anchors: the witnesses and the signatures.

    An edited, removed or reordered record breaks the chain; a tail cut at a record
    boundary, a rewritten and re-hashed chain or a deleted run is caught by the
    witnesses (index, hosts) and the signatures. See docs/audit.md.

    With --store, the chain is recomputed from the store's rows (a tampered row is
    caught); the witnesses and signatures are local and checked without it.

    Example: drp log verify latest --allowed-signers ~/.config/drp/allowed_signers

    Example: drp log verify 20261121-2341 --store "$DRP_STORE"
    """
    from drp.cli.verify import as_json, check_hosts_with, ssh_witness_reader, verify_runs

    root = state_dir(state)
    if (run is None) == (not all_runs):
        raise InputError("give a RUN or --all (not both)")
    if store:
        _verify_store(store, None if all_runs else run, fmt)
        return
    if allowed_signers is not None and not allowed_signers.is_file():
        raise InputError(f"--allowed-signers: no file {allowed_signers}")
    ids = list_run_ids(root) if all_runs else [_verified_id(root, run or "")]
    reader = check_hosts_with(ssh_witness_reader(inventory)) if hosts else None
    checks = verify_runs(root, ids, allowed_signers, all_runs, reader)
    if fmt == "json":
        typer.echo(as_json(checks), nl=False)
    else:
        console = _console()
        if not checks:  # --all in a state directory without a run: say so, not nothing
            console.print(f"no runs in {escape(str(root))}: nothing to verify")
        for c in checks:
            mark = "[green]ok[/]" if c.ok else "[red]FAILED[/]"
            console.print(f"{mark} {escape(c.run_id)}: {escape(c.chain)}")
            for line in c.problems:
                console.print(f"  [red]problem:[/] {escape(line)}")
            for line in [*c.notes, *c.sessions]:
                console.print(f"  {escape(line)}")
            for warning in c.warnings:
                console.print(f"  [yellow]warning:[/] {escape(warning)}")
    if not all(c.ok for c in checks):
        raise typer.Exit(int(ExitCode.JOURNAL))


def _verify_store(url: str, run: str | None, fmt: str) -> None:
    """``drp log verify --store``: each run's chain as the store holds it."""
    from drp.journal import verify

    results = [(j.run_id or j.path.parent.name, verify(j)) for j in read_store(url, run)]
    if fmt == "json":
        echo_json([{"run": i, "ok": r.ok, "chain": str(r)} for i, r in results])
    else:
        console = _console()
        if not results:
            console.print("no runs in the store: nothing to verify")
        for run_id, result in results:
            mark = "[green]ok[/]" if result.ok else "[red]FAILED[/]"
            console.print(f"{mark} {escape(run_id)} (store): {escape(str(result))}")
            for warning in result.warnings:
                console.print(f"  [yellow]warning:[/] {escape(warning)}")
    if not all(r.ok for _i, r in results):
        raise typer.Exit(int(ExitCode.JOURNAL))


def _verified_id(root: Path, text: str) -> str:
    """The run to verify; a full id whose journal is gone but the index witnessed is a
    deleted run: verify says so (exit 6) instead of 'no such run'."""
    from drp.journal.index import read_index
    from drp.journal.paths import RUN_ID_RE

    try:
        return resolve_run(root, text)
    except InputError:
        if RUN_ID_RE.fullmatch(text) and read_index(root).for_run(text):
            return text  # verify_runs reports it gone
        raise


@app.command("note")
def note_cmd(
    run: RunArg,
    text: Annotated[str, typer.Argument(help="The note, in your own words.")],
    state: StateDir = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="This note is the run's summary (the last one wins).")
    ] = False,
    step: Annotated[str | None, typer.Option(help="The step the note is about.")] = None,
    operator: Annotated[str | None, typer.Option(help="Who writes (a label).")] = None,
    sign_key: str = SignKeyOption,
) -> None:
    """Add a journaled note to a run: it appears in the report's timeline.

    Example: drp log note latest "disk from the spares shelf, serial WD-7654321"

    Example: drp log note latest --summary "RAID rebuilt; 3 h downtime for web and mail"
    """
    from drp.cli.anchoring import Anchoring
    from drp.engine.events import Event, EventType
    from drp.engine.options import default_operator
    from drp.journal import JournalWriter
    from drp.journal.anchors import require_witnessed

    if not text.strip():
        raise InputError("the note is empty")
    root = state_dir(state)
    run_id = resolve_run(root, run)
    anchoring = Anchoring.resolve(root, sign_key)
    who = operator or default_operator()
    journal = read_journal(journal_path(run_dir(root, run_id)))
    require_witnessed(journal, run_dir(root, run_id), root)
    with JournalWriter.open_existing(run_dir(root, run_id), who) as writer:
        data: dict[str, object] = {**anchoring.facts(), "summary": summary}
        if step:
            data["step"] = step
        writer.append(Event(EventType.RUN_NOTE, run_id, step=step, message=text, data=data))
        anchoring.started(writer)
        anchoring.ended(writer)
    _console().print(f"note added to {escape(run_id)}")


@app.command("export")
def export_cmd(
    runs: Annotated[list[str] | None, typer.Argument(help="Runs (default: all).")] = None,
    state: StateDir = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE.")] = None,
    store: StoreArg = None,
) -> None:
    """Export journal records as JSON lines (as stored) or CSV.

    Example: drp log export --format csv --output runs.csv

    Example: drp log export --store "$DRP_STORE" -o team.jsonl (every run in the store)
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(
            f"--format: unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})"
        )
    root = state_dir(state)
    if store:
        wanted: list[str | None] = [*runs] if runs else [None]
        journals = [j for r in wanted for j in read_store(store, r)]
        _write(export(journals, fmt), output)
        return
    ids = [resolve_run(root, r) for r in runs] if runs else list_run_ids(root)
    journals = [read_journal(journal_path(run_dir(root, i))) for i in ids]
    _write(export(journals, fmt), output)
