"""Catching the store up with a local journal, and fetching a journal from the store.

:func:`sync_run` compares the store's records of a run with the local journal's and
pushes the missing ones (a record stored with another hash is :class:`StoreDiverges`):
what ``drp store sync`` and the start of every replicating session do. :func:`fetch`
reads a run's journal back from the store, and :func:`fetch_into` writes it into a
state directory that does not have it (hand-over), once its chain verifies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drp.errors import InputError, JournalError
from drp.journal.paths import EVENTS, PRIVATE_FILE, RUN_ID_RE, make_run_dir
from drp.journal.reader import Journal, parse_bytes, verify
from drp.journal.store.db import Line, diverges, journal_bytes, push, run_ids, stored_hashes

if TYPE_CHECKING:
    import psycopg

BATCH = 500  # records per transaction


def store_path(run_id: str) -> Path:
    """The name a journal read from the store goes by in messages."""
    return Path("store:") / run_id / EVENTS


def lines_of(journal: Journal, content: bytes) -> list[Line]:
    """The valid records of a journal read from ``content``, each as its exact line."""
    raw = content.split(b"\n")
    return [
        Line(r.seq, raw[r.line - 1].decode("utf-8"), r.hash, r.prev, r.type)
        for r in journal.records
    ]


def local_lines(path: Path) -> list[Line]:
    """The records of the local journal at ``path``, as its exact lines; JournalError if its
    chain is broken (a damaged journal is evidence to look at, not to replicate)."""
    try:
        content = path.read_bytes()
    except OSError as err:
        raise JournalError(f"cannot read journal {path}: {err.strerror}") from None
    journal = parse_bytes(path, content)
    result = verify(journal)
    if not result.ok:
        raise JournalError(f"journal {path} is damaged, not sent to the store: {result}")
    return lines_of(journal, content)


def missing(conn: psycopg.Connection[Any], run_id: str, lines: list[Line]) -> list[Line]:
    """The records of ``lines`` the store lacks; :class:`StoreDiverges` on a hash mismatch."""
    stored = stored_hashes(conn, run_id)
    for line in lines:
        theirs = stored.get(line.seq)
        if theirs is not None and theirs != line.hash:
            raise diverges(run_id, line.seq, line.hash, theirs)
    return [line for line in lines if line.seq not in stored]


class StoreAhead(JournalError):
    """The store holds records of a run that the local journal lacks: it went on elsewhere."""


def check_current(conn: psycopg.Connection[Any], journal: Journal, run_directory: Path) -> None:
    """Refuse to continue a local journal that the store's copy has gone past (the run was
    resumed on another machine since): :class:`StoreAhead`, or :class:`StoreDiverges`
    when the two differ on a record they share."""
    run_id = run_directory.name
    stored = stored_hashes(conn, run_id)
    for record in journal.records:
        theirs = stored.get(record.seq)
        if theirs is not None and theirs != record.hash:
            raise diverges(run_id, record.seq, record.hash, theirs)
    last = journal.records[-1].seq if journal.records else 0
    beyond = sorted(seq for seq in stored if seq > last)
    if beyond:
        raise StoreAhead(
            f"run {run_id} went on elsewhere: the store holds {len(beyond)} records after "
            f"seq {last}, where this machine's journal stops (up to seq {beyond[-1]}). Move "
            f"this machine's copy aside (mv {run_directory} {run_directory}.old) and resume "
            "again: the journal is then fetched from the store"
        )


def sync_run(conn: psycopg.Connection[Any], run_id: str, lines: list[Line]) -> int:
    """Push what the store lacks of ``lines``; the number of records sent."""
    todo = missing(conn, run_id, lines)
    sent = 0
    for start in range(0, len(todo), BATCH):
        sent += push(conn, run_id, todo[start : start + BATCH])
    return sent


def resolve(conn: psycopg.Connection[Any], text: str) -> str:
    """The run of the store that ``text`` names: a full id, a unique prefix, or ``latest``."""
    ids = run_ids(conn)
    if text == "latest":
        if not ids:
            raise InputError("no runs in the store")
        return ids[-1]
    if text in ids:
        return text
    matches = [i for i in ids if i.startswith(text)] if text else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InputError(f"run prefix {text!r} is ambiguous in the store: {', '.join(matches[:5])}")
    raise InputError(f"no run {text!r} in the store (see 'drp log list --store …')")


def fetch(conn: psycopg.Connection[Any], run_id: str) -> Journal:
    """The run's journal as the store holds it (parsed as a local file would be)."""
    return parse_bytes(store_path(run_id), journal_bytes(conn, run_id))


def fetch_into(conn: psycopg.Connection[Any], run_id: str, run_directory: Path) -> Journal:
    """Write the run's journal from the store into ``run_directory`` (which has none), once
    its chain verifies; JournalError if it does not, and nothing is written."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise InputError(f"the store names an invalid run id {run_id!r}")
    content = journal_bytes(conn, run_id)
    journal = parse_bytes(store_path(run_id), content)
    result = verify(journal)
    if not journal.records or not result.ok:
        raise JournalError(
            f"the store's journal of run {run_id} does not verify, not fetched: {result} "
            f"(see 'drp log verify {run_id} --store …')"
        )
    make_run_dir(run_directory)
    path = run_directory / EVENTS
    temporary = run_directory / f".{EVENTS}.fetched"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path, follow_symlinks=False)  # never replaces a journal
    except FileExistsError:
        raise JournalError(f"run {run_id} already has a journal at {path}") from None
    finally:
        os.unlink(temporary)
    return journal
