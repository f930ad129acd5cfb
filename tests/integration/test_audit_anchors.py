"""The journal anchored outside its file: cut tails, rewritten chains and deleted runs are caught.

Each tampering is tried against the witnesses alone (the state directory's index, the
witness on the host) and against the signatures alone (ssh-keygen -Y sign / verify,
with a key file and through a real ssh-agent), through the installed ``drp``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer

from drp.journal.record import GENESIS, dump_line, record_hash
from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration
JOURNAL_PROBLEM = 6


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("DRP_SIGN_KEY", "none")
    return new_lab(tmp_path, sshd)


def keypair(root: Path, name: str) -> tuple[Path, str]:
    """A fresh ed25519 key without passphrase, and its public line."""
    key = root / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key, (root / f"{name}.pub").read_text().strip()


def allowed(root: Path, principal: str, public: str) -> Path:
    path = root / "allowed_signers"
    path.write_text(f'{principal} namespaces="drp-journal" {public}\n')
    return path


def rewrite(path: Path, change: dict[str, object]) -> None:
    """Every record changed and the chain re-hashed with drp's own function."""
    prev, out = GENESIS, []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.update(change)
        record["prev"] = prev
        record.pop("hash")
        record["hash"] = record_hash(record)
        prev = record["hash"]
        out.append(dump_line(record) + "\n")
    path.write_text("".join(out))


def cut(path: Path, keep: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:keep]))


def verify(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.drp("log", "verify", *args)


def gated_run(lab: Lab) -> str:
    """A run paused at a gate, then resumed to its end: two sessions."""
    assert lab.run(lab.book("gate")).returncode == 5
    run_id = lab.only_run()
    done = lab.drp("resume", run_id, "--approve", "swap-disk")
    assert done.returncode == 0, combined(done)
    return run_id


# -- witnesses alone -----------------------------------------------------------------


@pytest.mark.parametrize("dropped", [1, 3, 6])
def test_a_tail_cut_at_a_record_boundary_fails_verify_by_the_index(lab: Lab, dropped: int) -> None:
    run_id = gated_run(lab)
    ok = verify(lab, run_id)
    assert ok.returncode == 0, combined(ok)
    assert "index witness agrees" in ok.stdout
    path = lab.journal_file(run_id)
    cut(path, len(path.read_text().splitlines()) - dropped)

    broken = verify(lab, run_id)
    assert broken.returncode == JOURNAL_PROBLEM, combined(broken)
    assert "index witness" in broken.stdout and "cut from the end" in broken.stdout
    report = lab.drp("log", "report", run_id)
    assert "hash chain verified" not in report.stdout and "cut from the end" in report.stdout
    resumed = lab.drp("resume", run_id, "--approve", "swap-disk")  # would redo the cut steps
    assert resumed.returncode == JOURNAL_PROBLEM and "does not match its witness" in resumed.stderr


def test_a_rewritten_and_rehashed_chain_fails_verify_by_the_index(lab: Lab) -> None:
    run_id = gated_run(lab)
    rewrite(lab.journal_file(run_id), {"operator": "ceo@corp"})
    assert "chain verified" in verify(lab, run_id).stdout  # the chain itself is consistent

    broken = verify(lab, run_id)
    assert broken.returncode == JOURNAL_PROBLEM, combined(broken)
    assert "index witness" in broken.stdout and "rewritten" in broken.stdout


def test_a_deleted_run_is_named_by_verify_all(lab: Lab) -> None:
    run_id = gated_run(lab)
    assert verify(lab, "--all").returncode == 0
    shutil.rmtree(lab.state / "runs" / run_id)

    broken = verify(lab, "--all")
    assert broken.returncode == JOURNAL_PROBLEM, combined(broken)
    assert f"run {run_id} is gone" in broken.stdout
    named = verify(lab, run_id)  # asked by its id: gone, not "no such run"
    assert named.returncode == JOURNAL_PROBLEM and f"run {run_id} is gone" in named.stdout


def test_removing_a_line_of_the_index_breaks_the_index(lab: Lab) -> None:
    run_id = gated_run(lab)
    index = lab.state / "witness-index.jsonl"
    lines = index.read_text().splitlines(keepends=True)
    assert len(lines) == 4 and all(run_id in x for x in lines)  # 2 sessions: start and end
    index.write_text("".join(lines[:1] + lines[2:]))
    broken = verify(lab, "--all")
    assert broken.returncode == JOURNAL_PROBLEM
    assert "line 2: a line before it was removed" in broken.stdout


def test_the_host_witness_catches_a_cut_the_index_cannot(lab: Lab) -> None:
    run_id = gated_run(lab)
    written = lab.of(run_id, "witness.written", host="h1", outcome="ok")
    assert len(written) == 2  # one per session
    host_file = Path(written[-1]["data"]["path"])
    assert host_file.is_file() and str(lab.root) in str(host_file)  # next to the test's lock
    ok = verify(lab, run_id, "--hosts")
    assert ok.returncode == 0 and "host h1 witness agrees (2 heads" in ok.stdout, combined(ok)

    (lab.state / "witness-index.jsonl").unlink()  # the owner removes the local witness too
    path = lab.journal_file(run_id)
    cut(path, written[-1]["data"]["seq"] - 1)  # below the head the host witnessed
    assert verify(lab, run_id).returncode == 0  # the chain alone cannot tell
    broken = verify(lab, run_id, "--hosts")
    assert broken.returncode == JOURNAL_PROBLEM, combined(broken)
    assert "host h1 witness" in broken.stdout and "cut from the end" in broken.stdout


# -- signatures ----------------------------------------------------------------------


def test_signed_sessions_are_named_and_checkable_with_ssh_keygen(lab: Lab) -> None:
    key, public = keypair(lab.root, "ana")
    signers = allowed(lab.root, "ana@corp", public)
    assert (
        lab.run(lab.book("gate"), "--sign-key", str(key), "--operator", "ceo@corp").returncode == 5
    )
    run_id = lab.only_run()
    resumed = lab.drp("resume", run_id, "--approve", "swap-disk", "--sign-key", str(key))
    assert resumed.returncode == 0, combined(resumed)

    heads = sorted((lab.state / "runs" / run_id / "signatures").glob("*.head"))
    assert len(heads) == 2  # the pause and the end
    for head in heads:  # OpenSSH alone checks them
        subprocess.run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(signers),
                "-I",
                "ana@corp",
                "-n",
                "drp-journal",
                "-s",
                f"{head}.sig",
            ],
            input=head.read_bytes(),
            check=True,
            capture_output=True,
        )
        seq = int(head.name.split(".")[0])
        line = lab.journal_file(run_id).read_text().splitlines()[seq - 1]
        assert f"hash {json.loads(line)['hash']}" in head.read_text()
    ok = verify(lab, run_id, "--allowed-signers", str(signers))
    assert ok.returncode == 0, combined(ok)
    assert ok.stdout.count("signed by ana@corp") == 2
    assert "operator ceo@corp" in ok.stdout  # the label, beside the facts
    started = lab.of(run_id, "run.started")[0]["data"]
    assert started["identity"]["key_fingerprint"].startswith("SHA256:")
    assert started["identity"]["os_user"] and started["identity"]["host"]


