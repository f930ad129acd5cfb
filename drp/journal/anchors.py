"""Anchoring a journal's chain outside its file, and checking those anchors (``drp log verify``).

The hash chain alone catches an edited record, but not a tail cut at a record
boundary, a chain rewritten and re-hashed, or a run deleted. Three anchors can:

- the **index witness** (:mod:`drp.journal.index`): heads in the state directory;
- the **host witnesses**: heads written on each target host at the end of a session
  (by the engine, :mod:`drp.engine.witness`); the journal names them in
  ``witness.written`` records, and the CLI reads them back over SSH;
- **signatures** (:mod:`drp.journal.signing`) over the head at the end of each session.

A witness *agrees* when the journal holds the record it names with the hash it
names. A head beyond the journal's end means records were cut; a different hash
means the chain was rewritten. Which anchor disagrees is always said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from drp.errors import JournalError
from drp.journal.index import Head, Index, read_index
from drp.journal.reader import Journal
from drp.journal.record import Record
from drp.journal.sessions import Session, split_sessions
from drp.journal.signing import SignatureCheck, check_signature, signature_files


def head_of(journal: Journal) -> Head | None:
    """The head of a journal as read (None when it holds no record)."""
    if not journal.records:
        return None
    last = journal.records[-1]
    return Head(last.run, last.seq, last.hash)


HashAt = Callable[[int], str | None]
"""The hash of a journal's record ``seq`` (``None`` when it has no such record)."""


def hashes_of(journal: Journal) -> HashAt:
    by_seq = {r.seq: r.hash for r in journal.records}
    return by_seq.get


def disagreement(journal: Journal, head: Head, witness: str) -> str:
    """Why ``journal`` does not hold ``head`` ("" when it does), naming the witness."""
    return disagreement_at(hashes_of(journal), len(journal.records), head, witness)


def disagreement_at(hash_at: HashAt, have: int, head: Head, witness: str) -> str:
    """Why a journal of ``have`` records whose hashes ``hash_at`` gives does not hold
    ``head`` ("" when it does), naming the witness."""
    digest = hash_at(head.seq)
    if digest is None:
        return (
            f"{witness} says the journal had {head.seq} records (hash {head.hash[:12]}…); "
            f"it has {have}: records were cut from the end"
        )
    if digest != head.hash:
        return (
            f"{witness} says record {head.seq} has hash {head.hash[:12]}…; the journal's "
            f"is {digest[:12]}…: the chain was rewritten"
        )
    return ""


@dataclass(frozen=True)
class SignedSession:
    """A session and the signature that covers its end (if any)."""

    session: Session
    check: SignatureCheck | None


