"""Commands that act on hosts: ``plan``, ``run``, ``resume``, ``unlock``.

They load and check everything first (runbook, inventory, params, plan), then
open the journal, wire the sinks (journal first, then console) and hand the
plan to the engine. Exit codes come from the run's status.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from drp.cli.anchoring import AllowedSignersOption, Anchoring, SignKeyOption
from drp.cli.common import (
    IncidentOption,
    InventoryOption,
    ParamOption,
    ParamsFileOption,
    RunbookPathOption,
    StateDirOption,
    gather_params,
    incident_given,
    interactive,
    open_inventory,
    open_runbook,
    secrets_on_command_line,
    startup_done,
)
from drp.cli.console import ConsoleSink, JsonSink, make_console, silence
from drp.cli.store import StoreOption, end_replication, start_replication, store_watcher
from drp.engine.events import AFTERWORDS, Event, EventType, Sink
from drp.engine.options import (
    HostResume,
    NoOperator,
    Operator,
    RunOptions,
    default_operator,
)
from drp.errors import ExitCode, InputError, LockedError, Problem
from drp.journal import (
    JournalWriter,
    journal_path,
    list_run_ids,
    lock_holder,
    new_run_id,
    read_journal,
    replay,
    run_dir,
    state_dir,
)
from drp.journal.store.config import store_password, store_url
from drp.journal.writer import keep_runbook
from drp.results import RunStatus
from drp.terminal import visible
from drp.transport.base import Transport

if TYPE_CHECKING:  # pydantic, Jinja2, tenacity: loaded when a command runs, not for --help
    from drp.engine.executor import RunResult
    from drp.engine.plan import Plan
    from drp.inventory import Host, Inventory
    from drp.journal.store.lease import Holder
    from drp.notify.worker import Notifier, Settings
    from drp.runbook.loader import Runbook

ENV_BECOME_PASSWORD = "DRP_BECOME_PASSWORD"  # noqa: S105 - a variable name, not a secret
EXIT_FOR = {
    RunStatus.OK: ExitCode.OK,
    RunStatus.FAILED: ExitCode.STEP_FAILED,
    RunStatus.UNREACHABLE: ExitCode.UNREACHABLE,
    RunStatus.REJECTED: ExitCode.REJECTED,
    RunStatus.PAUSED: ExitCode.PAUSED,
    RunStatus.INTERRUPTED: ExitCode.INTERRUPTED,
    RunStatus.LOCKED: ExitCode.LOCKED,
}
# a run that lost a host still owns its lock there: it is continued, not started again
UNFINISHED = (RunStatus.PAUSED, RunStatus.INTERRUPTED, RunStatus.RUNNING, RunStatus.UNREACHABLE)


@dataclass(frozen=True)
class Output:
    """How a run talks: text (rich), quiet text, or JSON lines."""

    format: str = "text"
    quiet: bool = False


def _targets(hosts: list[str] | None, targets: str | None) -> str | None:
    if hosts and targets:
        raise InputError("give --host or --targets, not both")
    return ",".join(hosts) if hosts else targets


def host_passwords(inventory: Inventory) -> dict[str, str]:
    """Each host's own sudo password, from the variable its ``become.password_env`` names."""
    return _from_env(inventory, "sudo", lambda h: h.become.password_env if h.become else None)


def console_passwords(inventory: Inventory) -> dict[str, str]:
    """Each host's console login password, from the variable its ``console.password_env`` names."""
    return _from_env(inventory, "console", lambda h: h.console.password_env if h.console else None)


def _from_env(
    inventory: Inventory, what: str, variable: Callable[[Host], str | None]
) -> dict[str, str]:
    found: dict[str, str] = {}
    for host in inventory.hosts.values():
        env = variable(host)
        if env and os.environ.get(env):
            where = f"${env} (host {host.name})"
            found[host.name] = one_line_password(os.environ[env], where, what)
    return found


def known_secrets(inventory: Inventory, *passwords: str | None) -> tuple[str, ...]:
    """Every secret the run knows up front (asked passwords, the inventory's), to mask."""
    values = [p for p in passwords if p]
    values.extend(host_passwords(inventory).values())
    values.extend(console_passwords(inventory).values())
    return tuple(v for v in values if v)


