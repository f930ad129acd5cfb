"""The console: how events, plans and gate prompts look to a person (rich), or to a program (JSON).

Sinks here subscribe to the engine's events; they are the only code that
prints while a run is under way. ``ConsoleSink`` shows one line per finished
step, live progress bars for waits and reboots (on a terminal), manual-gate
instructions, and a final summary table.

``ConsoleOperator`` answers gates at the prompt. Gates are asked from a host's
worker thread, which Ctrl-C never reaches, so the prompt reads the terminal
with ``select()`` and gives up when the executor calls ``interrupt()``.
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.prompt import InvalidResponse, Prompt
from rich.table import Table

from drp.durations import format_duration
from drp.engine.events import Event
from drp.engine.options import Decision, GateAnswer, GateRequest
from drp.errors import Cancelled

if TYPE_CHECKING:
    from drp.engine.plan import Plan

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


def make_console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


class ConsoleSink:
    """Human output for a run. Thread-safe; events arrive from every host's worker."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.lock = threading.RLock()
        self.progress: Progress | None = None
        self.tasks: dict[tuple[str, str], TaskID] = {}
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.host_status: dict[str, str] = {}
        self.started = time.monotonic()
        self.names: dict[str, str] = {}
        self.host_began: dict[str, datetime] = {}
        self.host_last: dict[str, datetime] = {}
        self.width = 12

    def __call__(self, event: Event) -> None:
        with self.lock:
            if event.host:
                self.host_began.setdefault(event.host, event.ts)
                self.host_last[event.host] = event.ts
            handler = getattr(self, "_" + event.type.value.replace(".", "_"), None)
            if handler is not None:
                handler(event)

    def print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

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

    def _host_connected(self, event: Event) -> None:
        data = event.data
        if data.get("via_fallback") or data.get("via_jump"):
            path = "fallback address" if data.get("via_fallback") else f"jump {data['via_jump']}"
            self.print(
                f" [yellow]↪[/] {self._host(event)}  connected through {path} "
                f"{data.get('address')}:{data.get('port')}"
            )

    def _host_unreachable(self, event: Event) -> None:
        self.print(f" [red]⚡[/] {self._host(event)}  {escape(event.message)}")

    def _host_finished(self, event: Event) -> None:
        self.host_status[event.host or ""] = event.outcome or ""

    def _lock_acquired(self, event: Event) -> None:
        if event.outcome == "refused":
            self.print(f" [red]🔒[/] {self._host(event)}  {escape(event.message)}")

    # -- steps --------------------------------------------------------------
    def _step_started(self, event: Event) -> None:
        self.names[event.step or ""] = str(event.data.get("name") or event.step)

    def _step_skipped(self, event: Event) -> None:
        self.counts[event.host or ""]["skipped"] += 1
        reason = event.data.get("reason")
        if reason != "done":
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

    def _step_progress(self, event: Event) -> None:
        key = (event.host or "", event.step or "")
        if self.console.is_terminal and not self.quiet:
            self._bar(key, event)
        elif not event.transient and event.data.get("percent") is not None:
            self.print(
                f" [cyan]⠿[/] {self._host(event)}  {event.step}  "
                f"{event.data['percent']:.1f}%  ({format_duration(event.data['elapsed'])})"
            )
        elif event.message and not event.transient:
            self.print(f"   [dim]{self._host(event)}  {event.step}  {escape(event.message)}[/]")

    def _bar(self, key: tuple[str, str], event: Event) -> None:
        if self.progress is None:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
        percent = event.data.get("percent")
        info = f"{percent:.1f}%" if percent is not None else escape(event.message or "waiting")
        description = f"{key[0]:<{self.width}}  {key[1]}"
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=100, info=info)
        self.progress.update(self.tasks[key], completed=percent or 0, info=info)

    def _end_bar(self, event: Event) -> None:
        key = (event.host or "", event.step or "")
        if self.progress is not None and key in self.tasks:
            self.progress.remove_task(self.tasks.pop(key))
            if not self.tasks:
                self.progress.stop()
                self.progress = None

    def _step_waiting(self, event: Event) -> None:
        self._end_bar(event)
        kind = event.data.get("kind", "manual")
        title = {
            "manual": "manual step",
            "confirm": "destructive step",
            "in-doubt": "step in doubt",
        }.get(str(kind), str(kind))
        self.console.print(
            Panel(
                escape(event.message),
                title=f"⏸ {event.host}  {event.step}  ({title})",
                border_style="yellow",
                expand=False,
            )
        )

    def _step_approved(self, event: Event) -> None:
        self.print(
            f"   [dim]{self._host(event)}  {event.step}  approved by "
            f"{escape(str(event.data.get('by')))} {escape(str(event.data.get('note')))}[/]"
        )

    def _step_rejected(self, event: Event) -> None:
        self.print(
            f" [red]⊘[/] {self._host(event)}  {event.step}  rejected by "
            f"{escape(str(event.data.get('by')))}"
        )

    def _step_finished(self, event: Event) -> None:
        self._end_bar(event)
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

    def _rollback_started(self, event: Event) -> None:
        self.print(f" [yellow]↺[/] {self._host(event)}  rolling back {event.step}")

    def _rollback_finished(self, event: Event) -> None:
        glyph = "[green]✓[/]" if event.outcome == "ok" else "[red]✗[/]"
        self.print(f"   {glyph} {self._host(event)}  rollback of {event.step}: {event.outcome}")

    def _run_finished(self, event: Event) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        hosts: dict[str, str] = dict(event.data.get("hosts", {}))
        table = Table(title=f"run {event.run_id}: {event.outcome}", title_justify="left")
        for column in ("host", "status", "ok", "skipped", "failed", "duration"):
            table.add_column(column)
        for host, status in hosts.items():
            counts = self.counts[host]
            began, last = self.host_began.get(host), self.host_last.get(host)
            took = format_duration((last - began).total_seconds()) if began and last else "-"
            table.add_row(
                host,
                status,
                str(counts["ok"] + counts["changed"]),
                str(counts["skipped"]),
                str(counts["failed"]),
                took,
            )
        self.console.print(table)
        self.console.print(f"elapsed {format_duration(time.monotonic() - self.started)}")

    def _host(self, event: Event) -> str:
        return f"{escape(event.host or '-'):<{self.width}}"


