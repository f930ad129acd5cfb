"""Approvals by someone else: the signed statement ``drp approve`` leaves, and checking it.

A step with ``approvers:`` waits for approvals given with ``drp approve RUN STEP``. Each
is a small text, the *approval statement*, signed with the approver's SSH key by
``ssh-keygen -Y sign`` (namespace :data:`NAMESPACE`), so that OpenSSH alone checks it
against the team's ``allowed_signers`` file::

    drp-approval 1
    run 20261121-234112-disk-replace-7f3a
    step datacenter-swap
    hosts db1 db2
    approver bob@corp
    head 41 9f2c…            (the run's chain head the approver saw)
    note swapped by the DC team, ticket 4411
    signed 2026-11-22T01:02:03.000000Z

By hand: ``ssh-keygen -Y verify -f allowed_signers -I bob@corp -n drp-approval
-s X.approval.sig < X.approval``.

It is kept in the store's table ``drp.approvals`` when there is a store, else in the
run's directory (``approvals/``), where an approver on the same machine writes it.
The waiting run (:class:`ApprovalBook`) reads both, and counts an approval only when
its signature verifies for the principal it names, that principal is one of the
step's approvers and is not the run's operator (by name or by key), the head it
names is a record of this run's journal, and it covers the host.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drp.engine.options import Approval, ApprovalCheck
from drp.errors import InputError, JournalError
from drp.journal.paths import PRIVATE_DIR, PRIVATE_FILE
from drp.journal.reader import read_journal
from drp.journal.record import format_ts
from drp.journal.signing import verify_text
from drp.journal.store.config import config_path

NAMESPACE = "drp-approval"
MAGIC = "drp-approval 1"
FOLDER = "approvals"
ENV_ALLOWED_SIGNERS = "DRP_ALLOWED_SIGNERS"
ALL_HOSTS = "*"


@dataclass(frozen=True)
class Statement:
    """What an approver signs."""

    run: str
    step: str
    hosts: tuple[str, ...]  # ("*",): every host waiting at the step
    approver: str
    seq: int
    hash: str
    note: str = ""
    signed: str = ""

    def text(self) -> str:
        note = " ".join(self.note.split())  # one line
        stamp = self.signed or format_ts(datetime.now(UTC))
        return (
            f"{MAGIC}\nrun {self.run}\nstep {self.step}\nhosts {' '.join(self.hosts)}\n"
            f"approver {self.approver}\nhead {self.seq} {self.hash}\nnote {note}\n"
            f"signed {stamp}\n"
        )

    def covers(self, host: str) -> bool:
        return ALL_HOSTS in self.hosts or host in self.hosts


def parse(text: str) -> Statement | None:
    """The statement a text holds, or None when it is not one."""
    lines = text.split("\n")
    if not lines or lines[0] != MAGIC:
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    try:
        seq, digest = fields["head"].split(" ", 1)
        return Statement(
            fields["run"],
            fields["step"],
            tuple(fields["hosts"].split()),
            fields["approver"],
            int(seq),
            digest,
            fields.get("note", ""),
            fields.get("signed", ""),
        )
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class Given:
    """An approval as found (not yet checked): its statement, signature, and where it was."""

    text: str
    signature: str
    where: str  # "store" or a file's path


def allowed_signers_path(flag: Path | None) -> Path | None:
    """The team's allowed_signers file: ``--allowed-signers``, ``$DRP_ALLOWED_SIGNERS``,
    else ``allowed_signers:`` in the config file (relative to that file); None if none."""
    if flag is not None:
        return flag.expanduser()
    env = os.environ.get(ENV_ALLOWED_SIGNERS, "")
    if env:
        return Path(env).expanduser()
    config = config_path()
    if not config.is_file():
        return None
    from drp import yamlsrc

    source = yamlsrc.load(config)
    value = source.data.get("allowed_signers") if isinstance(source.data, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            [source.problem(("allowed_signers",), "must be a file name", "allowed_signers: FILE")]
        )
    return config.parent / Path(value.strip()).expanduser()


def existing(path: Path | None, why: str) -> Path:
    """``path`` if it is a file; an InputError that says where to give it, else."""
    if path is None:
        raise InputError(
            f"{why} needs the team's allowed_signers file: --allowed-signers FILE, "
            f"${ENV_ALLOWED_SIGNERS}, or 'allowed_signers: FILE' in ~/.config/drp/config.yaml"
        )
    if not path.is_file():
        raise InputError(f"allowed_signers: no file {path}")
    return path


def local_approvals(run_directory: Path) -> list[Given]:
    """The approvals kept in the run's directory (a statement without its .sig included)."""
    folder = run_directory / FOLDER
    found: list[Given] = []
    for path in sorted(folder.glob("*.approval")) if folder.is_dir() else []:
        sig = path.with_name(path.name + ".sig")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
            signature = sig.read_text(encoding="utf-8", errors="replace") if sig.is_file() else ""
        except OSError:
            continue
        found.append(Given(text, signature, str(path)))
    return found