def console_login_password(ask: bool) -> str | None:
    """The console password asked once at the start (``--ask-console-pass``), else none.

    Used for the hosts whose ``console:`` names no ``password_env`` of its own; asked
    up front because a console is needed when nothing else answers, maybe hours into
    an unattended run, when nobody is at the terminal to type it.
    """
    if not ask:
        return None
    given = str(typer.prompt("console password", hide_input=True))
    return one_line_password(given, "the prompt", "console")


def become_password(ask: bool) -> str | None:
    if ask:
        asked = str(typer.prompt("sudo password", hide_input=True))
        return one_line_password(asked, "the prompt", "sudo")
    given = os.environ.get(ENV_BECOME_PASSWORD) or None
    return one_line_password(given, f"${ENV_BECOME_PASSWORD}", "sudo") if given else None


def one_line_password(value: str, where: str, what: str) -> str:
    """A ``sudo`` or ``console`` password as given, refused if it holds a line break.

    sudo and a console's login read one line: the rest would be typed on the host,
    into the command or the shell.
    """
    if "\n" in value or "\r" in value:
        reader = "sudo" if what == "sudo" else "the login"
        raise InputError(
            f"the {what} password from {where} holds a line break; {reader} reads one line, "
            "and the rest would be typed on the host. Give the password alone"
        )
    return value


def _prepare(
    runbook: str,
    inventory: Path | None,
    hosts: list[str] | None,
    targets: str | None,
    limit: str | None,
    params: list[str] | None,
    params_file: Path | None,
    search: list[str] | None,
    passwords: tuple[str | None, ...] = (),
) -> Plan:
    from drp.engine.plan import build_plan

    book = open_runbook(runbook, search)
    warn_secret_params(book, params)
    inv = open_inventory(inventory)
    values = gather_params(book, params, params_file, inv)
    return build_plan(
        book,
        inv,
        values,
        targets=_targets(hosts, targets),
        limit=limit,
        extra_secrets=known_secrets(inv, *passwords),
    )


def warn_secret_params(book: Runbook, params: list[str] | None) -> None:
    """Say so when a secret param came on the command line (see ``secrets_on_command_line``)."""
    for warning in secrets_on_command_line(book, params):
        say(f"warning: {warning}\n")


def _show_plan(plan: Plan, fmt: str, incident: str | None = None) -> None:
    from drp.cli.plan_view import plan_json, print_plan

    if fmt == "json":
        typer.echo(json.dumps(plan_json(plan, incident), indent=2, default=str))
    else:
        print_plan(make_console(), plan, incident)


HostOption = typer.Option(
    None, "--host", "-H", help="Target host (repeatable); overrides the runbook's targets."
)
TargetsOption = typer.Option(
    None, "--targets", "-t", help="Inventory pattern: host, group, glob, 'a,b', '!x', '&group'."
)
LimitOption = typer.Option(None, "--limit", "-l", help="Further restrict the targets.")
AskConsolePassOption = typer.Option(
    False,
    "--ask-console-pass",
    help="Prompt once for the console login password (hosts whose console: has no password_env).",
)
FORMATS = ("text", "json")


def check_format(value: str) -> str:
    """``--format`` is text or json: anything else is an input error, never silently text."""
    if value in FORMATS:
        return value
    close = difflib.get_close_matches(value.lower(), FORMATS, n=1)
    hint = (f"did you mean {close[0]!r}? " if close else "") + "choose text or json"
    raise InputError([Problem("", None, None, "--format", f"unknown format {value!r}", hint)])


# checked as the command line is read: before a prompt, a file or a host
FormatOption = typer.Option("text", "--format", "-f", help="text or json.", callback=check_format)


def plan(
    runbook: str = typer.Argument(..., help="Runbook name or path."),
    host: list[str] = HostOption,
    targets: str = TargetsOption,
    limit: str = LimitOption,
    param: list[str] = ParamOption,
    params_file: Path = ParamsFileOption,
    inventory: Path = InventoryOption,
    fmt: str = FormatOption,
    search: list[str] = RunbookPathOption,
) -> None:
    """Show exactly what a run would do, step × host, without contacting anything.

    Example: drp plan disk-replace --host db1 --param failed=/dev/sdb
    """
    _show_plan(_prepare(runbook, inventory, host, targets, limit, param, params_file, search), fmt)


