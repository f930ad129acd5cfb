"""Commands that continue or clean up after a run: ``resume`` and ``unlock``.

``resume`` rebuilds the run's plan from its journal (same runbook, unless
``--allow-changed``; same targets and params, secrets asked again), tells the
engine which steps are done or in doubt on each host, and appends to the same
journal. ``unlock`` removes a stale host lock and journals that as its own run.
"""

from __future__ import annotations

import difflib
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from drp.cli.anchoring import AllowedSignersOption, Anchoring, SignKeyOption
from drp.cli.common import (
    IncidentOption,
    InventoryOption,
    ParamOption,
    StateDirOption,
    as_root,
    gather_params,
    incident_given,
    open_inventory,
)
from drp.cli.run import (
    AskConsolePassOption,
    FormatOption,
    Output,
    become_password,
    console_login_password,
    execute_plan,
    exit_with_status,
    host_passwords,
    known_secrets,
    notify_settings,
    say,
    warn_secret_params,
    with_channel_secrets,
)
from drp.cli.store import (
    StoreOption,
    resolve_with_store,
    take_lease,
)
from drp.engine.events import Event, EventType
from drp.engine.options import HostResume, InDoubtPolicy, RunOptions, default_operator
from drp.errors import InputError, JournalError, LockedError
from drp.journal import (
    Journal,
    JournalWriter,
    RunState,
    journal_path,
    lock_holder,
    new_run_id,
    run_dir,
    state_dir,
)
from drp.journal.anchors import require_witnessed
from drp.journal.checkpoint import Checked, read_checked
from drp.journal.reader import parse_bytes, read_bytes
from drp.journal.state import Fold
from drp.journal.store.config import store_password, store_url
from drp.journal.writer import Seen, empty_journal, keep_runbook, kept_runbook
from drp.results import RunStatus

if TYPE_CHECKING:
    from drp.engine.plan import Plan
    from drp.runbook.loader import Runbook


def _load_for_resume(run_state: RunState) -> Runbook:
    from drp.runbook.loader import load_runbook

    path = Path(run_state.runbook_path)
    if not path.is_file():
        raise JournalError(f"the runbook of run {run_state.run_id} is gone: {path}")
    return load_runbook(path)


def _changes(run_state: RunState, plan: Plan) -> list[str]:
    """What differs from the inputs the run last ran with: the runbook, each param, each
    target host's settings (key by key; only the file's sha256 for a journal without them)."""
    from drp.engine.executor import journaled_hosts
    from drp.engine.inputs import differences

    book = plan.runbook
    changed = []
    if book.sha256 != run_state.runbook_sha256:
        changed.append(
            f"runbook {book.name}: sha256 {run_state.runbook_sha256[:12]}… → {book.sha256[:12]}…"
        )
    changed += differences("param ", run_state.params, plan.params.masked())
    if run_state.host_settings:
        now = journaled_hosts(plan)
        for host in sorted(set(run_state.host_settings) | set(now)):
            old, new = run_state.host_settings.get(host, {}), now.get(host, {})
            changed += differences(f"inventory host {host} ", old, new)
    elif run_state.inventory_sha256 and run_state.inventory_sha256 != plan.inventory.sha256:
        changed.append(
            f"inventory {plan.inventory.path}: sha256 {run_state.inventory_sha256[:12]}… → "
            f"{plan.inventory.sha256[:12]}…"
        )
    return changed


def _refuse_changes(run_id: str, changed: list[str], diff: str) -> None:
    raise JournalError(
        f"the inputs changed since run {run_id} last ran: "
        + "; ".join(changed)
        + ". Review the change; resume anyway with --allow-changed (the difference is "
        "recorded in the journal)." + (f"\n{diff}" if diff else "")
    )


MAX_DIFF_LINES = 40


def _runbook_diff(directory: Path, run_state: RunState, book: Runbook) -> str:
    """The runbook's change since the run last ran it, as a unified diff (its main file;
    an included file that changed shows in the sha256 only). Empty when unchanged, or for
    a run from before drp kept the copy."""
    old = kept_runbook(directory)
    if old is None or book.sha256 == run_state.runbook_sha256:
        return ""
    lines = list(
        difflib.unified_diff(
            old.decode("utf-8", errors="replace").splitlines(),
            Path(book.path).read_text(encoding="utf-8", errors="replace").splitlines(),
            "as the run last ran it",
            book.path,
            lineterm="",
            n=1,
        )
    )
    if not lines:
        return f"(the main file is unchanged: an included file of {book.name} changed)"
    more = len(lines) - MAX_DIFF_LINES
    return "\n".join(lines[:MAX_DIFF_LINES] + ([f"… {more} more lines"] if more > 0 else []))