def save_local(run_directory: Path, statement: Statement, text: str, signature: str) -> Path:
    """Keep a signed approval in the run's directory (statement and .sig, renamed in)."""
    folder = run_directory / FOLDER
    folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in statement.approver)
    path = folder / f"{statement.step}.{safe}.{digest}.approval"
    for target, content in ((path.with_name(path.name + ".sig"), signature), (path, text)):
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, PRIVATE_FILE)
        os.replace(tmp, target)
    return path


@dataclass(frozen=True)
class Verdict:
    """One approval checked: it counts (``approval``) or not (``problem``)."""

    statement: Statement | None
    approval: Approval | None = None
    problem: str = ""


def verify_given(given: Given, allowed_signers: Path) -> Verdict:
    """Check the signature of one approval for the approver it names (nothing else)."""
    statement = parse(given.text)
    if statement is None:
        return Verdict(None, problem=f"{given.where}: not a drp approval statement")
    who = f"the approval by {statement.approver} ({given.where})"
    if not given.signature.strip():
        return Verdict(statement, problem=f"{who} is not signed")
    with tempfile.TemporaryDirectory() as tmp:
        sig = Path(tmp) / "approval.sig"
        sig.write_text(given.signature, encoding="utf-8")
        key = verify_text(
            given.text.encode("utf-8"), sig, allowed_signers, statement.approver, NAMESPACE
        )
    if key is None:
        return Verdict(
            statement,
            problem=f"{who}: its signature does not verify for {statement.approver} in "
            f"{allowed_signers} (forged, or the statement was altered)",
        )
    return Verdict(statement, Approval(statement.approver, statement.note, key, statement.signed))


class ApprovalBook:
    """The approvals of one run, read from its directory and the store, each checked.

    The :class:`drp.engine.options.ApprovalSource` a run polls. Signatures already
    checked are not checked again (the same bytes give the same answer).
    """

    def __init__(
        self,
        run_directory: Path,
        run_id: str,
        operator: str,
        operator_key: str | None,
        allowed_signers: Path,
        store: str | None = None,
    ) -> None:
        self.run_directory = run_directory
        self.run_id = run_id
        self.operator = operator
        self.operator_key = operator_key
        self.allowed_signers = allowed_signers
        self.store = store
        self._verdicts: dict[tuple[str, str], Verdict] = {}

    def facts(self) -> dict[str, object]:
        return {"operator": self.operator, "key_fingerprint": self.operator_key}

    def _gather(self, step: str) -> tuple[list[Given], str]:
        found = local_approvals(self.run_directory)
        trouble = ""
        if self.store:
            from drp.journal.store.approvals import stored_approvals
            from drp.journal.store.db import connect, errors_of

            try:
                with connect(self.store) as conn, errors_of(self.store):
                    found += stored_approvals(conn, self.run_id, step)
            except (JournalError, InputError) as err:  # the store down: the local ones still count
                trouble = f"store not answering: {err}"
        return found, trouble

    def _heads(self) -> dict[int, str]:
        journal = read_journal(self.run_directory / "events.jsonl")
        return {record.seq: record.hash for record in journal.records}

    def check(self, step: str, host: str, approvers: tuple[str, ...]) -> ApprovalCheck:
        found, trouble = self._gather(step)
        heads: dict[int, str] | None = None
        valid: dict[str, Approval] = {}
        refused: list[str] = []
        for given in found:
            key = (given.text, given.signature)
            verdict = self._verdicts.get(key)
            if verdict is None:
                verdict = self._verdicts[key] = verify_given(given, self.allowed_signers)
            st = verdict.statement
            if st is not None and (st.run != self.run_id or st.step != step):
                continue  # another step's (or run's): not for this gate
            if verdict.approval is None or st is None:
                refused.append(verdict.problem)
                continue
            if not st.covers(host):
                continue
            if heads is None:
                heads = self._heads()
            problem = self._refusal(verdict.approval, st, approvers, heads)
            if problem:
                refused.append(f"the approval by {st.approver}: {problem}")
            elif st.approver not in valid:  # distinct approvers: a second one adds nothing
                valid[st.approver] = verdict.approval
        return ApprovalCheck(tuple(valid.values()), tuple(refused), trouble)

    def _refusal(
        self, approval: Approval, st: Statement, approvers: tuple[str, ...], heads: dict[int, str]
    ) -> str:
        if st.approver not in approvers:
            return f"{st.approver} is not one of the step's approvers ({', '.join(approvers)})"
        if st.approver == self.operator or (
            self.operator_key and approval.key == self.operator_key
        ):
            return (
                f"{st.approver} runs this run ({self.operator}): "
                "an approval must come from someone else"
            )
        if heads.get(st.seq) != st.hash:
            return f"the head it approves at (seq {st.seq}) is not in this run's journal"
        return ""