def _sinks(
    writer: JournalWriter,
    output: Output,
    operator: str,
    interactive_ok: bool,
    stop: threading.Event,
    anchoring: Anchoring | None = None,
) -> tuple[Sink, Operator]:
    from drp.cli.prompts import ConsoleOperator

    def closed() -> None:  # `drp run … | head`, a pager quit: stop as for Ctrl-C
        say("drp: the output was closed: stopping the run as for Ctrl-C\n")
        stop.set()

    console = make_console(on_closed=closed)
    shown: Sink
    gatekeeper: Operator = NoOperator()
    if output.format == "json":
        shown = JsonSink(on_closed=closed)
    else:
        sink = ConsoleSink(console, quiet=output.quiet)
        shown = sink
        if interactive_ok:
            gatekeeper = ConsoleOperator(console, operator, sink)

    def emit(event: Event) -> None:
        if not event.transient:
            writer.append(event)  # journal first: fsynced before the side effect
            if anchoring is not None and event.type in _SESSION_STARTS:
                anchoring.started(writer)
        shown(event)

    return emit, gatekeeper


_SESSION_STARTS = (EventType.RUN_STARTED, EventType.RUN_RESUMED)


def _transports(options: RunOptions) -> tuple[Any, Transport]:
    from drp.transport.local import LocalTransport
    from drp.transport.ssh import SshTransport

    def factory(host: Host) -> Transport:
        ssh = SshTransport(
            host, sudo_password=options.password_for(host.name), run_id=options.run_id
        )
        if host.console is None:
            return ssh
        from drp.transport.console import ConsoleTransport, console_password
        from drp.transport.paths import PathTransport

        console = ConsoleTransport(
            host,
            password=console_password(host.console) or options.console_password,
            sudo_password=options.password_for(host.name),
            run_id=options.run_id,
        )
        return PathTransport(ssh, console)

    return factory, LocalTransport()


def execute_plan(
    plan: Plan,
    options: RunOptions,
    writer: JournalWriter,
    output: Output,
    *,
    resume: dict[str, HostResume] | None = None,
    resumed: bool = False,
    extra: dict[str, object] | None = None,
    anchoring: Anchoring | None = None,
    notify: Settings | None = None,
    store: str | None = None,
    holder: Holder | None = None,
) -> Finished:
    """Run ``plan`` with its journal, console, notifiers and, with a ``store`` URL, the
    journal's replication (under ``holder``'s lease when the caller took it)."""
    from drp.engine.executor import Executor

    stop = threading.Event()
    shown, gatekeeper = _sinks(writer, output, options.operator, interactive(), stop, anchoring)
    options = replace(options, chain_head=writer.head)
    if anchoring is not None:
        extra = {**anchoring.facts(), **(extra or {})}
    refused: list[str] = []
    notifier = _notifier(notify, plan, options, shown, gatekeeper, extra)

    def emit(event: Event) -> None:
        if event.type is EventType.HOST_UNREACHABLE and event.data.get("refused"):
            refused.append(event.host or "")
        shown(event)
        if notifier is not None:
            notifier(event)  # queued: delivered by the notifier's own thread

    factory, local = _transports(options)
    executor = Executor(
        plan,
        options,
        emit=emit,
        operator=gatekeeper,
        transports=factory,
        local=local,
        resume=resume,
        stop=stop,
    )
    replica = start_replication(store, writer, holder)
    if replica is not None:  # the store's outages, told as the run goes (console, notifiers)
        replica.watch(store_watcher(options.run_id, emit))
    startup_done()
    try:
        return Finished(executor.execute(resumed=resumed, extra=extra), tuple(refused))
    finally:
        try:
            if notifier is not None:
                notifier.close()  # waits a little, journals what is undelivered: before the end
        finally:  # a Ctrl-C during that wait still closes the journal
            if anchoring is not None:
                anchoring.ended(writer)
            writer.close()
            end_replication(replica)


def notify_settings(book: Runbook) -> Settings:
    """The run's notification channels: the team's config file and the runbook's own.

    Read before the journal is opened: a problem in either is an input error.
    """
    from drp.notify.config import runbook_notify, settings, team_notify

    return settings(team_notify(), runbook_notify(book.notify, book.path))


