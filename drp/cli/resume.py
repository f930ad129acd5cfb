"""Commands that continue or clean up after a run: ``resume`` and ``unlock``.

``resume`` rebuilds the run's plan from its journal (same runbook, unless
``--allow-changed``; same targets and params, secrets asked again), tells the
engine which steps are done or in doubt on each host, and appends to the same
journal. ``unlock`` removes a stale host lock and journals that as its own run.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from drp.cli.common import (
    InventoryOption,
    ParamOption,
    StateDirOption,
    gather_params,
    open_inventory,
)
from drp.cli.run import (
    FormatOption,
    Output,
    become_password,
    execute_plan,
    exit_with_status,
    host_passwords,
    known_secrets,
    say,
)
from drp.engine.events import Event, EventType
from drp.engine.options import HostResume, InDoubtPolicy, RunOptions, default_operator
from drp.errors import InputError, JournalError, LockedError
from drp.journal import (
    JournalWriter,
    RunState,
    journal_path,
    lock_holder,
    new_run_id,
    read_journal,
    replay,
    resolve_run,
    run_dir,
    state_dir,
)
from drp.journal.writer import empty_journal
from drp.results import RunStatus

if TYPE_CHECKING:
    from drp.results import CommandResult
    from drp.runbook import Runbook


def _load_for_resume(run_state: RunState, allow_changed: bool) -> Runbook:
    from drp.runbook import load_runbook

    path = Path(run_state.runbook_path)
    if not path.is_file():
        raise JournalError(f"the runbook of run {run_state.run_id} is gone: {path}")
    book = load_runbook(path)
    if book.sha256 != run_state.runbook_sha256 and not allow_changed:
        raise JournalError(
            f"runbook {book.name} changed since run {run_state.run_id} started "
            f"(sha256 {run_state.runbook_sha256[:12]}… → {book.sha256[:12]}…). Review the "
            "change; resume anyway with --allow-changed (recorded in the journal)."
        )
    return book


def resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix, or 'latest')."),
    approve: list[str] = typer.Option(
        None, "--approve", help="Approve this manual step (repeatable)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm destructive steps."),
    retry_in_doubt: bool = typer.Option(
        False, "--retry-in-doubt", help="Run again steps whose end was never recorded."
    ),
    skip_in_doubt: bool = typer.Option(
        False, "--skip-in-doubt", help="Treat steps in doubt as done."
    ),
    allow_changed: bool = typer.Option(
        False, "--allow-changed", help="Resume although the runbook changed."
    ),
    param: list[str] = ParamOption,
    inventory: Path = InventoryOption,
    operator: str = typer.Option(None, "--operator", help="Who resumes (default user@host)."),
    ask_become_pass: bool = typer.Option(False, "--ask-become-pass", "-K"),
    state: Path = StateDirOption,
    fmt: str = FormatOption,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Continue an interrupted or paused run where it stopped; done steps are not run again.

    Example: drp resume 20261121-234112-disk-replace-7f3a --approve datacenter-swap
    """
    if retry_in_doubt and skip_in_doubt:
        raise InputError("--retry-in-doubt and --skip-in-doubt exclude each other")
    folder = state_dir(state)
    the_id = resolve_run(folder, run_id)
    directory = run_dir(folder, the_id)
    journal = read_journal(journal_path(directory))
    if not journal.records:
        raise empty_journal(directory)
    run_state = replay(journal.records, locked=lock_holder(directory) is not None)
    if run_state.status is RunStatus.OK:
        raise JournalError(f"run {the_id} finished ok; nothing to resume")
    book = _load_for_resume(run_state, allow_changed)
    inv = open_inventory(inventory or Path(run_state.inventory))
    from drp.redact import MASK

    base = {k: v for k, v in run_state.params.items() if v != MASK and v is not None}
    from drp.engine.plan import build_plan

    password = become_password(ask_become_pass)
    values = gather_params(book, param, None, inv, base=base)
    the_plan = build_plan(
        book,
        inv,
        values,
        targets=",".join(run_state.targets),
        extra_secrets=known_secrets(inv, password),
    )
    policy: InDoubtPolicy = "retry" if retry_in_doubt else "skip" if skip_in_doubt else "ask"
    options = RunOptions(
        run_id=the_id,
        operator=operator or default_operator(),
        yes=yes,
        approve=frozenset(approve or []),
        in_doubt=policy,
        sudo_password=password,
        host_sudo_passwords=host_passwords(inv),
        command_line=shlex.join(["drp", *sys.argv[1:]]),
    )
    hosts = {
        h.name: HostResume(
            done=frozenset(run_state.done_steps(h.name)),
            in_doubt=frozenset(run_state.in_doubt(h.name)),
            acted=frozenset(run_state.acted_steps(h.name)),
            captures=run_state.captures(h.name),
        )
        for h in the_plan.hosts
    }
    writer = JournalWriter.open_existing(directory, options.operator)
    if writer.seq != run_state.last_seq:  # another session wrote while we got ready
        writer.close()
        raise LockedError(
            f"run {the_id} changed while this resume got ready (another drp resumed it): "
            f"check 'drp log show {the_id}' and resume again"
        )
    for warning in [*journal.warnings, *writer.warnings]:
        say(f"warning: {warning}\n")
    extra: dict[str, object] = {
        "allow_changed": allow_changed,
        "approvals": sorted(approve or []),
        "runbook_sha256": book.sha256,
        "in_doubt": policy,
        # what this session runs with: the params may differ (--param), the inventory too
        "params": the_plan.params.masked(),
        "inventory": inv.path,
        "inventory_sha256": inv.sha256,
    }
    exit_with_status(
        execute_plan(
            the_plan, options, writer, Output(fmt, quiet), resume=hosts, resumed=True, extra=extra
        )
    )


