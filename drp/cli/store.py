"""``drp store``: the team's shared journal store (init, sync), and its use by run/resume.

The commands ``init`` and ``sync`` print; the helpers below let ``run`` and ``resume``
replicate their journal (:func:`start_replication`, :func:`end_replication`), fetch a
run the local state directory lacks (:func:`resolve_with_store`) and take the run's
lease (:func:`take_lease`). A store that does not answer never stops a run: it is
said on the console, and ``drp store sync`` sends what is behind later.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from drp.cli.common import StateDirOption, listing_console
from drp.engine.events import Event, EventType, Sink
from drp.errors import ExitCode, InputError, JournalError
from drp.journal import journal_path, list_run_ids, resolve_run, run_dir, state_dir
from drp.journal.store.config import ENV_STORE, masked, store_url

if TYPE_CHECKING:
    from drp.journal import Journal, JournalWriter
    from drp.journal.store.lease import Holder
    from drp.journal.store.replicator import Replicator, Watcher

STORE_HELP = (
    f"PostgreSQL URL of the team's journal store (else ${ENV_STORE}, else 'store:' in "
    "~/.config/drp/config.yaml)."
)
StoreOption = typer.Option(None, "--store", help=STORE_HELP, show_default=False)
StoreArg = Annotated[str | None, typer.Option("--store", help=STORE_HELP, show_default=False)]

app = typer.Typer(
    name="store",
    help="The team's shared journal store (PostgreSQL): set it up, send it what is behind.",
    no_args_is_help=True,
)


def _say(text: str) -> None:
    from drp.cli.run import say

    say(text)


def required_url(flag: str | None) -> str:
    url = store_url(flag)
    if url is None:
        raise InputError(
            f"no store: pass --store URL, set ${ENV_STORE}, or put 'store: URL' in "
            "~/.config/drp/config.yaml (e.g. postgresql://drp@db.example.net/drp)"
        )
    return url


@app.command("init")
def init_cmd(store: StoreArg = None) -> None:
    """Create the store's tables (schema drp: runs, records, leases, approvals); safe to run again.

    The SQL is drp/journal/store/schema.sql, shipped with drp (psql -f works too).

    Example: drp store init --store postgresql://drp@db.example.net/drp
    """
    from drp.journal.store.db import connect, errors_of, init_schema

    url = required_url(store)
    with connect(url) as conn, errors_of(url):
        init_schema(conn)
    listing_console().print(f"store ready: {escape(masked(url))} (schema drp)")


@app.command("sync")
def sync_cmd(
    runs: Annotated[list[str] | None, typer.Argument(help="Runs (default: every run).")] = None,
    store: StoreArg = None,
    state: Path = StateDirOption,
) -> None:
    """Send the store the records it lacks of local runs (idempotent: run it any time).

    Example: drp store sync 20261121-234112-disk-replace-7f3a

    Example: drp store sync (every run of this state directory)
    """
    from drp.journal.store.db import StoreError, connect, errors_of
    from drp.journal.store.sync import local_lines, sync_run

    url = required_url(store)
    folder = state_dir(state)
    ids = [resolve_run(folder, r) for r in runs] if runs else list_run_ids(folder)
    console = listing_console()
    failed = 0
    with connect(url) as conn:
        for run_id in ids:
            try:
                with errors_of(url):
                    lines = local_lines(journal_path(run_dir(folder, run_id)))
                    sent = sync_run(conn, run_id, lines)
            except (StoreError, JournalError) as err:
                failed += 1
                console.print(f"[red]FAILED[/] {escape(run_id)}: {escape(str(err))}")
                continue
            said = f"{sent} records sent" if sent else "up to date"
            console.print(f"{escape(run_id)}: {said}")
    if not ids:
        console.print(f"no runs in {escape(str(folder))}")
    if failed:
        raise typer.Exit(int(ExitCode.JOURNAL))


# -- for run and resume --------------------------------------------------------------
def start_replication(
    url: str | None, writer: JournalWriter, holder: Holder | None = None
) -> Replicator | None:
    """Replicate ``writer``'s journal to the store at ``url`` (``None``: no store). Without
    a ``holder`` (its lease already taken), the replicator takes the lease itself."""
    if url is None:
        return None
    from drp.journal.store.lease import Holder
    from drp.journal.store.replicator import Replicator

    me = holder or Holder.me(writer.operator)
    replica = Replicator(url, writer.run_id, writer.path, me, take_lease=holder is None)
    writer.on_append = replica.enqueue
    return replica.start()


def store_watcher(run_id: str, emit: Sink) -> Watcher:
    """What the replicator tells of the store's outages, as events for the console and
    the notifiers (transient: the journal is the run's, not the store's)."""

    def told(down: bool, problem: str, waiting: int) -> None:
        if down:
            emit(
                Event(
                    EventType.STORE_BEHIND,
                    run_id,
                    message=f"the journal store does not answer ({problem}); {waiting} records "
                    "wait here and go once it does: the run goes on",
                    data={"waiting": waiting, "problem": problem},
                    transient=True,
                )
            )
        else:
            emit(
                Event(
                    EventType.STORE_CAUGHT_UP,
                    run_id,
                    message="the journal store answers again: the records that waited are sent",
                    transient=True,
                )
            )

    return told


def end_replication(replica: Replicator | None) -> None:
    """Wait a short bound for the store, and say when it is behind."""
    if replica is None:
        return
    end = replica.finish()
    if end.diverged:
        _say(f"store: {end.diverged}; replication stopped\n")
    elif end.behind:
        why = f" ({end.problem})" if end.problem else ""
        _say(
            f"store: {end.behind} records not yet replicated; `drp store sync` will send "
            f"them{why}\n"
        )
    elif end.problem:
        _say(f"store: {end.problem}\n")


def resolve_with_store(url: str | None, folder: Path, text: str) -> str:
    """The run ``text`` names in the state directory; if it has none and a store is given,
    the run's journal is fetched from the store first (its chain verified)."""
    try:
        return resolve_run(folder, text)
    except InputError:
        if url is None:
            raise
    from drp.journal.store.db import connect, errors_of
    from drp.journal.store.sync import fetch_into, resolve

    with connect(url) as conn, errors_of(url):
        run_id = resolve(conn, text)
        journal = fetch_into(conn, run_id, run_dir(folder, run_id))
    _say(
        f"fetched run {run_id} from the store: {len(journal.records)} records, "
        f"chain verified, into {run_dir(folder, run_id)}\n"
    )
    return run_id


