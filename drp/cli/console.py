"""The run console: how a run's events look to a person (rich), or to a program (JSON).

Sinks here subscribe to the engine's events; they are the only code that
prints while a run is under way. ``ConsoleSink`` prints one line per finished
step, a line per retry, manual-gate instructions and a final summary table.
On a terminal it also keeps a live view at the bottom: one row per busy host
with its current step and how long it has run (a wait shows its progress, or
its elapsed time against its timeout). Without a terminal the output stays
plain lines, fit for a log. ``JsonSink`` writes one JSON object per event.

When the reader of the output goes away (``drp run … | head``, a pager quit),
both go quiet and call their ``on_closed`` hook (a run then stops as for
Ctrl-C) instead of letting the error end whichever host thread was printing.

Plans are rendered in :mod:`drp.cli.plan_view`; gates are answered at the
prompt by :mod:`drp.cli.prompts`.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.markup import render as render_markup
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.segment import Segment
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from drp.durations import format_duration
from drp.engine.events import Event
from drp.terminal import visible, visible_values

GLYPH = {
    "ok": "[green]✓[/]",
    "changed": "[green]✓[/]",
    "skipped": "[dim]⏭[/]",
    "failed": "[red]✗[/]",
    "unreachable": "[red]⚡[/]",
    "paused": "[yellow]⏸[/]",
    "rejected": "[red]⊘[/]",
    "interrupted": "[red]■[/]",
    "rolled-back": "[yellow]↺[/]",
}
BAR_WIDTH = 24
STEP_WIDTH = 40


OnClosed = Callable[[], None]
#: How a write says its reader is gone: a closed pipe, or a terminal that hung up.
CLOSED = (errno.EPIPE, errno.EIO)


class _Output:
    """A console's stream, where a terminal that hung up (EIO) fails as a closed pipe
    does, the one failure rich hands to ``on_broken_pipe``. Anything else is the
    stream's own (``isatty``, ``fileno``, ``encoding``, ...)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as error:
            raise _as_closed(error) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            raise _as_closed(error) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _as_closed(error: OSError) -> OSError:
    return BrokenPipeError(errno.EPIPE, str(error)) if error.errno in CLOSED else error


def silence(stream: IO[str]) -> None:
    """Point ``stream``'s descriptor at /dev/null: later writes, and the flush at exit
    (which would otherwise fail again and make the exit status 120), go nowhere."""
    with contextlib.suppress(OSError, ValueError):  # no descriptor (a StringIO): nothing to do
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def output_closed(stream: IO[str], on_closed: OnClosed | None) -> None:
    """The reader of ``stream`` went away: silence it, then tell ``on_closed``, or, when
    nobody listens, raise BrokenPipeError (typer ends the command with exit 1, quietly)."""
    silence(stream)
    if on_closed is None:
        raise BrokenPipeError(errno.EPIPE, "the output was closed")
    on_closed()


