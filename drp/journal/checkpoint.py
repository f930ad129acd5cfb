"""A verified-prefix checkpoint beside a run's journal, so that resume need not verify and
fold again every record of a long journal (``RUN_DIR/checkpoint.json``).

The writer keeps it at the end of each session (:meth:`JournalWriter.close`)::

    {"version": 1, "run": "<id>", "length": L, "sha256": "<of the first L bytes>",
     "seq": N, "hash": "<hash of record N, the chain's head at L>", "fold": {...}}

``fold`` is :meth:`drp.journal.state.Fold.to_json` after record ``N``. Resume
(:func:`read_checked`) trusts it only while the journal's first ``L`` bytes still hash to
``sha256``: those bytes are then exactly the ones the writer wrote and verified, so only
the records after ``L`` are parsed, chain-checked from the head the checkpoint names,
and folded on. Anything else (no checkpoint, another version, a damaged one, a prefix
that changed by one byte, a tail whose chain does not continue) falls back to reading
and verifying the whole journal, which then reports any break as before.

The checkpoint is for resume only: ``drp log verify`` never reads it. Who can write the
state directory can write it, as they can rewrite the journal (see docs/audit.md): the
hash proves the checkpoint was made from these bytes only if drp made it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drp.journal.paths import PRIVATE_FILE
from drp.journal.reader import Journal, parse_bytes, verify
from drp.journal.state import Fold

CHECKPOINT = "checkpoint.json"
VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint says: the prefix (length, SHA-256), its chain head, its fold."""

    run: str
    length: int
    sha256: str
    seq: int
    hash: str
    fold: dict[str, Any]


def checkpoint_path(run_directory: Path) -> Path:
    return run_directory / CHECKPOINT


def write_checkpoint(run_directory: Path, checkpoint: Checkpoint) -> None:
    """Write the checkpoint (a private temporary file, fsynced, renamed into place; never
    through a link). A run directory that cannot be written keeps the checkpoint it had:
    resume then verifies more records, nothing else."""
    body = json.dumps(
        {
            "version": VERSION,
            "run": checkpoint.run,
            "length": checkpoint.length,
            "sha256": checkpoint.sha256,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "fold": checkpoint.fold,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    temporary = run_directory / f".{CHECKPOINT}.{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, checkpoint_path(run_directory))
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()


def load_checkpoint(run_directory: Path) -> Checkpoint | None:
    """The run's checkpoint; ``None`` when there is none or it is not a usable one."""
    try:
        fd = os.open(checkpoint_path(run_directory), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            data = json.loads(handle.read())
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return None
        found = Checkpoint(
            data["run"], data["length"], data["sha256"], data["seq"], data["hash"], data["fold"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    kinds = (str, int, str, int, str, dict)
    values = (found.run, found.length, found.sha256, found.seq, found.hash, found.fold)
    if not all(
        isinstance(v, k) and not isinstance(v, bool) for v, k in zip(values, kinds, strict=True)
    ):
        return None
    return found if found.length > 0 and found.seq > 0 else None


@dataclass(frozen=True)
class Checked:
    """A journal read through its checkpoint: the prefix the checkpoint vouches for, the
    records after it (parsed and chain-checked from the checkpoint's head), the fold of
    all of them, and the SHA-256 of the whole content read."""

    content: bytes
    checkpoint: Checkpoint
    tail: Journal
    fold: Fold
    digest: Any  # a hashlib object over ``content``, for the writer to go on with

    @property
    def records(self) -> int:
        """The records of the whole journal (the prefix's and the tail's)."""
        return self.checkpoint.seq + len(self.tail.records)

    @property
    def head(self) -> tuple[int, str, str]:
        """(seq, hash, run) of the journal's last record."""
        if self.tail.records:
            last = self.tail.records[-1]
            return last.seq, last.hash, last.run
        return self.checkpoint.seq, self.checkpoint.hash, self.checkpoint.run

    def hash_at(self) -> Callable[[int], str | None]:
        """The hash of any record: the tail's as parsed; the prefix's read from its line
        (a verified prefix holds record ``n`` on line ``n``)."""
        tail = {r.seq: r.hash for r in self.tail.records}
        lines: list[bytes] = []

        def lookup(seq: int) -> str | None:
            if seq in tail:
                return tail[seq]
            if not 1 <= seq <= self.checkpoint.seq:
                return None
            if not lines:
                lines.extend(self.content[: self.checkpoint.length].split(b"\n"))
            value = json.loads(lines[seq - 1]).get("hash")
            return value if isinstance(value, str) else None

        return lookup


def _vouched_prefix(path: Path, content: bytes) -> tuple[Checkpoint, Any] | None:
    """The checkpoint and the SHA-256 of the prefix it names, if it still holds."""
    checkpoint = load_checkpoint(path.parent)
    if checkpoint is None or len(content) < checkpoint.length:
        return None
    if content[checkpoint.length - 1 : checkpoint.length] != b"\n":
        return None
    digest = hashlib.sha256(memoryview(content)[: checkpoint.length])
    if digest.hexdigest() != checkpoint.sha256:
        return None
    return checkpoint, digest


def read_checked(path: Path, content: bytes) -> Checked | None:
    """``content`` (the journal at ``path``) read through its checkpoint; ``None`` when
    the checkpoint cannot vouch for it (the caller reads and verifies it all)."""
    vouched = _vouched_prefix(path, content)
    if vouched is None:
        return None
    checkpoint, digest = vouched
    tail = parse_bytes(path, content[checkpoint.length :], first_line=checkpoint.seq + 1)
    chain = verify(tail, prev=checkpoint.hash, seq=checkpoint.seq + 1, run=checkpoint.run)
    if not chain.ok:
        return None
    try:
        fold = Fold.from_json(checkpoint.fold)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if fold.last_seq != checkpoint.seq or fold.run_id != checkpoint.run:
        return None
    for record in tail.records:
        fold.feed(record)
    digest.update(memoryview(content)[checkpoint.length :])
    return Checked(content, checkpoint, tail, fold, digest)
