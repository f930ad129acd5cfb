"""The lease on a run in the store: one session at a time drives a run, on any machine.

``drp run`` and ``drp resume`` take the run's lease (a row of ``drp.leases``: holder,
machine, pid, a random token, expiry) in a transaction serialized by an advisory lock
on the run; the session's replicator renews it while the session lives, and the end
of the session releases it (its expiry set to now: the row keeps who held it last, for
the hand-over record). A second session is refused while the lease is live, naming its
holder; a lease whose expiry passed, or held by a dead process of this machine, is
taken over.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drp.errors import LockedError

if TYPE_CHECKING:
    import psycopg

LEASE_SECONDS = 120  # renewed every RENEW_SECONDS by the replicator
RENEW_SECONDS = 20


class LeaseHeld(LockedError):
    """Another session drives the run: its lease in the store is live."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lease: operator, machine, pid, and the session's token."""

    operator: str
    machine: str
    pid: int
    token: str

    @classmethod
    def me(cls, operator: str) -> Holder:
        return cls(operator, socket.gethostname(), os.getpid(), secrets.token_hex(16))

    def describe(self) -> str:
        return f"{self.operator} on {self.machine} (pid {self.pid})"


def _dead_here(holder: Holder) -> bool:
    """True when ``holder`` is a process of this machine that no longer runs."""
    if holder.machine != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take(
    conn: psycopg.Connection[Any], run_id: str, me: Holder, seconds: int = LEASE_SECONDS
) -> Holder | None:
    """Take the lease on ``run_id`` for ``me``; return the previous holder (live or not).

    :class:`LeaseHeld` when another session's lease is live.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('drp.lease:' || %s))", (run_id,))
        row = conn.execute(
            "SELECT holder, machine, pid, token, expires > now(), expires "
            "FROM drp.leases WHERE run_id = %s FOR UPDATE",
            (run_id,),
        ).fetchone()
        before = Holder(str(row[0]), str(row[1]), int(row[2]), str(row[3])) if row else None
        if (
            row is not None
            and before is not None
            and row[4]
            and before.token != me.token
            and not _dead_here(before)
        ):
            raise LeaseHeld(
                f"run {run_id} is driven by {before.describe()}: its lease in the store "
                f"runs until {row[5]:%Y-%m-%d %H:%M:%S %Z} and is renewed while that "
                "session lives. Let them finish or pause it, then resume"
            )
        conn.execute(
            "INSERT INTO drp.leases (run_id, holder, machine, pid, token, taken, expires) "
            "VALUES (%s, %s, %s, %s, %s, now(), now() + make_interval(secs => %s)) "
            "ON CONFLICT (run_id) DO UPDATE SET holder = excluded.holder, "
            "machine = excluded.machine, pid = excluded.pid, token = excluded.token, "
            "taken = excluded.taken, expires = excluded.expires",
            (run_id, me.operator, me.machine, me.pid, me.token, seconds),
        )
    return before


def renew(
    conn: psycopg.Connection[Any], run_id: str, me: Holder, seconds: int = LEASE_SECONDS
) -> bool:
    """Extend ``me``'s lease; False when it is no longer ``me``'s (taken over)."""
    cur = conn.execute(
        "UPDATE drp.leases SET expires = now() + make_interval(secs => %s) "
        "WHERE run_id = %s AND token = %s",
        (seconds, run_id, me.token),
    )
    return cur.rowcount == 1


def release(conn: psycopg.Connection[Any], run_id: str, me: Holder) -> None:
    """End ``me``'s lease now (the row stays: it names the last holder)."""
    conn.execute(
        "UPDATE drp.leases SET expires = now() WHERE run_id = %s AND token = %s",
        (run_id, me.token),
    )