def _same_incident(run_id: str, has: str, given: str | None, from_env: bool) -> None:
    """A run belongs to one incident: a resume may add it to one, never move it."""
    if given is None or not has or given == has:
        return
    where = "$DRP_INCIDENT" if from_env else "--incident"
    raise InputError(
        f"{where}: run {run_id} belongs to incident {has!r}, not {given!r}; "
        f"resume it with --incident {has}"
        + (" (the flag wins over $DRP_INCIDENT)" if from_env else "")
    )


def _read_for_resume(
    folder: Path, directory: Path, *, checkpoint: bool
) -> tuple[Seen | Checked, Journal, RunState, Fold | None]:
    """The journal as read (its bytes and parse, or its bytes read through the run's
    checkpoint: then the journal returned is the tail after it), its fold, and the fold
    for the writer to go on with; refused when empty, cut (the index witness disagrees:
    resuming would redo the cut steps) or finished ok."""
    path = journal_path(directory)
    content = read_bytes(path)
    locked = lock_holder(directory) is not None
    checked = read_checked(path, content) if checkpoint else None
    if checked is not None:
        hash_at, have = checked.hash_at(), checked.records
        require_witnessed(checked.tail, directory, folder, hash_at=hash_at, have=have)
        run_state = checked.fold.state(locked=locked)
        seen: Seen | Checked = checked
        journal, fold = checked.tail, None
    else:
        journal = parse_bytes(path, content)
        if not journal.records:
            raise empty_journal(directory)
        require_witnessed(journal, directory, folder)
        fold = Fold()
        for record in journal.records:
            fold.feed(record)
        run_state = fold.state(locked=locked)
        seen = (content, journal)
    if run_state.status is RunStatus.OK:
        raise JournalError(f"run {directory.name} finished ok; nothing to resume")
    return seen, journal, run_state, fold