@dataclass(frozen=True)
class Lease:
    """The lease this session took (``holder`` None: the store did not answer), and the
    hand-over it makes, as journaled (empty when the same operator and machine go on)."""

    holder: Holder | None
    handover: dict[str, object]


def take_lease(url: str | None, writer: JournalWriter, journal: Journal) -> Lease:
    """Take the run's lease for this session (no store: none); when another session holds
    it, close ``writer`` and raise :class:`LeaseHeld` (exit 7, naming the holder); when the
    store's copy of the run went past the local journal (resumed elsewhere since), or
    differs from it, close ``writer`` and raise (exit 6) before anything runs.

    A store that does not answer is said, and the session goes on without a lease (the
    replicator takes it once the store answers).
    """
    from drp.journal.store.db import StoreDiverges, StoreError, connect, errors_of
    from drp.journal.store.lease import Holder, LeaseHeld, release, take
    from drp.journal.store.sync import StoreAhead, check_current

    if url is None:
        return Lease(None, {})
    me = Holder.me(writer.operator)
    try:
        with connect(url) as conn, errors_of(url):
            before = take(conn, writer.run_id, me)
            try:
                check_current(conn, journal, writer.run_dir)
            except JournalError:
                release(conn, writer.run_id, me)
                raise
    except (LeaseHeld, StoreAhead, StoreDiverges):
        writer.close()
        raise
    except StoreError as err:
        _say(f"store: {err}; going on without a lease on the run\n")
        return Lease(None, {})
    last = journal.records[-1].operator if journal.records else None
    was = (before.operator, before.machine) if before else (last or "?", "?")
    if was == (me.operator, me.machine) or (before is None and was[0] == me.operator):
        return Lease(me, {})
    handover: dict[str, object] = {
        "from": {"operator": was[0], "machine": was[1]},
        "to": {"operator": me.operator, "machine": socket.gethostname()},
    }
    _say(f"hand-over: run {writer.run_id} from {was[0]} on {was[1]} to {me.operator}\n")
    return Lease(me, handover)


def read_store(url: str, text: str | None) -> list[Journal]:
    """Journals from the store: the run ``text`` names, or every run (``None``)."""
    from drp.journal.store.db import connect, errors_of, run_ids
    from drp.journal.store.sync import fetch, resolve

    with connect(url) as conn, errors_of(url):
        ids = [resolve(conn, text)] if text is not None else run_ids(conn)
        return [fetch(conn, run_id) for run_id in ids]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="store")