def unlock(
    host: str = typer.Argument(..., help="Inventory host whose lock to remove."),
    force: bool = typer.Option(
        False, "--force", help="Required: you checked the holder is dead or finished."
    ),
    inventory: Path = InventoryOption,
    state: Path = StateDirOption,
    operator: str = typer.Option(None, "--operator"),
) -> None:
    """Remove a stale lock from a host (journaled as its own run).

    Example: drp unlock db1 --force
    """
    if not force:
        raise InputError(
            "unlock removes another run's lock: pass --force once you have "
            "checked that run is dead or finished"
        )
    from drp.engine.lock import DEFAULT_LOCK_DIR, force_release, lock_become
    from drp.transport.command import wrap_become
    from drp.transport.ssh import SshTransport

    inv = open_inventory(inventory)
    target = inv.get(host)
    who = operator or default_operator()
    password = host_passwords(inv).get(host) or become_password(ask=False)
    run_id = new_run_id("unlock")
    writer = JournalWriter.create(run_dir(state_dir(state), run_id), who)
    transport = SshTransport(target, sudo_password=password)

    root = lock_become(target)

    def on_host(command: str) -> CommandResult:  # as runs take the lock: root, through sudo
        line, stdin = command, None
        if root is not None and target.user != root.user:
            line, stdin = wrap_become(command, root, password)
        return transport.run(line, timeout=30, stdin=stdin)

    outcome = "failed"
    try:
        writer.append(
            Event(
                EventType.RUN_STARTED,
                run_id,
                data={
                    "runbook": "unlock",
                    "targets": [host],
                    "inventory": inv.path,
                    "inventory_sha256": inv.sha256,
                    "command_line": shlex.join(["drp", *sys.argv[1:]]),
                },
            )
        )
        transport.connect()
        lock_dir = str(target.vars.get("drp_lock_dir", DEFAULT_LOCK_DIR))
        try:
            previous = force_release(on_host, host, lock_dir)
        except LockedError as exc:
            writer.append(
                Event(EventType.LOCK_FORCED, run_id, host=host, outcome="failed", message=str(exc))
            )
            raise
        held = previous.describe() if previous else "nobody"
        writer.append(
            Event(
                EventType.LOCK_FORCED,
                run_id,
                host=host,
                outcome="ok",
                message=f"lock removed (was held by {held})",
                data={"holder": previous.run_id if previous else None},
            )
        )
        outcome = "ok"
        typer.echo(f"{host}: lock removed (was held by {held}); journaled as {run_id}")
    finally:
        writer.append(
            Event(EventType.RUN_FINISHED, run_id, outcome=outcome, data={"hosts": {host: outcome}})
        )
        transport.close()
        writer.close()


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
    app.command("unlock")(unlock)