def host_resumes(plan: Plan, run_state: RunState) -> dict[str, HostResume]:
    """What the journal says each host of the plan already did, for the engine."""
    return {
        h.name: HostResume(
            done=frozenset(run_state.done_steps(h.name)),
            in_doubt=frozenset(run_state.in_doubt(h.name)),
            acted=frozenset(run_state.acted_steps(h.name)),
            captures=run_state.captures(h.name),
        )
        for h in plan.hosts
    }


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
    kill_in_doubt: bool = typer.Option(
        False,
        "--kill-in-doubt",
        help="Kill an earlier attempt still running on a host instead of waiting for it.",
    ),
    allow_changed: bool = typer.Option(
        False,
        "--allow-changed",
        help="Resume although the runbook, params or inventory changed (journaled).",
    ),
    param: list[str] = ParamOption,
    inventory: Path = InventoryOption,
    operator: str = typer.Option(None, "--operator", help="Who resumes (default user@host)."),
    ask_become_pass: bool = typer.Option(
        False,
        "--ask-become-pass",
        "-K",
        help="Prompt for the sudo password (or set DRP_BECOME_PASSWORD).",
    ),
    ask_console_pass: bool = AskConsolePassOption,
    incident: str = IncidentOption,
    state: Path = StateDirOption,
    fmt: str = FormatOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the summary."),
    sign_key: str = SignKeyOption,
    store: str = StoreOption,
    allowed_signers: Path = AllowedSignersOption,
) -> None:
    """Continue an interrupted or paused run where it stopped; done steps are not run again.

    With a store, a run this machine does not have is fetched from it (hand-over), and
    the run's lease in the store keeps a second operator from driving it at once.

    Example: drp resume 20261121-234112-disk-replace-7f3a --approve datacenter-swap

    Example: drp resume latest --incident 2019-09-disk (adds the run to that incident)

    Example: drp resume 20261121-234112-disk-replace-7f3a --store postgresql://drp@db/drp
    """
    tag = incident_given(incident)
    if retry_in_doubt and skip_in_doubt:
        raise InputError("--retry-in-doubt and --skip-in-doubt exclude each other")
    folder = state_dir(state)
    url = store_url(store)
    the_id = resolve_with_store(url, folder, run_id)
    directory = run_dir(folder, the_id)
    # the checkpoint spares verifying a long journal again; with a store, the lease
    # compares the whole journal with the store's copy, so it is read whole
    seen, journal, run_state, fold = _read_for_resume(folder, directory, checkpoint=url is None)
    _same_incident(the_id, run_state.incident, tag, incident is None)
    anchoring = Anchoring.resolve(folder, sign_key)
    book = _load_for_resume(run_state)
    inv = open_inventory(inventory or Path(run_state.inventory))
    from drp.redact import MASK

    base = {k: v for k, v in run_state.params.items() if v != MASK and v is not None}
    from drp.engine.executor import journaled_hosts
    from drp.engine.plan import build_plan

    warn_secret_params(book, param)
    password = become_password(ask_become_pass)
    console_pw = console_login_password(ask_console_pass)
    values = gather_params(book, param, None, inv, base=base)
    the_plan = build_plan(
        book,
        inv,
        values,
        targets=",".join(run_state.targets),
        extra_secrets=known_secrets(inv, password, console_pw, store_password(url)),
    )
    notify = notify_settings(book)
    the_plan = with_channel_secrets(the_plan, notify)
    changed = _changes(run_state, the_plan)
    if changed and not allow_changed:
        _refuse_changes(the_id, changed, _runbook_diff(directory, run_state, book))
    policy: InDoubtPolicy = "retry" if retry_in_doubt else "skip" if skip_in_doubt else "ask"
    options = RunOptions(
        run_id=the_id,
        operator=operator or default_operator(),
        yes=yes,
        approve=frozenset(approve or []),
        in_doubt=policy,
        kill_in_doubt=kill_in_doubt,
        sudo_password=password,
        host_sudo_passwords=host_passwords(inv),
        console_password=console_pw,
        command_line=shlex.join(["drp", *sys.argv[1:]]),
        output_dir=str(directory / "output"),
    )
    from drp.cli.approve import with_approvals

    options = with_approvals(the_plan, options, directory, url, anchoring, allowed_signers)
    hosts = host_resumes(the_plan, run_state)
    writer = JournalWriter.open_existing(directory, options.operator, seen=seen, fold=fold)
    if writer.seq != run_state.last_seq:  # another session wrote while we got ready
        writer.close()
        raise LockedError(
            f"run {the_id} changed while this resume got ready (another drp resumed it): "
            f"check 'drp log show {the_id}' and resume again"
        )
    lease = take_lease(url, writer, journal)
    for warning in [*journal.warnings, *writer.warnings]:
        say(f"warning: {warning}\n")
    if book.sha256 != run_state.runbook_sha256:  # allowed: the next diff starts from this one
        keep_runbook(directory, Path(book.path).read_bytes())
    extra: dict[str, object] = {
        "allow_changed": allow_changed,
        "changes": changed,
        "approvals": sorted(approve or []),
        "runbook_sha256": book.sha256,
        "in_doubt": policy,
        "kill_in_doubt": kill_in_doubt,
        # what this session runs with: the params may differ (--param), the inventory too
        "params": the_plan.params.masked(),
        "inventory": os.path.abspath(inv.path),
        "inventory_sha256": inv.sha256,
        "hosts": journaled_hosts(the_plan),
        **({"incident": tag} if tag else {}),
        **({"handover": lease.handover} if lease.handover else {}),
    }
    exit_with_status(
        execute_plan(
            the_plan,
            options,
            writer,
            Output(fmt, quiet),
            resume=hosts,
            resumed=True,
            extra=extra,
            anchoring=anchoring,
            notify=notify,
            store=url,
            holder=lease.holder,
        )
    )


def unlock(
    host: str = typer.Argument(..., help="Inventory host whose lock to remove."),
    force: bool = typer.Option(
        False, "--force", help="Required: you checked the holder is dead or finished."
    ),
    inventory: Path = InventoryOption,
    state: Path = StateDirOption,
    operator: str = typer.Option(
        None, "--operator", help="Who unlocks, for the journal (default user@host)."
    ),
    sign_key: str = SignKeyOption,
) -> None:
    """Remove a stale lock from a host (journaled as its own run).

    Example: drp unlock db1 --force
    """
    if not force:
        raise InputError(
            "unlock removes another run's lock: pass --force once you have "
            "checked that run is dead or finished"
        )
    from drp.engine.lock import DEFAULT_LOCK_DIR, force_release
    from drp.transport.ssh import SshTransport

    inv = open_inventory(inventory)
    target = inv.get(host)
    who = operator or default_operator()
    password = host_passwords(inv).get(host) or become_password(ask=False)
    anchoring = Anchoring.resolve(state_dir(state), sign_key)
    run_id = new_run_id("unlock")
    writer = JournalWriter.create(run_dir(state_dir(state), run_id), who)
    transport = SshTransport(target, sudo_password=password)
    on_host = as_root(transport, target, password)  # as runs take the lock

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
                    **anchoring.facts(),
                },
            )
        )
        anchoring.started(writer)
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
        anchoring.ended(writer)
        transport.close()
        writer.close()


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
    app.command("unlock")(unlock)
