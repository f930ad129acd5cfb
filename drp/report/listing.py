"""``drp log list``: the runs of a state directory, summarised, filtered, newest first,
through a cache of each run's summary kept beside the runs and reused while nothing
it was made from has changed.

``STATE/list-cache.json`` maps a run id to the :class:`~drp.report.summary.RunSummary`
``drp log list`` showed and the **key** it was made from: the SHA-256 of the run's
journal bytes, of each of its signature files, and of the index witness's heads for
that run. Any change to those inputs, a single byte, gives another key and the run is
read again; a run whose journal lock a live process holds is always read (its status
is ``running``), and nothing of it is kept.

Hashing every journal is most of a warm listing's work, so an entry also keeps the
journal's file status (size, mtime, ctime, inode, device, taken before it was read)
and when the entry was made. While the status is the same and the anchors' key (the
signatures and index heads, hashed: small files) too, the entry is used without
reading the journal, provided the journal had not changed for :data:`SETTLED_NS` when
the entry was made. The kernel moves ``ctime`` on every write, and on every ``utime``
that puts an old ``mtime`` back, so an edit to the same size shows; what it cannot see
is an edit within one tick of a coarse file system clock right after the entry was
made (hence the settling time: such an entry is checked by the hash), or one made by
someone who resets the system clock or writes the block device. Those can rewrite the
journal outright as well: the listing's ``chain`` column is a convenience, ``drp log
verify`` (which never reads this cache) is the check.

The cache is never trusted for anything but the listing: ``drp log verify`` and
``resume`` read and verify the journal itself. It is rebuilt when missing, unreadable,
of another format version or written by another drp version; a state directory that
cannot be written still lists, only without the cache. Who can write the state
directory can write this file too, as they can rewrite the journals and the index
(see docs/audit.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drp import __version__
from drp.errors import JournalError
from drp.journal import journal_path, list_run_ids, lock_holder, run_dir
from drp.journal.index import Index, read_index
from drp.journal.paths import PRIVATE_FILE
from drp.journal.signing import signature_files
from drp.report.summary import (
    RunFilter,
    RunSummary,
    load_path,
    summarize,
    summary_from_json,
    summary_json,
)

CACHE = "list-cache.json"
VERSION = 1


def list_runs(state_dir: Path, filters: RunFilter | None = None) -> list[RunSummary]:
    """Summaries of the runs under ``state_dir`` matching ``filters``, newest first."""
    wanted = filters or RunFilter()
    index = read_index(state_dir)
    known = load(state_dir)
    kept: dict[str, Mapping[str, Any]] = {}
    out: list[RunSummary] = []
    for run_id in reversed(list_run_ids(state_dir)):
        found = _from_cache(state_dir, run_id, index, known.get(run_id))
        if found is None:
            continue  # vanished between listing and reading
        summary, kept_entry = found
        if kept_entry is not None:
            kept[run_id] = kept_entry
        if wanted.match(summary):
            out.append(summary)
    if kept != known:
        save(state_dir, kept)
    return out


def _from_cache(
    state: Path, run_id: str, index: Index, known: Mapping[str, Any] | None
) -> tuple[RunSummary, Mapping[str, Any] | None] | None:
    """A run's summary and the cache entry to keep for it (``None``: keep none), from its
    cache entry while its inputs are unchanged, else read; ``None`` when it vanished."""
    directory = run_dir(state, run_id)
    if lock_holder(directory) is not None:
        return _uncached(state, run_id, index)
    status = journal_stat(directory)  # before anything is read: a later change shows
    anchors = anchors_key(directory, run_id, index)
    if status is None or anchors is None:
        return _uncached(state, run_id, index)
    if known is not None and settled(known, status, anchors):
        summary = cached(known, str(known.get("key")))
        if summary is not None:
            return summary, known
    key = run_key(state, run_id, index)
    if key is None:
        return _uncached(state, run_id, index)
    summary = cached(known, key) or _read(state, run_id, index)
    return (summary, entry(key, summary, status, anchors)) if summary is not None else None


def _uncached(state: Path, run_id: str, index: Index) -> tuple[RunSummary, None] | None:
    summary = _read(state, run_id, index)
    return (summary, None) if summary is not None else None


def _read(state: Path, run_id: str, index: Index) -> RunSummary | None:
    try:
        return summarize(load_path(journal_path(run_dir(state, run_id)), index))
    except JournalError:
        return None


SETTLED_NS = 2_000_000_000
"""How long after a journal's last change its file status alone is trusted: a change
within the same tick of a coarse file system clock (2 s on the coarsest) could leave
size, mtime and ctime as they were."""


def journal_stat(directory: Path) -> list[int] | None:
    """The journal's size, mtime, ctime, inode and device (``None``: not a plain file)."""
    try:
        st = os.lstat(journal_path(directory))
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def settled(known: Mapping[str, Any], status: list[int], anchors: str) -> bool:
    """Whether ``known`` was made from the journal whose status is ``status`` and from
    these anchors, and the journal had not changed for :data:`SETTLED_NS` when it was.
    The kernel sets ``ctime`` on every write (and on every ``utime`` that puts an old
    ``mtime`` back), so a journal changed since shows another status."""
    if known.get("stat") != status or known.get("anchors") != anchors:
        return False
    made = known.get("made")
    return isinstance(made, int) and made - max(status[1], status[2]) > SETTLED_NS


