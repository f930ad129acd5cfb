"""``drp approve RUN STEP``: a signed approval of a gate by someone other than its operator.

Also what ``run`` and ``resume`` need for such gates (:func:`with_approvals`): the
:class:`drp.journal.approvals.ApprovalBook` the waiting run polls, and the refusal of
``--approve STEP`` for a step that names its approvers.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from drp.cli.anchoring import AllowedSignersOption, Anchoring, SignKeyOption
from drp.cli.common import StateDirOption, listing_console
from drp.cli.store import StoreOption
from drp.engine.events import EventType
from drp.errors import InputError
from drp.journal import Journal, journal_path, read_journal, resolve_run, run_dir, state_dir
from drp.journal.approvals import (
    ALL_HOSTS,
    ApprovalBook,
    Given,
    Statement,
    allowed_signers_path,
    existing,
    save_local,
    verify_given,
)
from drp.journal.signing import Signer, find_principals, resolve_signer, sign_file
from drp.journal.store.config import store_url

if TYPE_CHECKING:  # the plan's models load when a run needs them, not for every command
    from drp.engine.options import RunOptions
    from drp.engine.plan import Plan

_ENDS = {EventType.STEP_APPROVED, EventType.STEP_REJECTED, EventType.STEP_FINISHED}


def with_approvals(
    plan: Plan,
    options: RunOptions,
    directory: Path,
    url: str | None,
    anchoring: Anchoring,
    allowed_signers: Path | None = None,
) -> RunOptions:
    """The run's options with the source its gates with ``approvers:`` poll.

    ``--approve STEP`` for such a step is refused before anything runs: the run's own
    operator cannot approve it.
    """
    gated = {ps.id: ps.step for row in plan.steps.values() for ps in row if ps.step.approvers}
    if not gated:
        return options
    bypass = sorted(options.approve & gated.keys())
    if bypass:
        step = bypass[0]
        raise InputError(
            f"--approve {step}: step {step} needs the approval of "
            f"{', '.join(gated[step].approvers)}, not of the run's operator; "
            f"they approve it with: drp approve {options.run_id} {step}"
        )
    allowed = existing(
        allowed_signers_path(allowed_signers), f"step {next(iter(gated))} (approvers:)"
    )
    book = ApprovalBook(
        directory,
        options.run_id,
        options.operator,
        anchoring.signer.fingerprint,
        allowed,
        url,
    )
    return replace(options, approvals=book)


def _journal(url: str | None, state: Path | None, text: str) -> tuple[str, Journal, Path | None]:
    """The run's journal: from the store when there is one, else the state directory."""
    if url is None:
        folder = state_dir(state)
        run_id = resolve_run(folder, text)
        return run_id, read_journal(journal_path(run_dir(folder, run_id))), run_dir(folder, run_id)
    from drp.journal.reader import parse_bytes
    from drp.journal.store.db import connect, errors_of, journal_bytes
    from drp.journal.store.sync import resolve

    with connect(url) as conn, errors_of(url):
        run_id = resolve(conn, text)
        content = journal_bytes(conn, run_id)
    return run_id, parse_bytes(Path(f"store:{run_id}"), content), None


def _waiting(journal: Journal, step: str) -> dict[str, dict[str, Any]]:
    """host → the step.waiting data of each host waiting for approvals at ``step``."""
    waiting: dict[str, dict[str, Any]] = {}
    for record in journal.records:
        if record.step != step or record.host is None:
            continue
        if record.type == EventType.STEP_WAITING and record.data.get("approvers"):
            waiting[record.host] = dict(record.data)
        elif record.type in _ENDS:
            waiting.pop(record.host, None)
    return waiting


