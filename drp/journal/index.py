"""The state directory's witness index: an append-only, hash-chained list of chain heads.

Each session of each run appends the chain head of its journal (run id, record
count, hash of the last record) when it starts and when it ends::

    STATE/witness-index.jsonl
    {"run": "<id>", "seq": 41, "hash": "<sha256>", "event": "session-end",
     "ts": "2026-12-06T21:40:12.123456Z", "prev": "<hash of the line before>", "h": "<sha256>"}

The index lives outside every run directory, so deleting a run, cutting its
journal's tail, or rewriting and re-hashing its records leaves a head here that
the journal no longer matches (:func:`drp.journal.anchors.check_run`). The index
is itself chained (``h`` covers the line and ``prev``), so editing or removing
one of its lines breaks it from there on. It is opened ``O_APPEND`` and never
through a symbolic link; writers take an ``flock`` so that lines never interleave.

What it cannot prove: someone who can write the state directory may rewrite the
index and every journal consistently. The witnesses on the hosts and the
signatures (see ``docs/audit.md``) are there for that.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drp.journal.paths import PRIVATE_DIR, PRIVATE_FILE
from drp.journal.record import GENESIS, format_ts

INDEX = "witness-index.jsonl"
_FIELDS = ("run", "seq", "hash", "event", "ts")


@dataclass(frozen=True)
class Head:
    """The head of a journal's chain: how many records, and the hash of the last one."""

    run: str
    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.run} seq {self.seq} hash {self.hash[:16]}…"


@dataclass(frozen=True)
class IndexEntry:
    """One line of the index: a head, the moment it was written, and its line number."""

    head: Head
    event: str
    ts: str
    line: int


@dataclass(frozen=True)
class Index:
    """The index as read: the valid entries, and the first problem (empty when none)."""

    path: Path
    entries: tuple[IndexEntry, ...]
    problem: str = ""

    def for_run(self, run_id: str) -> list[IndexEntry]:
        return [e for e in self.entries if e.head.run == run_id]

    def runs(self) -> list[str]:
        return list(dict.fromkeys(e.head.run for e in self.entries))


def index_path(state: Path) -> Path:
    return state / INDEX


def _digest(body: dict[str, object]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _last_hash(fd: int) -> str:
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return GENESIS
    os.lseek(fd, max(0, size - 4096), os.SEEK_SET)
    tail = os.read(fd, 4096).rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        value = json.loads(tail).get("h")
    except (ValueError, AttributeError):
        return GENESIS  # a damaged last line: the chain is broken there, verify says so
    return value if isinstance(value, str) else GENESIS


def append_head(state: Path, head: Head, event: str, when: datetime | None = None) -> None:
    """Append ``head`` to the index (fsynced); OSError when the state dir cannot be written."""
    state.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
    fd = os.open(index_path(state), flags, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        body: dict[str, object] = {
            "run": head.run,
            "seq": head.seq,
            "hash": head.hash,
            "event": event,
            "ts": format_ts(when or datetime.now(UTC)),
            "prev": _last_hash(fd),
        }
        body["h"] = _digest(body)
        os.write(fd, (json.dumps(body, separators=(",", ":")) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _entry(number: int, raw: bytes, prev: str) -> tuple[IndexEntry | None, str, str]:
    """(entry, its hash, problem) of one line, checked against the hash before it."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None, prev, f"line {number} is not valid JSON"
    if not isinstance(body, dict) or not all(k in body for k in (*_FIELDS, "prev", "h")):
        return None, prev, f"line {number} is not an index entry"
    stated = body.pop("h")
    if _digest(body) != stated:
        return None, prev, f"line {number} was edited (its hash does not match)"
    if body["prev"] != prev:
        return None, prev, f"line {number}: a line before it was removed or reordered"
    head = Head(str(body["run"]), int(body["seq"]), str(body["hash"]))
    return IndexEntry(head, str(body["event"]), str(body["ts"]), number), str(stated), ""


def read_index(state: Path) -> Index:
    """Read and check the index; entries after the first problem are still returned."""
    path = index_path(state)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return Index(path, ())
    except OSError as err:
        return Index(path, (), f"cannot read {path}: {err.strerror}")
    with os.fdopen(fd, "rb") as handle:
        content = handle.read()
    entries: list[IndexEntry] = []
    prev, problem = GENESIS, ""
    for number, raw in enumerate(content.splitlines(), 1):
        entry, digest, trouble = _entry(number, raw, prev)
        problem = problem or trouble
        if entry is not None:
            entries.append(entry)
        prev = digest if entry is not None else prev
    return Index(path, tuple(entries), problem)