def run_key(state: Path, run_id: str, index: Index) -> str | None:
    """What a run's summary is made from, hashed: its journal's bytes, signatures and
    index witness heads; ``None`` when the journal cannot be read."""
    directory = run_dir(state, run_id)
    digest = hashlib.sha256()
    try:
        digest.update(journal_path(directory).read_bytes())
    except OSError:
        return None
    return _anchors_hash(digest, directory, run_id, index)


def anchors_key(directory: Path, run_id: str, index: Index) -> str | None:
    """The run's signature files and its index witness's heads, hashed."""
    return _anchors_hash(hashlib.sha256(), directory, run_id, index)


def _anchors_hash(digest: hashlib._Hash, directory: Path, run_id: str, index: Index) -> str | None:
    """``digest`` fed the run's signature files and index witness heads, as hex;
    ``None`` when a signature file cannot be read."""
    try:
        for path in signature_files(directory):
            digest.update(b"\0sig\0" + path.name.encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    except OSError:
        return None
    for witnessed in index.for_run(run_id):
        head = witnessed.head
        line = f"\0head\0{witnessed.line} {head.seq} {head.hash} {witnessed.event}"
        digest.update(line.encode())
    return digest.hexdigest()


def load(state: Path) -> dict[str, Mapping[str, Any]]:
    """The cached entries by run id; empty when there is no usable cache."""
    try:
        data = json.loads((state / CACHE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return {}
    if data.get("drp") != __version__ or not isinstance(data.get("runs"), dict):
        return {}
    return {k: v for k, v in data["runs"].items() if isinstance(v, dict)}


def cached(entry: Mapping[str, Any] | None, key: str) -> RunSummary | None:
    """The summary kept in ``entry`` if it was made from ``key``, else ``None``."""
    if entry is None or entry.get("key") != key:
        return None
    try:
        return summary_from_json(entry["summary"])
    except (KeyError, TypeError, ValueError):
        return None  # a damaged entry is read again, never trusted


def entry(
    key: str, summary: RunSummary, status: list[int] | None = None, anchors: str = ""
) -> dict[str, Any]:
    """A cache entry: the summary, the key it was made from and, to skip hashing the
    journal next time, its file status, the anchors' key and when it was made."""
    made = {"stat": status, "anchors": anchors, "made": time.time_ns()} if status else {}
    return {"key": key, "summary": summary_json(summary), **made}


def save(state: Path, runs: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the cache atomically (a private temporary file, then a rename); a state
    directory that cannot be written is left as it is."""
    body = json.dumps({"version": VERSION, "drp": __version__, "runs": runs}, ensure_ascii=False)
    temporary = state / f".{CACHE}.{os.getpid()}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        os.replace(temporary, state / CACHE)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
