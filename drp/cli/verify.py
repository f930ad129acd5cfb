"""``drp log verify``: the hash chain, and the anchors outside the journal that it cannot check.

For each run: the chain (:func:`drp.journal.verify`), the state directory's index
witness, the signatures (checked with ``ssh-keygen -Y verify`` against
``--allowed-signers``, naming the signer of each session) and, with ``--hosts``, the
witnesses left on the run's hosts, read over SSH. ``--all`` also names every run the
index witnessed whose journal is gone. Any disagreement fails, with exit code 6.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drp.journal import Journal, VerifyResult, list_run_ids, read_journal, replay, verify
from drp.journal.anchors import (
    AnchorResult,
    Heads,
    SignedSession,
    check_anchors,
    check_run,
    deleted_runs,
    disagreement,
    signature_checks,
)
from drp.journal.index import Head, Index, read_index
from drp.journal.paths import journal_path, run_dir
from drp.journal.reader import read_bytes
from drp.journal.scan import scan

WitnessRead = Callable[[str, str], tuple[list[tuple[int, str]], str]]
"""``read(host name, run id)``: that host's witness heads (seq, hash), and where they are."""
HostReader = Callable[[Journal], tuple[list[str], list[str]]]


@dataclass
class RunCheck:
    """Everything verify found about one run."""

    run_id: str
    chain: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "ok": self.ok,
            "chain": self.chain,
            **{k: getattr(self, k) for k in ("problems", "notes", "sessions", "warnings")},
        }


def describe_session(item: SignedSession) -> str:
    """``session 2 (resume, 2026-…Z → …Z, ended paused) operator … (OS user …): signed by …``."""
    s, check = item.session, item.check
    ident = s.identity
    who = f"operator {s.operator or '?'}"
    if ident:
        who += f" (OS user {ident.get('os_user', '?')} on {ident.get('host', '?')})"
    when = f"{s.started.isoformat(timespec='seconds')} → {s.ended.isoformat(timespec='seconds')}"
    head = f"session {s.number} ({s.kind}, {when}, ended {s.outcome}) {who}"
    if check is None:
        reason = s.signing.get("reason") or "no signature"
        planned = s.signing.get("key_fingerprint")
        if planned:
            reason = f"meant to sign with {planned}, but no signature covers it"
        return f"{head}: unsigned ({reason})"
    if check.valid is None:
        return f"{head}: signature at seq {check.head.seq if check.head else '?'} not checked"
    if check.valid:
        key = s.signing.get("key_fingerprint") or "?"
        seq = check.head.seq if check.head else "?"
        return f"{head}: signed by {check.principal} (key {key}) at seq {seq}"
    return f"{head}: BAD SIGNATURE ({check.problem})"


def _scanned(
    root: Path, run_id: str, allowed: Path | None, index: Index
) -> tuple[VerifyResult, AnchorResult] | None:
    """The chain and anchors of a run checked by :func:`drp.journal.scan.scan` (every
    record, on both cores, no record objects); ``None`` when a line is damaged or torn:
    the ordinary read says where and why."""
    directory = run_dir(root, run_id)
    checks = signature_checks(directory, allowed)
    wanted = {e.head.seq for e in index.for_run(run_id)}
    wanted |= {c.head.seq for c in checks if c.head is not None}
    scanned = scan(journal_path(directory), read_bytes(journal_path(directory)), wanted)
    if scanned is None:
        return None
    heads = Heads(scanned.run_id, scanned.hash_at(), scanned.result.records)
    anchors = check_anchors(
        heads, scanned.session_records, root, checks, allowed is not None, index
    )
    return scanned.result, anchors


def check_one(
    root: Path, run_id: str, allowed: Path | None, index: Index, hosts: HostReader | None
) -> RunCheck:
    fast = _scanned(root, run_id, allowed, index) if hosts is None else None
    journal: Journal | None = None
    if fast is not None:
        result, anchors = fast
    else:
        journal = read_journal(journal_path(run_dir(root, run_id)))
        result = verify(journal)
        anchors = check_run(journal, run_dir(root, run_id), root, allowed, index)
    out = RunCheck(run_id, str(result), warnings=list(result.warnings))
    if not result.ok:
        out.problems.append(str(result))
    out.problems.extend(anchors.problems)
    out.notes.extend(anchors.notes)
    out.sessions.extend(describe_session(s) for s in anchors.sessions)
    if hosts is not None and journal is not None:
        problems, notes = hosts(journal)
        out.problems.extend(problems)
        out.notes.extend(notes)
    return out


def check_hosts_with(read: WitnessRead) -> HostReader:
    """A host checker: ``read(host name, run id)`` gives that host's witness heads."""

    def check(journal: Journal) -> tuple[list[str], list[str]]:
        state = replay(journal.records)
        names = dict.fromkeys([*state.targets, *(h for h in state.hosts if h != "(local)")])
        problems: list[str] = []
        notes: list[str] = []
        run_id = journal.run_id or ""
        for name in names:
            try:
                heads, where = read(name, run_id)
            except Exception as exc:
                notes.append(f"host {name}: witness not read ({exc})")
                continue
            found = [
                disagreement(journal, Head(run_id, s, h), f"host {name} witness ({where})")
                for s, h in heads
            ]
            bad = [f for f in found if f]
            problems.extend(bad)
            if heads and not bad:
                notes.append(
                    f"host {name} witness agrees ({len(heads)} heads, last seq {heads[-1][0]})"
                )
            elif not heads:
                notes.append(f"host {name}: no witness for this run ({where})")
        return problems, notes

    return check


def verify_runs(
    root: Path, ids: list[str], allowed: Path | None, all_runs: bool, hosts: HostReader | None
) -> list[RunCheck]:
    index = read_index(root)
    present = set(list_run_ids(root))
    checks = [check_one(root, i, allowed, index, hosts) for i in ids if i in present]
    for run_id, problem in deleted_runs(index, present):
        if all_runs or run_id in ids:
            checks.append(RunCheck(run_id, "no journal", [problem]))
    return checks


def as_json(checks: list[RunCheck]) -> str:
    return json.dumps([c.as_dict() for c in checks], indent=2, ensure_ascii=False) + "\n"


def ssh_witness_reader(inventory: Path | None) -> WitnessRead:
    """Reads a host's witness of a run over SSH, as root when the host uses become."""
    from drp.cli.common import as_root, open_inventory
    from drp.cli.run import become_password, host_passwords
    from drp.engine.witness import read_witness, witness_path
    from drp.transport.ssh import SshTransport

    inv = open_inventory(inventory)
    passwords = host_passwords(inv)

    def read(name: str, run_id: str) -> tuple[list[tuple[int, str]], str]:
        target = inv.get(name)
        password = passwords.get(name) or become_password(ask=False)
        transport = SshTransport(target, sudo_password=password)
        path = witness_path(target, run_id)
        try:
            transport.connect()
            return read_witness(as_root(transport, target, password), path), f"{name}:{path}"
        finally:
            transport.close()

    return read
