"""Appending events to a run's journal: one fsynced, hash-chained line per event.

:meth:`JournalWriter.append` returns only once the record is on disk (``flush`` +
``os.fsync``), so the engine can emit an event *before* the side effect it
announces: the journal is the checkpoint and the audit log.

Two exceptions, records that say what already happened and that no action waits
on: ``step.attempt`` (the result of a command that already ran) and ``step.finished``
are flushed but their fsync is left to the next record, which always comes before
the next command with side effects (``step.started``, ``rollback.started``), before
a person is asked (``step.waiting``), and before the host or the run ends
(``host.finished``, ``run.finished``); only read-only ``verify`` and guard commands
may run in between. A crash (of the machine: a killed process loses nothing
written) in that window leaves the step *in doubt*, exactly as a crash during its
command does, and resume asks about it or runs its guard. It leaves one fsync per
step, the ``step.started`` before the command acts.

Hosts run in parallel threads, and their records share fsyncs (group commit,
see :meth:`JournalWriter._sync_through`): the guarantee per record is the same,
the disk is asked far fewer times.

One process at a time writes a run's journal. The writer holds a non-blocking
``fcntl.flock`` on ``<run dir>/.lock`` and writes its holder (pid, operator, start
time) into that file; a second writer gets :class:`LockedError` naming the holder.

On :meth:`JournalWriter.open_existing` (resume), a torn last line left by a crash
is copied to ``events.jsonl.torn-<timestamp>`` and cut from the journal, so the
chain continues from the last valid record; :attr:`JournalWriter.warnings` says so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from drp.engine.events import Event, EventType
from drp.errors import JournalError, LockedError
from drp.journal.checkpoint import Checked, Checkpoint, write_checkpoint
from drp.journal.paths import (
    EVENTS,
    LOCK,
    PRIVATE_FILE,
    check_private,
    make_run_dir,
    validate_run_id,
)
from drp.journal.reader import Journal, parse_bytes, verify
from drp.journal.record import GENESIS, Record, build_record, dump_line, format_ts
from drp.journal.state import Fold

_LOCK_TRIES = 5
Seen = tuple[bytes, Journal]  # a journal's bytes as read, and their parse
#: Records whose fsync is the next record's (see above); the store's replicator holds
#: them back likewise.
FSYNCED_WITH_NEXT = frozenset({EventType.STEP_ATTEMPT, EventType.STEP_FINISHED})


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run's journal lock, as written in its lock file."""

    pid: int | None
    operator: str
    started: str

    def __str__(self) -> str:
        pid = self.pid if self.pid is not None else "?"
        return f"pid {pid} ({self.operator or 'unknown operator'}, since {self.started or '?'})"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> LockHolder:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict):
        info = {}
    pid = info.get("pid")
    return LockHolder(
        pid if isinstance(pid, int) else None,
        str(info.get("operator", "")),
        str(info.get("started", "")),
    )


def empty_journal(run_directory: Path) -> JournalError:
    """The error for a journal without a record (an older drp killed before its first one)."""
    return JournalError(
        f"the journal of run {run_directory.name} is empty: the drp that started it stopped "
        f"before writing its first record, so nothing ran. Start a new run (and remove "
        f"{run_directory})"
    )