@pytest.mark.parametrize("tamper", ["cut", "rewrite", "resign"])
def test_signatures_alone_catch_tampering(lab: Lab, tamper: str) -> None:
    key, public = keypair(lab.root, "ana")
    signers = allowed(lab.root, "ana@corp", public)
    assert lab.run(lab.book("gate"), "--sign-key", str(key)).returncode == 5
    run_id = lab.only_run()
    assert (
        lab.drp("resume", run_id, "--approve", "swap-disk", "--sign-key", str(key)).returncode == 0
    )
    (lab.state / "witness-index.jsonl").unlink()  # no witness: only the signatures
    path = lab.journal_file(run_id)
    if tamper == "cut":  # the signed tail cut (its signature left in place)
        cut(path, len(path.read_text().splitlines()) - 2)
    else:
        rewrite(path, {"operator": "mallory"})
    if tamper == "resign":  # and signed again with a key nobody allowed
        other, _ = keypair(lab.root, "mallory")
        for head in (lab.state / "runs" / run_id / "signatures").glob("*.head"):
            head.with_name(head.name + ".sig").unlink()
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-Y",
                    "sign",
                    "-f",
                    str(other),
                    "-n",
                    "drp-journal",
                    str(head),
                ],
                check=True,
            )
    broken = verify(lab, run_id, "--allowed-signers", str(signers))
    assert broken.returncode == JOURNAL_PROBLEM, combined(broken)
    expect = {
        "cut": "cut from the end",
        "rewrite": "the chain was rewritten",
        "resign": "not signed by any key in the allowed_signers file",
    }[tamper]
    assert expect in broken.stdout


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    sock = tmp_path / "agent.sock"
    started = subprocess.run(
        ["ssh-agent", "-a", str(sock)], capture_output=True, text=True, check=True
    )
    pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    try:
        yield str(sock)
    finally:
        os.kill(pid, 15)


def test_the_agent_signs_by_default_and_no_key_is_journaled(
    lab: Lab, agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRP_SIGN_KEY")
    empty = lab.run(lab.book("hello"))  # the agent holds no key yet: unsigned, and said so
    assert empty.returncode == 0, combined(empty)
    first = lab.only_run()
    signing = lab.of(first, "run.started")[0]["data"]["signing"]
    assert signing["mode"] == "none" and "ssh-agent holds no key" in signing["reason"]

    key, public = keypair(lab.root, "ana")
    subprocess.run(["ssh-add", "-q", str(key)], check=True, capture_output=True)
    key.unlink()  # only the agent can sign now
    assert lab.run(lab.book("gate"), "--new").returncode == 5
    second = next(r for r in lab.run_ids() if r != first)
    assert lab.of(second, "run.started")[0]["data"]["signing"]["mode"] == "agent"
    signers = allowed(lab.root, "ana@corp", public)
    ok = verify(lab, second, "--allowed-signers", str(signers))
    assert ok.returncode == 0 and "signed by ana@corp" in ok.stdout, combined(ok)
    unsigned = verify(lab, first, "--allowed-signers", str(signers))
    assert unsigned.returncode == JOURNAL_PROBLEM and "no valid signature" in unsigned.stdout