def with_channel_secrets(plan: Plan, notify: Settings) -> Plan:
    """The plan, its redactor masking the channels' secrets too (a hook URL, a password)."""
    from drp.redact import Redactor

    secrets = notify.secrets()
    if not secrets:
        return plan
    return replace(
        plan,
        redactor=Redactor.of([*plan.redactor.secrets, *secrets]),
        extra_secrets=(*plan.extra_secrets, *secrets),
    )


def _notifier(
    notify: Settings | None,
    plan: Plan,
    options: RunOptions,
    record: Sink,
    gatekeeper: Operator,
    extra: dict[str, object] | None,
) -> Notifier | None:
    if notify is None or not notify.channels:
        return None
    from drp.notify.notice import RunContext
    from drp.notify.worker import Notifier

    incident = (extra or {}).get("incident")
    context = RunContext(
        runbook=plan.runbook.name,
        operator=options.operator,
        at_terminal=not isinstance(gatekeeper, NoOperator),
        incident=str(incident) if incident else None,
    )
    return Notifier(notify, context, record)


@dataclass(frozen=True)
class Finished:
    """How a run ended, and the hosts that refused drp's login or showed a bad host key."""

    result: RunResult
    refused: tuple[str, ...] = ()


def say(text: str) -> None:
    """Write to stderr; one that is closed too (``2>&1 | head``) is silenced, never fatal."""
    try:
        sys.stderr.write(visible(text))
        sys.stderr.flush()
    except OSError:
        silence(sys.stderr)


def exit_with_status(finished: Finished) -> None:
    result = finished.result
    if result.status is RunStatus.UNREACHABLE and finished.refused:
        say(
            f"{', '.join(finished.refused)} refused the login or the host key (why, above); "
            f"once that is fixed, continue with: drp resume {result.run_id}\n"
        )
    elif result.status is RunStatus.PAUSED:
        say(f"run paused; continue with: drp resume {result.run_id}\n")
    elif result.status is RunStatus.INTERRUPTED:
        say(f"run interrupted; continue with: drp resume {result.run_id}\n")
    elif result.status is RunStatus.UNREACHABLE:
        say(f"a host was unreachable; once it answers, continue with: drp resume {result.run_id}\n")
    raise typer.Exit(int(EXIT_FOR.get(result.status, ExitCode.STEP_FAILED)))


def _started_with(path: Path) -> dict[str, Any]:
    """The data of a journal's first record (run.started), read without the whole file."""
    try:
        with path.open("rb") as handle:
            first = json.loads(handle.readline())
    except (OSError, ValueError):
        return {}
    data = first.get("data") if isinstance(first, dict) else None
    return data if isinstance(data, dict) else {}


