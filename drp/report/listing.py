"""``drp log list``: the runs of a state directory, summarised, filtered, newest first,
through a cache of each run's summary kept beside the runs and reused while nothing
it was made from has changed.

``STATE/list-cache.json`` maps a run id to the :class:`~drp.report.summary.RunSummary`
``drp log list`` showed and the **key** it was made from: the SHA-256 of the run's
journal bytes, of each of its signature files, and of the index witness's heads for
that run. Hashing a journal costs a small part of reading it (no JSON, no hash chain,
no fold), so a listing of 500 runs reads every file but parses only the new or
changed ones. Any change to those inputs, a single byte, gives another key and the
run is read again; a run whose journal lock a live process holds is always read (its
status is ``running``), and nothing of it is kept.

The cache is never trusted for anything but the listing: ``drp log verify`` and
``resume`` read and verify the journal itself. It is rebuilt when missing, unreadable,
of another format version or written by another drp version; a state directory that
cannot be written still lists, only without the cache. Who can write the state
directory can write this file too, as they can rewrite the journals and the index
(see docs/audit.md): the listing's ``chain`` column is a convenience; ``drp log verify``
is the check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
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
        key = run_key(state_dir, run_id, index)
        summary = cached(known.get(run_id), key) if key is not None else None
        if summary is None:
            try:
                summary = summarize(load_path(journal_path(run_dir(state_dir, run_id)), index))
            except JournalError:
                continue  # vanished between listing and reading
        if key is not None:
            kept[run_id] = entry(key, summary)
        if wanted.match(summary):
            out.append(summary)
    if kept != known:
        save(state_dir, kept)
    return out


def run_key(state: Path, run_id: str, index: Index) -> str | None:
    """What a run's summary is made from, hashed; ``None`` when the run is live (locked)
    or its journal cannot be read: such a run is read again every time."""
    directory = run_dir(state, run_id)
    if lock_holder(directory) is not None:
        return None
    digest = hashlib.sha256()
    try:
        digest.update(journal_path(directory).read_bytes())
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


def entry(key: str, summary: RunSummary) -> dict[str, Any]:
    return {"key": key, "summary": summary_json(summary)}


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