def _principal(signer: Signer, allowed: Path, approvers: list[str]) -> str:
    """Who the signing key is in the allowed_signers file (one of ``approvers``)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe"
        probe.write_text("drp approve: who am I\n", encoding="utf-8")
        try:
            sig = sign_file(probe, signer, "drp-approval-probe")
        except RuntimeError as err:
            raise InputError(f"cannot sign with --sign-key: {err}") from None
        names = find_principals(sig, allowed)
    if not names:
        raise InputError(
            f"your key {signer.fingerprint} is in no line of {allowed}: "
            "you are not allowed to approve"
        )
    mine = [name for name in names if name in approvers]
    if not mine:
        raise InputError(
            f"you are {', '.join(names)} in {allowed}; this step may be approved only by "
            f"{', '.join(approvers)}"
        )
    return mine[0]


def approve(
    run_id: Annotated[str, typer.Argument(help="The run (full id, unique prefix, or latest).")],
    step: Annotated[str, typer.Argument(help="The step waiting for approvals.")],
    note: Annotated[
        str, typer.Option("--note", help="Your words, journaled with the approval.")
    ] = "",
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Approve it on this host only (default: every host)."),
    ] = None,
    store: str = StoreOption,
    sign_key: str = SignKeyOption,
    allowed_signers: Path = AllowedSignersOption,
    state: Path = StateDirOption,
) -> None:
    """Approve a step that waits for someone else's approval, signed with your SSH key.

    With a store the approval goes to it (from any machine), else into the run's
    directory in the state directory. The waiting run picks it up by itself.

    Example: drp approve 20261121-234112-disk-replace-7f3a datacenter-swap --note "DC confirmed"
    """
    url = store_url(store)
    allowed = existing(allowed_signers_path(allowed_signers), "drp approve")
    signer = resolve_signer(sign_key)
    if signer.mode == "none":
        raise InputError(f"drp approve signs with your SSH key: {signer.reason}")
    the_id, journal, directory = _journal(url, state, run_id)
    if not any(record.step == step for record in journal.records):
        raise InputError(f"run {the_id} has not reached a step {step!r} (see drp log show)")
    waiting = _waiting(journal, step)
    if not waiting:
        raise InputError(f"step {step} of run {the_id} is not waiting for approval")
    hosts = list(host or [])
    unknown = [h for h in hosts if h not in waiting]
    if unknown:
        raise InputError(
            f"{unknown[0]} is not waiting at {step} (waiting: {', '.join(sorted(waiting))})"
        )
    data = waiting[hosts[0]] if hosts else next(iter(waiting.values()))
    approvers = [str(name) for name in data.get("approvers") or []]
    principal = _principal(signer, allowed, approvers)
    operator = str(data.get("operator") or "")
    if principal == operator or (
        signer.fingerprint and signer.fingerprint == data.get("key_fingerprint")
    ):
        raise InputError(
            f"you ({principal}, key {signer.fingerprint}) run this run as {operator}: "
            "an approval must come from someone else"
        )
    last = journal.records[-1]
    statement = Statement(
        the_id, step, tuple(hosts) or (ALL_HOSTS,), principal, last.seq, last.hash, note
    )
    text = statement.text()
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / "approval"
        draft.write_text(text, encoding="utf-8")
        try:
            signature = sign_file(draft, signer, "drp-approval").read_text(encoding="utf-8")
        except RuntimeError as err:
            raise InputError(f"the approval was not signed: {err}") from None
    verdict = verify_given(Given(text, signature, "this approval"), allowed)
    if verdict.approval is None:
        raise InputError(verdict.problem)
    if url is not None:
        from drp.journal.store.approvals import add_approval
        from drp.journal.store.db import connect, errors_of

        with connect(url) as conn, errors_of(url):
            add_approval(conn, the_id, step, principal, text, signature)
        where = "in the store"
    else:
        assert directory is not None
        try:
            where = str(save_local(directory, statement, text, signature))
        except OSError as err:
            raise InputError(
                f"cannot keep the approval in {directory}: {err.strerror} "
                "(without a store, the run's directory must be writable by the approver)"
            ) from None
    needed = int(data.get("min_approvals") or 1)
    listing_console().print(
        f"approved {escape(step)} of {escape(the_id)} as {escape(principal)} "
        f"({escape(where)}); the run needs {needed} approval(s) of "
        f"{escape(', '.join(approvers))}"
    )


def register(app: typer.Typer) -> None:
    app.command("approve")(approve)
