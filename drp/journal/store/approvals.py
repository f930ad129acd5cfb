"""The store's table ``drp.approvals``: signed approvals of gates, written and read back.

A row holds the exact statement an approver signed and its signature; nothing here
checks them (:mod:`drp.journal.approvals` does, with OpenSSH, when a run counts them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drp.journal.approvals import Given

if TYPE_CHECKING:
    import psycopg


def add_approval(
    conn: psycopg.Connection[Any],
    run_id: str,
    step: str,
    approver: str,
    statement: str,
    signature: str,
) -> None:
    """Store one signed approval."""
    conn.execute(
        "INSERT INTO drp.approvals (run_id, step, approver, statement, signature) "
        "VALUES (%s, %s, %s, %s, %s)",
        (run_id, step, approver, statement, signature),
    )


def stored_approvals(conn: psycopg.Connection[Any], run_id: str, step: str) -> list[Given]:
    """The approvals of ``step`` of ``run_id`` in the store, oldest first."""
    rows = conn.execute(
        "SELECT id, statement, signature FROM drp.approvals "
        "WHERE run_id = %s AND step = %s ORDER BY id",
        (run_id, step),
    ).fetchall()
    return [Given(str(text), str(sig), f"store row {ident}") for ident, text, sig in rows]