@dataclass(frozen=True)
class AnchorResult:
    """What the anchors outside the journal say about one run."""

    problems: tuple[str, ...]
    notes: tuple[str, ...]
    index_heads: int
    signatures: tuple[SignatureCheck, ...]
    sessions: tuple[SignedSession, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _index_findings(
    hash_at: HashAt, have: int, run_id: str, index: Index
) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    entries = index.for_run(run_id)
    for entry in entries:
        where = f"index witness ({index.path.name} line {entry.line}, {entry.event} {entry.ts})"
        trouble = disagreement_at(hash_at, have, entry.head, where)
        if trouble and trouble not in problems:
            problems.append(trouble)
    if entries and not problems:
        last = entries[-1].head.seq
        notes.append(f"index witness agrees ({len(entries)} heads, last seq {last})")
    elif not entries:
        notes.append("index witness: no head recorded for this run (written by an older drp?)")
    return problems, notes


def _signature_findings(
    hash_at: HashAt, have: int, checks: list[SignatureCheck], checked: bool
) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    for c in checks:
        name = f"signature {c.path.name}"
        if c.valid is False or c.head is None:
            problems.append(f"{name}: {c.problem}")
            continue
        witness = f"{name} (by {c.principal or 'unchecked'})"
        trouble = disagreement_at(hash_at, have, c.head, witness)
        if trouble:
            problems.append(trouble)
    if checks and not checked:
        notes.append(
            f"{len(checks)} signature(s) present, not checked: give --allowed-signers FILE"
        )
    if checked and not any(c.valid for c in checks):
        problems.append("no valid signature: nothing in this journal is signed by an allowed key")
    return problems, notes


def _pair(sessions: list[Session], checks: list[SignatureCheck]) -> list[SignedSession]:
    out = []
    for s in sessions:
        first, last = s.seqs
        covering = [c for c in checks if c.head is not None and first <= c.head.seq <= last]
        out.append(SignedSession(s, covering[-1] if covering else None))
    return out


def check_run(
    journal: Journal,
    run_directory: Path,
    state: Path,
    allowed_signers: Path | None = None,
    index: Index | None = None,
) -> AnchorResult:
    """Compare ``journal`` with the index witness and its signatures (hosts: see the CLI)."""
    return check_anchors(
        Heads(journal.run_id or run_directory.name, hashes_of(journal), len(journal.records)),
        journal.records,
        state,
        signature_checks(run_directory, allowed_signers),
        allowed_signers is not None,
        index,
    )


@dataclass(frozen=True)
class Heads:
    """What the anchors are compared with: a run's id, its records' hashes, their number."""

    run_id: str
    hash_at: HashAt
    have: int


def signature_checks(run_directory: Path, allowed_signers: Path | None) -> list[SignatureCheck]:
    """Each signature of the run, checked against ``allowed_signers`` (if given)."""
    return [check_signature(p, allowed_signers) for p in signature_files(run_directory)]


def check_anchors(
    heads: Heads,
    records: Sequence[Record],
    state: Path,
    checks: list[SignatureCheck],
    checked: bool,
    index: Index | None = None,
) -> AnchorResult:
    """:func:`check_run` from the hashes alone; ``records``: the journal's records, or at
    least those that start, end or close a session (:mod:`drp.journal.scan`); ``checks``:
    :func:`signature_checks`, ``checked`` when an allowed_signers file was given."""
    index = index if index is not None else read_index(state)
    problems, notes = _index_findings(heads.hash_at, heads.have, heads.run_id, index)
    more, said = _signature_findings(heads.hash_at, heads.have, checks, checked)
    sessions = split_sessions(records)
    return AnchorResult(
        (*problems, *more),
        (*notes, *said),
        len(index.for_run(heads.run_id)),
        tuple(checks),
        tuple(_pair(sessions, checks)),
    )


def require_witnessed(
    journal: Journal,
    run_directory: Path,
    state: Path,
    *,
    hash_at: HashAt | None = None,
    have: int | None = None,
) -> None:
    """Refuse to append to a journal the index witness disagrees with (cut or rewritten):
    resuming it would run again what the cut records said was done. ``hash_at`` and
    ``have``: the journal's hashes and length when ``journal`` is only the tail after a
    checkpoint (:mod:`drp.journal.checkpoint`)."""
    problems, _notes = _index_findings(
        hash_at or hashes_of(journal),
        len(journal.records) if have is None else have,
        journal.run_id or run_directory.name,
        read_index(state),
    )
    if problems:
        raise JournalError(
            f"journal of run {run_directory.name} does not match its witness, refusing to "
            f"append: {problems[0]} (see 'drp log verify {run_directory.name}')"
        )


def deleted_runs(index: Index, present: Iterable[str]) -> list[tuple[str, str]]:
    """(run id, problem) for each run the index witnessed whose journal is gone; a broken
    index itself comes as ("index", problem)."""
    have = set(present)
    out = [
        (run, f"run {run} is gone: the index witness ({index.path.name}) recorded it")
        for run in index.runs()
        if run not in have
    ]
    if index.problem:
        out.append(("index", f"index witness {index.path}: {index.problem}"))
    return out
