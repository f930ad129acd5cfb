"""Replicating a session's journal to the store in the background, local first.

The local writer calls :meth:`Replicator.enqueue` after each append (its
``on_append`` hook); a thread pushes the queued records to the store, first
catching up with whatever of the local journal the store lacks, and renews the
session's lease. The run never waits on it and never fails because of it: a store
that does not answer is retried with backoff (0.5 s doubling to 30 s) while the
session lives; at its end :meth:`Replicator.finish` waits a short bound and says
how many records are still behind (``drp store sync`` sends them later).

A ``step.attempt`` or ``step.finished`` record is fsynced with the record after it
(:data:`drp.journal.writer.FSYNCED_WITH_NEXT`), so it is sent only once a later
record is queued, or at the end: the store never holds a record that a crash could
take from the disk.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drp.journal.record import dump_line
from drp.journal.store.db import Line, StoreDiverges, connect, push, said
from drp.journal.store.lease import RENEW_SECONDS, Holder, LeaseHeld, release, renew, take
from drp.journal.store.sync import local_lines, missing
from drp.journal.writer import FSYNCED_WITH_NEXT

if TYPE_CHECKING:
    import psycopg

FINISH_SECONDS = 3.0  # how long the end of a session waits for the store
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 30.0

#: Told when the store stops answering (``True``, the problem, the records waiting)
#: and when it answers again (``False``, "", 0); called on the replicator's thread.
Watcher = Callable[[bool, str, int], None]


@dataclass(frozen=True)
class ReplicaEnd:
    """How replication stood when the session ended."""

    behind: int  # records of the local journal the store may not have
    problem: str = ""  # the last error met (password masked), "" when none
    diverged: str = ""  # set when the store holds other records: replication stopped


class Replicator:
    """Pushes a run's records to the store from a background thread."""

    def __init__(
        self, url: str, run_id: str, journal: Path, holder: Holder, *, take_lease: bool
    ) -> None:
        self.url = url
        self.run_id = run_id
        self.holder = holder
        self._take_lease = take_lease
        self._pending: dict[int, Line] = {}
        if journal.exists():  # a resumed run: the store may lack any of it
            self._pending = {line.seq: line for line in local_lines(journal)}
        self._cond = threading.Condition()
        self._closing = False
        self._stop = threading.Event()  # cuts a backoff short at the end of the session
        self._caught_up = False
        self._problem = ""
        self._diverged = ""
        self._thread = threading.Thread(target=self._loop, name=f"drp-store-{run_id}", daemon=True)
        self._watcher: Watcher | None = None
        self._down = False  # the last attempt failed: the watcher was told

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` when the store stops answering, and when it is back."""
        self._watcher = watcher

    def start(self) -> Replicator:
        self._thread.start()
        return self

    def enqueue(self, record: dict[str, Any]) -> None:
        """The writer's hook: queue one record just appended (never raises, never blocks)."""
        line = Line(
            int(record["seq"]),
            dump_line(record),
            str(record["hash"]),
            str(record["prev"]),
            str(record["type"]),
        )
        with self._cond:
            self._pending[line.seq] = line
            self._cond.notify()

    def finish(self, bound: float = FINISH_SECONDS) -> ReplicaEnd:
        """End replication: send what is queued within ``bound`` seconds, release the
        lease, and say how many records are left behind."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._stop.set()
        self._thread.join(bound)
        with self._cond:
            return ReplicaEnd(len(self._pending), self._problem, self._diverged)

    # -- the thread ----------------------------------------------------------------
    def _ready(self) -> list[Line]:
        lines = [self._pending[seq] for seq in sorted(self._pending)]
        while lines and not self._closing and lines[-1].type in FSYNCED_WITH_NEXT:
            lines.pop()
        return lines

    def _wait(self, until: float) -> list[Line]:
        with self._cond:
            while self._caught_up and not self._closing and not self._ready():
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._ready()

    def _step(self, conn: psycopg.Connection[Any], batch: list[Line]) -> None:
        if self._take_lease:  # a store error leaves it to the next attempt
            try:
                take(conn, self.run_id, self.holder)
            except LeaseHeld as err:
                with self._cond:
                    self._problem = str(err)
            self._take_lease = False
        if not self._caught_up:
            with self._cond:
                known = list(self._pending.values())
            have = {line.seq for line in known} - {x.seq for x in missing(conn, self.run_id, known)}
            with self._cond:
                for seq in have:
                    self._pending.pop(seq, None)
                self._caught_up = True
                batch = self._ready()
        if batch:
            push(conn, self.run_id, batch)
            with self._cond:
                for line in batch:
                    self._pending.pop(line.seq, None)

    def _loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        backoff = _FIRST_BACKOFF
        renew_at = time.monotonic() + RENEW_SECONDS
        while True:
            batch = self._wait(renew_at)
            with self._cond:
                closing, done = self._closing, self._caught_up and not self._pending
            if closing and done:
                break
            try:
                if conn is None:
                    conn = connect(self.url)
                self._step(conn, batch)
                if time.monotonic() >= renew_at:
                    if not renew(conn, self.run_id, self.holder):
                        with self._cond:
                            self._problem = f"the lease on run {self.run_id} was taken over"
                    renew_at = time.monotonic() + RENEW_SECONDS
                backoff = _FIRST_BACKOFF
                self._tell(down=False, problem="")
            except StoreDiverges as err:
                with self._cond:
                    self._diverged = str(err)
                break
            except Exception as err:  # the run must never fail because of the store
                with self._cond:
                    self._problem = said(self.url, err)
                if not closing:
                    self._tell(down=True, problem=self._problem)
                if conn is not None:
                    conn.close()
                    conn = None
                if closing:
                    break
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
        if conn is not None:
            with contextlib.suppress(Exception):  # the lease expires by itself anyway
                release(conn, self.run_id, self.holder)
            conn.close()

    def _tell(self, *, down: bool, problem: str) -> None:
        """Tell the watcher of a change (never holding ``_cond``: what it does may append
        to the journal, whose hook is :meth:`enqueue`); its failure is not the run's."""
        if down == self._down or self._watcher is None:
            return
        self._down = down
        with self._cond:
            waiting = len(self._pending)
        with contextlib.suppress(Exception):
            self._watcher(down, problem, waiting)