class JsonSink:
    """One JSON object per event on stdout, for automation (``--format json``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

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
            sys.stdout.write(json.dumps(record, default=str) + "\n")
            sys.stdout.flush()


class Keyboard:
    """Lines typed at the terminal, read so that a question can be withdrawn while it waits.

    Ctrl-C raises KeyboardInterrupt in the main thread only, and a gate's prompt
    runs in a host's worker thread: a blocking ``input()`` there would hold the
    whole run until Enter. ``readline`` polls the file descriptor with
    ``select()`` and raises :class:`Cancelled` once ``stop`` is set.
    """

    POLL = 0.1  # seconds: how soon a withdrawn question notices

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd
        self.stop = threading.Event()
        self._pending = b""

    def readline(self) -> str:
        """One line without its end; EOFError at the end of input."""
        fd = sys.stdin.fileno() if self.fd is None else self.fd
        while b"\n" not in self._pending:
            if self.stop.is_set():
                raise Cancelled("interrupted at the prompt")
            ready, _, _ = select.select([fd], [], [], self.POLL)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                if not self._pending:
                    raise EOFError
                break
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
        return line.decode(encoding, errors="replace").rstrip("\r")


class ConsoleOperator:
    """Answers gates at the terminal: approve, reject, or pause to resume later.

    Ctrl-C at the prompt (``interrupt()``, called by the executor) withdraws the
    question: ``decide`` raises :class:`Cancelled`, nothing is answered, and
    ``drp resume`` asks again.
    """

    def __init__(
        self,
        console: Console,
        operator: str,
        sink: ConsoleSink | None,
        *,
        keyboard: Keyboard | None = None,
    ) -> None:
        self.console = console
        self.operator = operator
        self.sink = sink
        self.keyboard = keyboard or Keyboard()

    def interrupt(self) -> None:
        self.keyboard.stop.set()

    def decide(self, request: GateRequest) -> GateAnswer:
        choices = {
            "manual": ("done", "reject", "pause"),
            "confirm": ("yes", "no", "pause"),
            "in-doubt": ("rerun", "skip", "pause"),
        }[request.kind]
        progress = self.sink.progress if self.sink else None
        if progress is not None:
            progress.stop()
        note = ""
        try:
            try:
                answer = self._ask(
                    f"{escape(request.host)} {escape(request.step)}: {'/'.join(choices)}?",
                    list(choices),
                    "pause",
                )
                if answer == choices[1]:
                    note = self._ask("reason (for the audit log)", None, "")
            except EOFError:
                answer = "pause"
            except Cancelled:
                self.console.print()  # end the prompt's line (the terminal echoed ^C)
                raise
        finally:
            if progress is not None:
                progress.start()
        decision = {0: Decision.APPROVE, 1: Decision.REJECT, 2: Decision.PAUSE}[
            choices.index(answer)
        ]
        return GateAnswer(decision, self.operator, note)

    def _ask(self, text: str, choices: list[str] | None, default: str) -> str:
        """rich's prompt (look, choices, validation), reading through the :class:`Keyboard`."""
        prompt = Prompt(text, console=self.console, choices=choices)
        while True:
            self.console.print(prompt.make_prompt(default), end="")
            value = self.keyboard.readline()
            if not value.strip():
                return default
            try:
                return prompt.process_response(value)
            except InvalidResponse as error:
                prompt.on_validate_error(value, error)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:160] if lines else ""


