"""The store's tables through psycopg 3: schema, pushing records, reading them back.

Every function takes an open connection (:func:`connect`) and does one thing in one
transaction. A push is idempotent by (run, seq): ``ON CONFLICT DO NOTHING``, then the
stored hashes of the pushed records are compared with theirs, and one that differs is
:class:`StoreDiverges` (the transaction is rolled back: nothing of that push stays).
Connection and SQL errors become :class:`StoreError`, with the URL's password masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from drp.errors import InputError, JournalError
from drp.journal.store.config import masked, redactor

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT = 3  # seconds: a store that does not answer must not hold anyone up
SCHEMA_FILE = "schema.sql"


class StoreError(JournalError):
    """The store cannot be reached, or refused what drp asked of it."""


class StoreDiverges(StoreError):
    """The store holds a record with the same (run, seq) as the local one, another hash."""


@dataclass(frozen=True)
class Line:
    """One journal record as the store holds it: its seq, exact line, hash and prev."""

    seq: int
    line: str
    hash: str
    prev: str
    type: str = ""

    @classmethod
    def of(cls, line: str) -> Line:
        fields = json.loads(line)
        return cls(
            int(fields["seq"]), line, str(fields["hash"]), str(fields["prev"]), str(fields["type"])
        )


def schema_sql() -> str:
    """The text of the SQL file shipped with drp (``drp/journal/store/schema.sql``)."""
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def connect(url: str, timeout: int = CONNECT_TIMEOUT) -> psycopg.Connection[Any]:
    """An open connection to the store; :class:`StoreError` (password masked) if none."""
    try:
        import psycopg
    except ImportError:
        raise InputError(
            "a store needs psycopg: pip install 'drp[store]' (and libpq5 from your system)"
        ) from None
    try:
        return psycopg.connect(url, connect_timeout=timeout, autocommit=True)
    except psycopg.Error as err:
        raise StoreError(f"store {masked(url)}: {said(url, err)}") from None
    except Exception as err:  # a malformed URL: say so, masked
        raise InputError(f"--store {masked(url)}: {said(url, err)}") from None


@contextmanager
def errors_of(url: str) -> Iterator[None]:
    """Turn psycopg's errors inside the block into :class:`StoreError` (password masked)."""
    import psycopg

    try:
        yield
    except psycopg.Error as err:
        raise StoreError(f"store {masked(url)}: {said(url, err)}") from None


def said(url: str, err: BaseException) -> str:
    """What an error says, on one line, with the password of ``url`` masked."""
    return redactor(url).text(" ".join(str(err).split()) or type(err).__name__)


def init_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the schema and tables when missing (idempotent)."""
    with conn.transaction():
        conn.execute(schema_sql().encode("utf-8"))


def stored_hashes(conn: psycopg.Connection[Any], run_id: str) -> dict[int, str]:
    """seq → hash of every record of ``run_id`` in the store."""
    rows = conn.execute("SELECT seq, hash FROM drp.records WHERE run_id = %s", (run_id,)).fetchall()
    return {int(seq): str(digest) for seq, digest in rows}


def diverges(run_id: str, seq: int, ours: str, theirs: str) -> StoreDiverges:
    return StoreDiverges(
        f"store diverges from the local journal of run {run_id} at seq {seq}: "
        f"the store holds hash {theirs[:12]}…, the journal {ours[:12]}… "
        f"(compare 'drp log show {run_id} --events' with and without --store)"
    )


def _run_facts(lines: Sequence[Line]) -> dict[str, str]:
    facts: dict[str, str] = {}
    for item in lines:
        if item.seq == 1:
            first = json.loads(item.line)
            data = first.get("data") or {}
            facts["runbook"] = str(data.get("runbook", ""))
            facts["operator"] = str(first.get("operator", ""))
            facts["started"] = str(first.get("ts", ""))
    last = json.loads(lines[-1].line)
    facts["status"] = str(last.get("outcome")) if last.get("type") == "run.finished" else "running"
    return facts


def push(conn: psycopg.Connection[Any], run_id: str, lines: Sequence[Line]) -> int:
    """Store ``lines`` (records of ``run_id``) in one transaction; how many were new.

    :class:`StoreDiverges` when one is already stored with another hash.
    """
    if not lines:
        return 0
    ordered = sorted(lines, key=lambda x: x.seq)
    facts = _run_facts(ordered)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("INSERT INTO drp.runs (run_id) VALUES (%s) ON CONFLICT DO NOTHING", (run_id,))
        before = cur.execute(
            "SELECT count(*) FROM drp.records WHERE run_id = %s", (run_id,)
        ).fetchone()
        cur.executemany(
            "INSERT INTO drp.records (run_id, seq, line, hash, prev) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id, seq) DO NOTHING",
            [(run_id, x.seq, x.line, x.hash, x.prev) for x in ordered],
        )
        rows = cur.execute(
            "SELECT seq, hash FROM drp.records WHERE run_id = %s AND seq = ANY(%s)",
            (run_id, [x.seq for x in ordered]),
        ).fetchall()
        theirs = {int(seq): str(digest) for seq, digest in rows}
        for x in ordered:
            if theirs.get(x.seq) != x.hash:
                raise diverges(run_id, x.seq, x.hash, theirs.get(x.seq, "?"))
        if "started" in facts:
            cur.execute(
                "UPDATE drp.runs SET runbook = %s, operator = %s, started = %s WHERE run_id = %s",
                (facts["runbook"], facts["operator"], facts["started"], run_id),
            )
        cur.execute(
            "UPDATE drp.runs SET status = %s, last_seq = %s, updated = now() "
            "WHERE run_id = %s AND last_seq <= %s",
            (facts["status"], ordered[-1].seq, run_id, ordered[-1].seq),
        )
        after = cur.execute(
            "SELECT count(*) FROM drp.records WHERE run_id = %s", (run_id,)
        ).fetchone()
    return int(after[0] if after else 0) - int(before[0] if before else 0)


def run_ids(conn: psycopg.Connection[Any]) -> list[str]:
    """Every run the store holds a record of, oldest first (by the first record's time)."""
    rows = conn.execute(
        "SELECT run_id FROM drp.runs WHERE last_seq > 0 ORDER BY started, run_id"
    ).fetchall()
    return [str(row[0]) for row in rows]


def journal_bytes(conn: psycopg.Connection[Any], run_id: str) -> bytes:
    """The run's journal as the store holds it: its lines in seq order, each ending in a
    newline, as the local ``events.jsonl`` would be (empty when the store has none)."""
    rows = conn.execute(
        "SELECT line FROM drp.records WHERE run_id = %s ORDER BY seq", (run_id,)
    ).fetchall()
    return "".join(f"{row[0]}\n" for row in rows).encode("utf-8")