def _open(path: Path, flags: int) -> int:
    """Open a file of the state directory, never through a symbolic link (``O_NOFOLLOW``)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise JournalError(
                f"{path} is a symbolic link: drp does not follow links in its state directory "
                "(someone may have planted it; check, remove it, and try again)"
            ) from None
        raise


def lock_holder(run_directory: Path) -> LockHolder | None:
    """The holder of the run's lock if a live process holds it, else ``None``."""
    path = run_directory / LOCK
    try:
        fd = _open(path, os.O_RDONLY)
    except (OSError, JournalError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _acquire(run_directory: Path, operator: str) -> int:
    fd = _open(run_directory / LOCK, os.O_RDWR | os.O_CREAT)
    for attempt in range(_LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == _LOCK_TRIES - 1:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockedError(
                    f"run {run_directory.name} is being written by {holder}"
                ) from None
            time.sleep(0.02)  # a reader probing the lock holds it for microseconds
    info = {"pid": os.getpid(), "operator": operator, "started": format_ts(datetime.now(UTC))}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
    return fd


def _create_private(path: Path) -> IO[bytes]:
    """A new file, readable by its owner only (:class:`FileExistsError` if there is one)."""
    return os.fdopen(_open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb")


RUNBOOK_COPY = "runbook.yaml"  # the runbook as the run last ran it, beside its journal


def keep_runbook(run_directory: Path, text: bytes) -> None:
    """Keep the runbook's text as this session runs it (``RUN_DIR/runbook.yaml``, 0600).

    A later resume shows what changed since (a diff, not only a sha256). Written under
    a temporary name and renamed into place: never through a planted link, never torn.
    """
    temporary = run_directory / f".{RUNBOOK_COPY}.{os.getpid()}"
    with _create_private(temporary) as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, run_directory / RUNBOOK_COPY)


def kept_runbook(run_directory: Path) -> bytes | None:
    """The runbook as the run last ran it; ``None`` for a run from before drp kept it."""
    try:
        fd = _open(run_directory / RUNBOOK_COPY, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


@dataclass(frozen=True)
class _Tail:
    """What :func:`_repair_tail` found: the head, the warnings, the bytes kept, and whether
    the file still held exactly the bytes the caller had read (``seen``)."""

    seq: int
    hash: str
    warnings: list[str]
    kept: bytes
    unchanged: bool


def _repair_tail(path: Path, seen: Seen | Checked | None) -> _Tail:
    """Cut a torn last line aside; return the head of the chain, and what was kept.

    Only a last line without its newline is torn (see :mod:`drp.journal.reader`).
    Any other bad line, the last complete one included, is damage: nothing is
    moved or cut, the journal is left as evidence and :class:`JournalError` says
    where. ``seen``: the bytes the caller read and parsed (or read through their
    checkpoint, then only the records after it were parsed and chain-checked) before
    taking the lock; when the file still holds exactly those bytes, they are not parsed
    again.
    """
    with os.fdopen(_open(path, os.O_RDONLY), "rb") as handle:
        content = handle.read()
    checked = seen if isinstance(seen, Checked) else None
    parsed = seen if not isinstance(seen, Checked) else None
    if checked is not None:
        unchanged = checked.content == content
    else:
        unchanged = parsed is not None and parsed[0] == content
    if checked is not None and unchanged:
        journal = checked.tail
        result = verify(
            journal,
            prev=checked.checkpoint.hash,
            seq=checked.checkpoint.seq + 1,
            run=checked.checkpoint.run,
        )
    else:
        checked = None
        journal = parsed[1] if parsed is not None and unchanged else parse_bytes(path, content)
        result = verify(journal)
    warnings: list[str] = []
    if not result.ok:
        raise JournalError(
            f"journal {path} is damaged, refusing to append: {result} "
            f"(see 'drp log verify {path.parent.name}')"
        )
    keep = len(content)
    if journal.torn is not None:
        torn = journal.torn.raw
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = path.with_name(f"{path.name}.torn-{stamp}")
        with _create_private(aside) as handle:
            handle.write(torn)
            handle.flush()
            os.fsync(handle.fileno())
        keep = len(content) - len(torn)
        fd = _open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, keep)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
        warnings.append(
            f"{path}: torn last line ({len(torn)} bytes, {journal.torn.reason}) "
            f"moved aside to {aside.name}"
        )
    kept = content[:keep]
    if checked is not None:
        seq, digest, _run = checked.head
        return _Tail(seq, digest, warnings, kept, unchanged)
    if not journal.records:
        return _Tail(0, GENESIS, warnings, kept, unchanged)
    last = journal.records[-1]
    return _Tail(last.seq, last.hash, warnings, kept, unchanged)


class JournalWriter:
    """Appends events to ``<run dir>/events.jsonl``; thread-safe; holds the run's lock."""

    def __init__(
        self,
        run_directory: Path,
        operator: str,
        *,
        lock_fd: int,
        handle: IO[bytes],
        seq: int,
        last_hash: str,
        warnings: list[str],
        pending: Path | None = None,
        fold: Fold | None = None,
        kept: bytes = b"",
        digest: Any = None,
    ) -> None:
        self.run_dir = run_directory
        self.run_id = run_directory.name
        self.operator = operator
        self.path = run_directory / EVENTS
        self._lock_fd: int | None = lock_fd
        self._handle = handle
        self._seq = seq
        self._prev = last_hash
        self._mutex = threading.Lock()  # guards the file, seq and hash chain
        self._sync = threading.Lock()  # one fsync at a time (taken before _mutex)
        self._synced = seq  # the last record known to be on disk
        self.warnings: tuple[str, ...] = tuple(warnings)
        # a new journal is written under this name until its first record is on disk,
        # then renamed: no events.jsonl is ever empty (see _publish)
        self._pending = pending
        # called with each record once appended (the store's replicator); must not raise
        self.on_append: Callable[[dict[str, Any]], None] | None = None
        # the checkpoint written at close (drp.journal.checkpoint): the fold of every
        # record of the file, its length and SHA-256; None: this writer keeps none
        self._fold = fold
        self._length = len(kept)
        self._digest = digest if digest is not None else hashlib.sha256(kept)

    @classmethod
    def create(cls, run_directory: Path, operator: str) -> JournalWriter:
        """Start the journal of a new run; :class:`JournalError` if it already exists."""
        validate_run_id(run_directory.name)
        make_run_dir(run_directory)
        lock_fd = _acquire(run_directory, operator)
        final = run_directory / EVENTS
        pending = run_directory / f".{EVENTS}.new"
        try:
            if os.path.lexists(final):
                raise FileExistsError(final)
            with contextlib.suppress(FileNotFoundError):
                pending.unlink()  # left by a drp killed before its first record (we hold the lock)
            handle = _create_private(pending)
        except FileExistsError:
            os.close(lock_fd)
            raise JournalError(
                f"run {run_directory.name} already has a journal: resume it instead"
            ) from None
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(
            run_directory,
            operator,
            lock_fd=lock_fd,
            handle=handle,
            seq=0,
            last_hash=GENESIS,
            warnings=[],
            pending=pending,
            fold=Fold(),
        )

    def _publish(self) -> None:
        """Give the new journal its name, now that its first record is on disk.

        ``link`` (not ``rename``) never replaces a journal that appeared meanwhile.
        """
        assert self._pending is not None
        try:
            os.fsync(self._handle.fileno())
            os.link(self._pending, self.path, follow_symlinks=False)
            os.unlink(self._pending)
            _fsync_dir(self.run_dir)
            _fsync_dir(self.run_dir.parent)
        except OSError as err:
            raise JournalError(f"cannot create journal {self.path}: {err}") from None
        self._pending = None
        self._synced = self._seq

    @classmethod
    def open_existing(
        cls,
        run_directory: Path,
        operator: str,
        *,
        seen: Seen | Checked | None = None,
        fold: Fold | None = None,
    ) -> JournalWriter:
        """Reopen a run's journal to append (resume), repairing a torn last line.

        ``seen``: (bytes, their parse) of the journal as the caller read it, or the
        journal read through its checkpoint; a long journal is then parsed once, not
        twice (it is still verified here, under the lock, and parsed again if it changed
        in between). ``fold``: the caller's fold of the ``seen`` records, so that this
        writer keeps the checkpoint at close (used only if the file did not change)."""
        validate_run_id(run_directory.name)
        check_private(run_directory)
        path = run_directory / EVENTS
        if not os.path.lexists(path):
            raise JournalError(f"no journal at {path}")
        lock_fd = _acquire(run_directory, operator)
        try:
            tail = _repair_tail(path, seen)
            if tail.seq == 0:
                raise empty_journal(run_directory)
            handle = os.fdopen(_open(path, os.O_WRONLY | os.O_APPEND), "ab")
        except BaseException:
            os.close(lock_fd)
            raise
        digest = None
        if isinstance(seen, Checked):
            fold = seen.fold
            if len(tail.kept) == len(seen.content):
                digest = seen.digest.copy()
        return cls(
            run_directory,
            operator,
            lock_fd=lock_fd,
            handle=handle,
            seq=tail.seq,
            last_hash=tail.hash,
            warnings=tail.warnings,
            fold=fold if tail.unchanged else None,
            kept=tail.kept,
            digest=digest,
        )

    @property
    def seq(self) -> int:
        """Sequence number of the last record written (0 when none)."""
        return self._seq

    def append(self, event: Event) -> dict[str, Any]:
        """Write ``event`` as the next record, fsync it (see above), return the stored dict."""
        with self._mutex:
            if self._lock_fd is None:
                raise JournalError(f"journal of run {self.run_id} is closed")
            if event.run_id != self.run_id:
                raise JournalError(
                    f"event for run {event.run_id!r} sent to the journal of {self.run_id}"
                )
            record = build_record(event, seq=self._seq + 1, operator=self.operator, prev=self._prev)
            data = (dump_line(record) + "\n").encode("utf-8")
            try:
                self._handle.write(data)
                self._handle.flush()
            except OSError as err:
                self._fold = None  # what reached the file is unknown: no checkpoint
                raise JournalError(f"cannot write journal {self.path}: {err}") from None
            self._seq = record["seq"]
            self._prev = record["hash"]
            if self._fold is not None:
                self._fold.feed(Record.from_dict(record))
                self._digest.update(data)
                self._length += len(data)
            if self._pending is not None:
                self._publish()
        if event.type not in FSYNCED_WITH_NEXT:
            self._sync_through(record["seq"])
        if self.on_append is not None:
            self.on_append(record)
        return record

    def _sync_through(self, seq: int) -> None:
        """Return once record ``seq`` is on disk: group commit.

        One fsync makes durable every record written before it. While one host's
        thread waits for the disk, the others write their records; the next fsync
        covers them all, and a thread whose record is already covered returns at
        once. With 20 hosts this turns hundreds of serialized fsyncs into a few
        dozen, with the same guarantee for every record.
        """
        with self._sync:
            if self._synced >= seq:
                return
            with self._mutex:
                if self._lock_fd is None:
                    raise JournalError(f"journal of run {self.run_id} is closed")
                target, fd = self._seq, self._handle.fileno()
            try:
                os.fsync(fd)
            except OSError as err:
                raise JournalError(f"cannot write journal {self.path}: {err}") from None
            self._synced = target

    __call__ = append  # a writer is an event sink

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record, once it is on disk: what a witness may state."""
        with self._mutex:
            seq, digest = self._seq, self._prev
        if seq:
            self._sync_through(seq)
        return seq, digest

    def close(self) -> None:
        """Close the file and release the lock (idempotent)."""
        with self._sync, self._mutex:
            if self._lock_fd is None:
                return
            synced = False
            with contextlib.suppress(OSError):
                os.fsync(self._handle.fileno())
                synced = True
                self._handle.close()
            if self._pending is not None:  # not one record: no journal, no run
                with contextlib.suppress(OSError):
                    self._pending.unlink()
            elif synced and self._fold is not None and self._seq > 0:
                self._keep_checkpoint(self._fold)
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _keep_checkpoint(self, fold: Fold) -> None:
        """Write the checkpoint of the journal as this session leaves it (lock held)."""
        checkpoint = Checkpoint(
            self.run_id,
            self._length,
            self._digest.hexdigest(),
            self._seq,
            self._prev,
            fold.to_json(),
        )
        write_checkpoint(self.run_dir, checkpoint)

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