def print_plan(console: Console, plan: Plan) -> None:
    """The dry-run view: every step × host in order, rendered, with what makes it risky."""
    book = plan.runbook
    console.print(
        f"[bold]plan[/] {book.name} (sha256 {book.sha256[:12]}…)  "
        f"targets {escape(plan.targets)} → {', '.join(h.name for h in plan.hosts)}"
    )
    params = plan.params.masked()
    if params:
        console.print("params: " + ", ".join(f"{k}={escape(repr(v))}" for k, v in params.items()))
    for host in plan.hosts:
        console.print(f"\n[bold]{host.name}[/] ({host.address}:{host.port})")
        for index, ps in enumerate(plan.steps[host.name], 1):
            flags = _flags(ps)
            console.print(
                f" {index:>2}. [bold]{ps.id}[/] [dim]{ps.step.kind}[/]  "
                f"{escape(ps.step.title)}{flags}"
            )
            if ps.when:
                console.print(f"       when: {escape(ps.when)}")
            for label, text in ps.display.items():
                _print_field(console, label, text)
    console.print("\n[dim]dry run: nothing was contacted, nothing was changed[/]")


def _flags(ps: Any) -> str:
    flags = []
    if ps.destructive:
        flags.append("[red]destructive, asks first[/]")
    if ps.step.kind == "manual":
        flags.append("[yellow]manual gate[/]")
    if ps.step.kind == "manual":
        return "  [" + "; ".join(flags) + "]"
    if ps.become:
        flags.append("sudo")
    if ps.retry.attempts > 1:
        flags.append(f"retry ×{ps.retry.attempts} on {','.join(map(str, ps.retry.failures))}")
    if ps.timeout:
        flags.append(f"timeout {format_duration(ps.timeout)}")
    if ps.step.sensitive:
        flags.append("sensitive")
    if ps.on_failure != "abort":
        flags.append(f"on failure: {ps.on_failure}")
    return ("  [" + "; ".join(flags) + "]") if flags else ""


def _print_field(console: Console, label: str, text: str) -> None:
    lines = text.rstrip("\n").splitlines() or [""]
    console.print(f"       {label}: {lines[0]}", markup=False)
    for line in lines[1:]:
        console.print(f"       {' ' * len(label)}  {line}", markup=False)


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as data, for ``--format json``."""
    return {
        "runbook": plan.runbook.name,
        "sha256": plan.runbook.sha256,
        "targets": plan.targets,
        "params": plan.params.masked(),
        "hosts": {
            host.name: [
                {
                    "id": ps.id,
                    "kind": ps.step.kind,
                    "name": ps.step.title,
                    "destructive": ps.destructive,
                    "manual": ps.step.kind == "manual",
                    "become": ps.become,
                    "timeout": ps.timeout,
                    "when": ps.when,
                    "retry": ps.retry.model_dump(),
                    "on_failure": ps.on_failure,
                    "commands": ps.display,
                }
                for ps in plan.steps[host.name]
            ]
            for host in plan.hosts
        },
    }
