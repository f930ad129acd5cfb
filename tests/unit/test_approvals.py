"""Approval statements: written, signed and checked with real ``ssh-keygen``, and found
through the team's config file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from drp.journal.approvals import (
    ApprovalBook,
    Given,
    Statement,
    allowed_signers_path,
    parse,
    save_local,
    verify_given,
)
from drp.journal.signing import resolve_signer, sign_file
from drp.notify.config import load_config

RUN = "20261207-101500-gate-1a2b"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    folder = tmp_path_factory.mktemp("approval-keys")
    keys, lines = {}, []
    for name in ("bob", "carol"):
        key = folder / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        keys[name] = key
        lines.append(f"{name} {key.with_suffix('.pub').read_text().strip()}")
    allowed = folder / "allowed_signers"
    allowed.write_text("\n".join(lines) + "\n")
    return keys, allowed


def signed(statement: Statement, key: Path, tmp: Path) -> Given:
    text = statement.text()
    draft = tmp / f"{statement.approver}-{statement.seq}"
    draft.write_text(text)
    sig = sign_file(draft, resolve_signer(str(key)), "drp-approval")
    return Given(text, sig.read_text(), str(draft))


def test_a_statement_reads_back_as_written_and_its_note_is_one_line() -> None:
    st = Statement(RUN, "swap", ("db1", "db2"), "bob", 41, "ab" * 32, "two\nlines", "T")
    back = parse(st.text())
    assert back == Statement(RUN, "swap", ("db1", "db2"), "bob", 41, "ab" * 32, "two lines", "T")
    assert back is not None and back.covers("db2") and not back.covers("db3")
    assert parse("drp-journal-head 1\nrun x\n") is None


def test_a_signature_verifies_for_its_signer_only_and_not_once_edited(
    keys: tuple[dict[str, Path], Path], tmp_path: Path
) -> None:
    key, allowed = keys
    given = signed(Statement(RUN, "swap", ("*",), "bob", 3, "c" * 64, "ok"), key["bob"], tmp_path)
    good = verify_given(given, allowed)
    assert good.approval is not None and good.approval.by == "bob"
    assert good.approval.key.startswith("SHA256:")
    edited = Given(given.text.replace("note ok", "note OK"), given.signature, "edited")
    assert "does not verify for bob" in verify_given(edited, allowed).problem
    as_carol = Given(given.text.replace("approver bob", "approver carol"), given.signature, "x")
    assert "does not verify for carol" in verify_given(as_carol, allowed).problem
    assert "is not signed" in verify_given(Given(given.text, "", "bare"), allowed).problem


def test_the_book_counts_distinct_approvers_of_this_run_at_a_head_of_its_journal(
    keys: tuple[dict[str, Path], Path], tmp_path: Path
) -> None:
    key, allowed = keys
    run_dir = tmp_path / RUN
    run_dir.mkdir()
    head = "d" * 64
    (run_dir / "events.jsonl").write_text("")  # no record: no head matches
    book = ApprovalBook(run_dir, RUN, "ana", None, allowed)
    st = Statement(RUN, "swap", ("*",), "bob", 1, head)
    given = signed(st, key["bob"], tmp_path)
    save_local(run_dir, st, given.text, given.signature)
    check = book.check("swap", "db1", ("bob", "carol"))
    assert check.valid == ()
    assert "is not in this run's journal" in check.refused[0]
    refused = book.check("swap", "db1", ("carol",))
    assert "bob is not one of the step's approvers (carol)" in refused.refused[0]
    assert book.check("other-step", "db1", ("bob",)).refused == ()  # not this gate's


def test_the_allowed_signers_file_may_be_named_in_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("store: postgresql://drp@db/drp\nallowed_signers: team/allowed_signers\n")
    monkeypatch.setenv("DRP_CONFIG", str(config))
    monkeypatch.delenv("DRP_ALLOWED_SIGNERS", raising=False)
    assert load_config(config).allowed_signers == "team/allowed_signers"
    assert allowed_signers_path(None) == tmp_path / "team" / "allowed_signers"
    monkeypatch.setenv("DRP_ALLOWED_SIGNERS", "/etc/drp/signers")
    assert allowed_signers_path(None) == Path("/etc/drp/signers")
    assert allowed_signers_path(Path("/x")) == Path("/x")