class DrpConsole(Console):
    """rich's Console, but a closed output is :func:`output_closed`'s business.

    rich's own answer (``SystemExit(1)``, raised in whichever thread printed) ends
    a host's worker thread silently in the middle of its run.
    """

    def __init__(self, *, on_closed: OnClosed | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.on_closed = on_closed

    def on_broken_pipe(self) -> None:
        self.quiet = True  # rich drops what it would print from now on
        output_closed(self.file, self.on_closed)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        """Whatever is printed, a control character in it is shown, not sent (drp.terminal).

        rich's own escapes are in a segment's style or its ``control``, never in its text.
        """
        return super()._render_buffer(
            segment if segment.control else Segment(visible(segment.text), segment.style)
            for segment in buffer
        )


def make_console(
    *,
    file: IO[str] | None = None,
    stderr: bool = False,
    soft_wrap: bool = False,
    on_closed: OnClosed | None = None,
    **options: Any,
) -> DrpConsole:
    """drp's console, on ``file`` (default: stdout, or stderr). ``emoji=False``: rich
    would turn a ``:x:`` or ``:warning:`` in a command's output (which ``escape``
    leaves alone) into a pictogram."""
    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    return DrpConsole(
        file=_Output(stream),
        stderr=stderr,
        highlight=False,
        soft_wrap=soft_wrap,
        emoji=False,
        on_closed=on_closed,
        **options,
    )


@dataclass(frozen=True)
class Row:
    """What one host is doing now, as the live view shows it."""

    step: str  # the step's name
    began: float  # clock() when the step started
    percent: float | None = None  # from the wait's ``progress`` regex
    timeout: float | None = None  # the step's (or its wait's) time limit, when an event says
    since: float | None = None  # clock() when the wait or reboot began (from its ``elapsed``)
    note: str = ""

    def timing(self, now: float) -> str:
        """``12s``, or ``2m10s / 1d00h`` against a known timeout."""
        return _against(now - _first(self.since, self.began), self.timeout)

    def fraction(self, now: float) -> float | None:
        """How far the wait has come, in percent: its progress, else elapsed / timeout."""
        if self.percent is not None:
            return max(0.0, min(100.0, self.percent))
        if self.since is not None and self.timeout:
            return max(0.0, min(100.0, (now - self.since) * 100.0 / self.timeout))
        return None


class ConsoleSink:
    """Human output for a run. Thread-safe; events arrive from every host's worker."""

    def __init__(
        self,
        console: Console,
        *,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.quiet = quiet
        # lines go out as plain text when nothing would colour or lay them out
        self.plain = (
            isinstance(console, DrpConsole)
            and not console.is_terminal
            and console.color_system is None
        )
        self.clock = clock
        self.lock = threading.RLock()
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        # (host, step, attempt) of the failure last printed: its retry notice need not repeat it
        self._failure_told: tuple[str | None, str | None, int | None] | None = None
        self.host_status: dict[str, str] = {}
        self.started = clock()
        self.names: dict[str, str] = {}
        self.paths: dict[str, str] = {}  # host -> "ssh" or "console": the path its steps use
        self.host_began: dict[str, datetime] = {}
        self.host_last: dict[str, datetime] = {}
        self.width = 12
        # the live view (terminal only): rows are replaced, never changed in place, so
        # that the refresh thread reads them without the lock (it holds rich's own lock)
        self.rows: dict[str, Row] = {}
        self.live: Live | None = None
        self.held = 0
        self.spinner = Spinner("dots", style="cyan")
        self._exit_hook = False

    @property
    def is_live(self) -> bool:
        """Whether this sink keeps a live view (a terminal, not ``--quiet``)."""
        return self.console.is_terminal and not self.quiet

    def __call__(self, event: Event) -> None:
        # host output and runbook text, shown before rich lays it out (and drops \r, BEL...)
        event = replace(event, message=visible(event.message), data=visible_values(event.data))
        with self.lock:
            if event.host:
                self.host_began.setdefault(event.host, event.ts)
                self.host_last[event.host] = event.ts
            handler = getattr(self, "_" + event.type.value.replace(".", "_"), None)
            if handler is not None:
                handler(event)

    def print(self, text: str) -> None:
        if self.quiet or self.console.quiet:  # the console's own: set once its reader is gone
            return
        if not self.plain:
            self.console.print(text)
            return
        # a pipe or a file, without colour: the line's text, not rich's layout (a tenth of
        # the cost per step; a long line is kept whole for the log, never wrapped)
        line = visible(render_markup(text, emoji=False).plain) + "\n"
        try:
            self.console.file.write(line)
            self.console.file.flush()
        except BrokenPipeError:
            self.console.on_broken_pipe()

    # -- the live view ------------------------------------------------------
    def live_view(self) -> RenderableType:
        """The rows at the bottom of the terminal: host, step, progress, time."""
        rows = self.rows  # one read: a consistent snapshot
        if not rows:
            return Group()
        now = self.clock()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=1, no_wrap=True)
        grid.add_column(min_width=self.width, no_wrap=True)
        grid.add_column(max_width=STEP_WIDTH, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        for host, row in rows.items():
            fraction = row.fraction(now)
            bar: RenderableType = Text("")
            if fraction is not None:
                bar = ProgressBar(total=100.0, completed=fraction, width=BAR_WIDTH)
            elif row.since is not None:  # a wait that says neither progress nor timeout
                bar = ProgressBar(total=None, width=BAR_WIDTH, pulse=True)
            info = f"{row.percent:.1f}%" if row.percent is not None else row.note
            grid.add_row(
                self.spinner,
                Text(host),
                Text(row.step, overflow="ellipsis"),
                bar,
                Text(info, style="dim"),
                Text(row.timing(now)),
            )
        return grid

    def _set_row(self, host: str | None, row: Row | None) -> None:
        rows = dict(self.rows)
        if row is None:
            rows.pop(host or "", None)
        else:
            rows[host or ""] = row
        self.rows = rows
        if self.live is not None:
            self.live.refresh()  # now: a line printed next must not redraw the stale rows
        else:
            self._show()

    def _show(self) -> None:
        if self.live is not None or self.held or not self.rows or not self.is_live:
            return
        self.live = Live(
            console=self.console,
            get_renderable=self.live_view,
            transient=True,
            refresh_per_second=4,
        )
        self.live.start(refresh=True)
        if not self._exit_hook:  # never leave the terminal without its cursor
            atexit.register(self._stop_live)
            self._exit_hook = True

    def _stop_live(self) -> None:
        with self.lock:
            if self.live is not None:
                self.live.stop()
                self.live = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """No live view while a prompt waits for an answer (it would draw over it)."""
        with self.lock:
            self.held += 1
            self._stop_live()
        try:
            yield
        finally:
            with self.lock:
                self.held -= 1
                self._show()

    # -- run ----------------------------------------------------------------
    def _run_started(self, event: Event) -> None:
        data = event.data
        self.width = max([len(h) for h in data.get("targets", [])] + [4])
        self.print(
            f"[bold]drp {data.get('drp_version')}[/]  run [bold]{event.run_id}[/]  "
            f"runbook {escape(str(data.get('runbook')))} "
            f"(sha256 {str(data.get('runbook_sha256'))[:12]}…)"
        )

    def _run_resumed(self, event: Event) -> None:
        self.width = max([len(h) for h in event.data.get("targets", [])] + [4])
        self.print(f"[bold]resuming[/] run [bold]{event.run_id}[/]")

    def _path_changed(self, event: Event, path: str) -> None:
        """Say when a host's steps move to the serial console, and back to SSH."""
        host = event.host or ""
        before = self.paths.get(host, "ssh")
        if path not in ("ssh", "console") or path == before:
            return
        self.paths[host] = path
        where = "over the serial console" if path == "console" else "back over SSH"
        self.print(f" [yellow]↪[/] {self._host(event)}  {escape(event.step or '')}  {where}")

    def _host_connected(self, event: Event) -> None:
        data = event.data
        if data.get("via_console"):
            self.paths[event.host or ""] = "console"
            self.print(
                f" [yellow]↪[/] {self._host(event)}  no SSH path answers: connected through "
                f"the serial console {escape(str(data.get('address')))}"
            )
        elif data.get("via_fallback") or data.get("via_jump"):
            path = "fallback address" if data.get("via_fallback") else f"jump {data['via_jump']}"
            self.print(
                f" [yellow]↪[/] {self._host(event)}  connected through {path} "
                f"{data.get('address')}:{data.get('port')}"
            )

    def _host_unreachable(self, event: Event) -> None:
        self.print(f" [red]⚡[/] {self._host(event)}  {escape(event.message)}")

    def _host_finished(self, event: Event) -> None:
        self.host_status[event.host or ""] = event.outcome or ""
        self._set_row(event.host, None)

    def _lock_acquired(self, event: Event) -> None:
        if event.outcome == "refused":
            self.print(f" [red]🔒[/] {self._host(event)}  {escape(event.message)}")

    # -- steps --------------------------------------------------------------
    def _step_started(self, event: Event) -> None:
        name = str(event.data.get("name") or event.step)
        self.names[event.step or ""] = name
        self._path_changed(event, str(event.data.get("path") or ""))
        timeout = _seconds(event.data.get("timeout"))  # when the engine says (optional)
        self._set_row(event.host, Row(step=name, began=self.clock(), timeout=timeout))

    def _host_resumed(self, event: Event) -> None:  # steps done by earlier sessions
        self.counts[event.host or ""]["earlier"] += int(event.data.get("done_earlier") or 0)

    def _step_skipped(self, event: Event) -> None:
        self.counts[event.host or ""]["skipped"] += 1
        self._line(event, "skipped", event.message)

    def _step_attempt(self, event: Event) -> None:
        if event.outcome == "failed" and event.data.get("phase") in ("action", "verify"):
            error = event.data.get("error") or (
                f"exit {event.exit_code}: " + _last_line(str(event.data.get("stderr", "")))
            )
            self.print(
                f"   [dim]{self._host(event)}  {event.step}  attempt {event.attempt} "
                f"failed: {escape(str(error))}[/]"
            )
            self._failure_told = (event.host, event.step, event.attempt)

    def _step_progress(self, event: Event) -> None:
        data = event.data
        if "retry_in" in data:  # a retry notice: a line everywhere, never a bar
            told = self._failure_told == (event.host, event.step, event.attempt)
            said = f"retrying in {data['retry_in']:.1f}s" if told else event.message
            self.print(f"   [dim]{self._host(event)}  {event.step}  {escape(said)}[/]")
            row = self.rows.get(event.host or "")
            if row is not None:
                self._set_row(event.host, replace(row, note=f"retry in {data['retry_in']}s"))
            return
        if self.is_live:
            self._progress_row(event)
        elif not event.transient and data.get("percent") is not None:
            self.print(
                f" [cyan]⠿[/] {self._host(event)}  {event.step}  "
                f"{data['percent']:.1f}%  ({format_duration(data['elapsed'])})"
            )
        elif event.message and not event.transient:
            self.print(f"   [dim]{self._host(event)}  {event.step}  {escape(event.message)}[/]")
        elif not event.transient and (elapsed := _seconds(data.get("elapsed"))) is not None:
            took = _against(elapsed, _seconds(data.get("timeout")))  # a wait without a regex
            self.print(f" [cyan]⠿[/] {self._host(event)}  {event.step}  {took}")

    def _progress_row(self, event: Event) -> None:
        data = event.data
        now = self.clock()
        row = self.rows.get(event.host or "") or Row(
            step=self.names.get(event.step or "", event.step or ""), began=now
        )
        elapsed, timeout = _seconds(data.get("elapsed")), _seconds(data.get("timeout"))
        percent = data.get("percent")
        self._set_row(
            event.host,
            replace(
                row,
                percent=float(percent) if isinstance(percent, int | float) else None,
                timeout=timeout if timeout is not None else row.timeout,
                since=now - elapsed if elapsed is not None else _first(row.since, row.began),
                note=event.message,
            ),
        )

    def _step_waiting(self, event: Event) -> None:
        kind = event.data.get("kind", "manual")
        title = {
            "manual": "manual step",
            "confirm": "destructive step",
            "in-doubt": "step in doubt",
        }.get(str(kind), str(kind))
        row = self.rows.get(event.host or "") or Row(
            step=self.names.get(event.step or "", event.step or ""), began=self.clock()
        )
        self._set_row(event.host, replace(row, note="waiting for the operator"))
        self.console.print(
            Panel(
                escape(event.message),
                title=f"⏸ {event.host}  {event.step}  ({title})",
                border_style="yellow",
                expand=False,
            )
        )

    def _step_approved(self, event: Event) -> None:
        row = self.rows.get(event.host or "")
        if row is not None:
            self._set_row(event.host, replace(row, note=""))
        self.print(
            f"   [dim]{self._host(event)}  {event.step}  approved by "
            f"{escape(str(event.data.get('by')))} {escape(str(event.data.get('note')))}[/]"
        )

    def _step_rejected(self, event: Event) -> None:
        self.print(
            f" [red]⊘[/] {self._host(event)}  {event.step}  rejected by "
            f"{escape(str(event.data.get('by')))}"
        )

    def _step_deadline(self, event: Event) -> None:
        self.print(f" [yellow]⏰[/] {self._host(event)}  {event.step}  {escape(event.message)}")

    def _step_finished(self, event: Event) -> None:
        self._set_row(event.host, None)
        outcome = event.outcome or ""
        self.counts[event.host or ""][outcome] += 1
        message = event.message
        if outcome == "paused":
            self.console.print(
                f" {GLYPH['paused']} {self._host(event)}  "
                f"{self.names.get(event.step or '', event.step)}  "
                f"{escape(message)}"
            )
            return
        self._line(event, outcome, message)

    def _line(self, event: Event, outcome: str, message: str) -> None:
        duration = (
            f"{format_duration(event.duration):>6}" if event.duration is not None else " " * 6
        )
        name = self.names.get(event.step or "", event.step or "")
        self.print(
            f" {GLYPH.get(outcome, '?')} {self._host(event)}  {escape(name):<24} "
            f"{duration}   {escape(message)}"
        )

    def _store_behind(self, event: Event) -> None:
        self.print(f" [yellow]⚠[/] store: {escape(event.message)}")

    def _store_caught_up(self, event: Event) -> None:
        self.print(f"   store: {escape(event.message)}")

    def _notify_failed(self, event: Event) -> None:
        """A notification given up on (its attempts are in the journal, not on screen)."""
        if event.data.get("final"):
            self.console.print(f" [yellow]✉[/] {escape(event.message)}")

    def _rollback_started(self, event: Event) -> None:
        name = self.names.get(event.step or "", event.step or "")
        self._set_row(event.host, Row(step=f"rolling back {name}", began=self.clock()))
        self.print(f" [yellow]↺[/] {self._host(event)}  rolling back {event.step}")

    def _rollback_finished(self, event: Event) -> None:
        self._set_row(event.host, None)
        glyph = "[green]✓[/]" if event.outcome == "ok" else "[red]✗[/]"
        self.print(f"   {glyph} {self._host(event)}  rollback of {event.step}: {event.outcome}")

    def _run_finished(self, event: Event) -> None:
        self.rows = {}
        self._stop_live()
        hosts: dict[str, str] = dict(event.data.get("hosts", {}))
        table = Table(title=f"run {event.run_id}: {event.outcome}", title_justify="left")
        columns = ["host", "status", "ok", "skipped", "failed", "unreachable", "duration"]
        earlier = any(self.counts[h]["earlier"] for h in hosts)
        if earlier:  # after a resume: what earlier sessions did, shown as done by them
            columns.insert(3, "done earlier")
        for column in columns:
            table.add_column(column)
        for host, status in hosts.items():
            counts = self.counts[host]
            began, last = self.host_began.get(host), self.host_last.get(host)
            took = format_duration((last - began).total_seconds()) if began and last else "-"
            cells = [
                escape(host),
                escape(status),
                str(counts["ok"] + counts["changed"]),
                str(counts["skipped"]),
                str(counts["failed"]),
                str(counts["unreachable"]),
                took,
            ]
            if earlier:
                cells.insert(3, str(counts["earlier"]))
            table.add_row(*cells)
        self.console.print(table)
        self.console.print(f"elapsed {format_duration(self.clock() - self.started)}")

    def _host(self, event: Event) -> str:
        return f"{escape(event.host or '-'):<{self.width}}"


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _first(value: float | None, otherwise: float) -> float:
    return value if value is not None else otherwise


def _against(elapsed: float, timeout: float | None) -> str:
    """``2m10s / 1d00h``: time spent against the time allowed (just the first without one)."""
    spent = format_duration(max(0.0, elapsed))
    return f"{spent} / {format_duration(timeout)}" if timeout else spent


class JsonSink:
    """One JSON object per event on stdout, for automation (``--format json``)."""

    def __init__(self, on_closed: OnClosed | None = None) -> None:
        self.lock = threading.Lock()
        self.on_closed = on_closed
        self.closed = False

    def __call__(self, event: Event) -> None:
        record: dict[str, Any] = {
            "ts": event.ts.isoformat(),
            "run": event.run_id,
            "type": event.type.value,
        }
        for key in ("host", "step", "attempt", "outcome", "exit_code", "duration"):
            value = getattr(event, key)
            if value is not None:
                record[key] = value
        if event.message:
            record["message"] = event.message
        if event.data:
            record["data"] = event.data
        if event.transient:
            record["transient"] = True
        with self.lock:
            if self.closed:
                return
            try:
                sys.stdout.write(json.dumps(record, default=str) + "\n")
                sys.stdout.flush()
            except OSError as error:
                if error.errno not in CLOSED:
                    raise
                self.closed = True
                output_closed(sys.stdout, self.on_closed)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:160] if lines else ""