def _ended_with(path: Path) -> str | None:
    """The outcome of a journal's last record if it is ``run.finished`` (read from the tail).

    Afterwords (a note, a late notification's record) may follow it and are passed over.
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 65536))  # a longer last line: None, replayed whole
            lines = handle.read().rstrip(b"\n").split(b"\n")[1:]  # the first may be cut
        for line in reversed(lines):
            last = json.loads(line)
            if not isinstance(last, dict) or last.get("type") not in AFTERWORDS:
                break
        else:
            return None
    except (OSError, ValueError):
        return None
    if isinstance(last, dict) and last.get("type") == EventType.RUN_FINISHED:
        return str(last.get("outcome"))
    return None


def _unfinished(state: Path, plan: Plan) -> str | None:
    """An unfinished run of the same runbook on one of the same hosts, if there is one."""
    wanted = {h.name for h in plan.hosts}
    ended = {status.value for status in RunStatus if status not in UNFINISHED}
    for run_id in reversed(list_run_ids(state)):
        folder = run_dir(state, run_id)
        header = _started_with(journal_path(folder))
        if header.get("runbook") != plan.runbook.name or not wanted & set(
            header.get("targets") or []
        ):
            continue  # only the journals that may matter are read whole
        if _ended_with(journal_path(folder)) in ended:
            continue  # the common case, a run that ended: its last line says so
        journal = read_journal(journal_path(folder))
        status = replay(journal.records, locked=lock_holder(folder) is not None)
        if status.status in UNFINISHED:
            return run_id
    return None


def run(
    runbook: str = typer.Argument(..., help="Runbook name or path."),
    host: list[str] = HostOption,
    targets: str = TargetsOption,
    limit: str = LimitOption,
    param: list[str] = ParamOption,
    params_file: Path = ParamsFileOption,
    inventory: Path = InventoryOption,
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show the plan; touch nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm destructive steps."),
    approve: list[str] = typer.Option(
        None, "--approve", help="Approve this manual step non-interactively (repeatable)."
    ),
    forks: int = typer.Option(10, "--forks", min=1, max=500, help="Hosts in parallel."),
    serial: str = typer.Option(None, "--serial", help="Rolling batches: count or 'N%'."),
    max_fail: float = typer.Option(
        None,
        "--max-fail",
        min=0,
        max=100,
        help="Halt when more than this percentage of hosts failed.",
    ),
    operator: str = typer.Option(None, "--operator", help="Who runs this (default user@host)."),
    ask_become_pass: bool = typer.Option(
        False,
        "--ask-become-pass",
        "-K",
        help=f"Prompt for the sudo password (or set {ENV_BECOME_PASSWORD}).",
    ),
    ask_console_pass: bool = AskConsolePassOption,
    new: bool = typer.Option(
        False,
        "--new",
        help="Start a new run even if an unfinished run of this runbook exists on these hosts.",
    ),
    incident: str = IncidentOption,
    state: Path = StateDirOption,
    fmt: str = FormatOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the summary."),
    search: list[str] = RunbookPathOption,
    sign_key: str = SignKeyOption,
    store: str = StoreOption,
    allowed_signers: Path = AllowedSignersOption,
) -> None:
    """Run a runbook against its targets over SSH, journaling every step.

    Example: drp run disk-replace --host db1 --param failed=/dev/sdb

    Example: drp run dns-failover -t dns --dry-run

    Example: drp run kernel-rollback --host db1 --incident 2019-09-disk
    """
    tag = incident_given(incident)
    url = store_url(store)
    password = None if dry_run else become_password(ask_become_pass)
    console_pw = None if dry_run else console_login_password(ask_console_pass)
    secrets = (password, console_pw, store_password(url))  # masked in the journal
    the_plan = _prepare(
        runbook, inventory, host, targets, limit, param, params_file, search, secrets
    )
    if dry_run:
        _show_plan(the_plan, fmt, tag)
        return
    folder = state_dir(state)
    pending = None if new else _unfinished(folder, the_plan)
    if pending:
        raise LockedError(
            f"run {pending} of {the_plan.runbook.name} is unfinished on these "
            f"hosts: continue it with 'drp resume {pending}' (or pass --new)"
        )
    anchoring = Anchoring.resolve(folder, sign_key)
    notify = notify_settings(the_plan.runbook)
    the_plan = with_channel_secrets(the_plan, notify)
    run_id = new_run_id(the_plan.runbook.name)
    options = RunOptions(
        run_id=run_id,
        operator=operator or default_operator(),
        forks=forks,
        serial=_serial(serial),
        max_fail_percentage=max_fail,
        yes=yes,
        approve=frozenset(approve or []),
        sudo_password=password,
        host_sudo_passwords=host_passwords(the_plan.inventory),
        console_password=console_pw,
        command_line=shlex.join(["drp", *sys.argv[1:]]),
        output_dir=str(run_dir(folder, run_id) / "output"),
    )
    from drp.cli.approve import with_approvals

    options = with_approvals(
        the_plan, options, run_dir(folder, run_id), url, anchoring, allowed_signers
    )
    writer = JournalWriter.create(run_dir(folder, run_id), options.operator)
    keep_runbook(run_dir(folder, run_id), Path(the_plan.runbook.path).read_bytes())
    extra: dict[str, object] = {"incident": tag} if tag else {}
    exit_with_status(
        execute_plan(
            the_plan,
            options,
            writer,
            Output(fmt, quiet),
            extra=extra,
            anchoring=anchoring,
            notify=notify,
            store=url,
        )
    )


def _serial(text: str | None) -> int | str | None:
    if text is None:
        return None
    if text.endswith("%") and text[:-1].isdigit():
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise InputError(f"--serial {text!r}: give a host count (2) or a percentage (25%)")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    app.command("run")(run)
