"""The journal: append-only, fsynced, hash-chained JSONL; the checkpoint and the audit log.

- :mod:`~drp.journal.paths`: state dir, run dirs, run ids (validated, never a path escape)
- :mod:`~drp.journal.record`: the stored record format and its hash
- :mod:`~drp.journal.writer`: :class:`JournalWriter` (lock, fsync, torn-tail repair)
- :mod:`~drp.journal.reader`: :func:`read_journal`, :func:`verify`
- :mod:`~drp.journal.state`: :func:`replay` into a :class:`RunState` for resume
- :mod:`~drp.journal.sessions`: the sessions of a run (run, resume, note) and how each ended
- :mod:`~drp.journal.index`: the state directory's witness index of chain heads
- :mod:`~drp.journal.signing`: ``ssh-keygen -Y sign``/``verify`` of a chain head
- :mod:`~drp.journal.anchors`: comparing a journal with its witnesses and signatures
- :mod:`~drp.journal.store`: the team's shared journal store in PostgreSQL (a replica)
"""

from drp.journal.paths import (
    ENV_STATE_DIR,
    journal_path,
    list_run_ids,
    new_run_id,
    resolve_run,
    run_dir,
    runs_dir,
    state_dir,
    validate_run_id,
)
from drp.journal.reader import BadLine, Journal, VerifyResult, read_journal, verify
from drp.journal.record import GENESIS, VERSION, Record, record_hash
from drp.journal.state import LOCAL_HOST, HostState, RunState, StepState, replay
from drp.journal.writer import JournalWriter, LockHolder, lock_holder

__all__ = [
    "ENV_STATE_DIR",
    "GENESIS",
    "LOCAL_HOST",
    "VERSION",
    "BadLine",
    "HostState",
    "Journal",
    "JournalWriter",
    "LockHolder",
    "Record",
    "RunState",
    "StepState",
    "VerifyResult",
    "journal_path",
    "list_run_ids",
    "lock_holder",
    "new_run_id",
    "read_journal",
    "record_hash",
    "replay",
    "resolve_run",
    "run_dir",
    "runs_dir",
    "state_dir",
    "validate_run_id",
    "verify",
]
