"""Approvals by someone else: a gate with ``approvers:`` waits for signed ``drp approve``s.

Real parts: the session sshd, real ``ssh-keygen`` keys for four people (ana runs the
run; bob and carol may approve; eve is in no allowed_signers line), a real
allowed_signers file, and, for the store, a throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pgserver import PgServer, running_postgres
from sshd import SshServer

from integration.support import Lab, combined, new_lab, stop, wait_until

pytestmark = pytest.mark.integration

BOOK = """\
name: two-keys
targets: all
steps:
  - id: prepare
    run: echo prepared >> {{ vars.dir }}/order
  - id: swap-disk
    manual: Swap the disk in bay 2.
    approvers: [bob, carol, ana]
    min_approvals: 2
  - id: finish
    run: echo finished >> {{ vars.dir }}/order
"""


@dataclass(frozen=True)
class Team:
    keys: dict[str, Path]
    allowed: Path


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Team:
    folder = tmp_path_factory.mktemp("keys")
    keys: dict[str, Path] = {}
    lines = []
    for name in ("ana", "bob", "carol", "eve"):
        key = folder / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
            check=True,
        )
        keys[name] = key
        if name != "eve":
            lines.append(f"{name} {key.with_suffix('.pub').read_text().strip()}")
    allowed = folder / "allowed_signers"
    allowed.write_text("\n".join(lines) + "\n")
    return Team(keys, allowed)


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer, team: Team, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.setenv("DRP_ALLOWED_SIGNERS", str(team.allowed))
    monkeypatch.delenv("DRP_STORE", raising=False)
    monkeypatch.delenv("DRP_SIGN_KEY", raising=False)
    monkeypatch.setenv("DRP_CONFIG", str(tmp_path / "no-config.yaml"))
    (tmp_path / "no-config.yaml").write_text("{}\n")
    return new_lab(tmp_path, sshd)


def start_run(lab: Lab, team: Team, *extra: str) -> subprocess.Popen[str]:
    book = lab.runbook(BOOK)
    return lab.start(
        "run", str(book), "-i", str(lab.inventory), "--operator", "ana",
        "--sign-key", str(team.keys["ana"]), *extra,
    )  # fmt: skip


def waiting(lab: Lab) -> str:
    """The run id, once its gate waits for approvals."""

    def waits() -> bool:
        ids = lab.run_ids()
        journal = lab.journal_file(ids[0]) if len(ids) == 1 else None
        return journal is not None and journal.is_file() and bool(lab.of(ids[0], "step.waiting"))

    assert wait_until(waits, 30)
    return lab.only_run()


def approve(
    lab: Lab, team: Team, who: str, run_id: str, *extra: str, state: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return lab.drp(
        "approve", run_id, "swap-disk", "--sign-key", str(team.keys[who]),
        "--allowed-signers", str(team.allowed), *extra,
        env={"DRP_STATE_DIR": str(state or lab.state)},
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, err = process.communicate(timeout=60)
    finally:
        stop(process)
    return process.returncode, out + err


def refused_lines(lab: Lab, run_id: str) -> list[str]:
    return [
        str(e["data"]["refused"])
        for e in lab.of(run_id, "step.progress", step="swap-disk")
        if "refused" in e.get("data", {})
    ]


def test_a_two_approver_gate_goes_on_by_itself_and_refuses_the_operator_and_forgeries(
    lab: Lab, team: Team
) -> None:
    process = start_run(lab, team)
    try:
        run_id = waiting(lab)
        said = lab.of(run_id, "step.waiting", step="swap-disk")[-1]
        assert said["data"]["approvers"] == ["bob", "carol", "ana"]
        assert said["data"]["min_approvals"] == 2
        assert f"drp approve {run_id} swap-disk" in said["message"]

        own = approve(lab, team, "ana", run_id)  # ana runs it: her approval never counts
        assert own.returncode == 2, combined(own)
        assert "must come from someone else" in combined(own)
        stranger = approve(lab, team, "eve", run_id)
        assert stranger.returncode == 2, combined(stranger)
        assert "not allowed to approve" in combined(stranger)

        first = approve(lab, team, "bob", run_id, "--note", "disk is in")
        assert first.returncode == 0, combined(first)
        # a forgery: bob's signed statement, edited to say carol; and an unsigned one
        (bob_file,) = (lab.state / "runs" / run_id / "approvals").glob("*.approval")
        forged = bob_file.with_name("swap-disk.carol.forged.approval")
        forged.write_text(bob_file.read_text().replace("approver bob", "approver carol"))
        bob_file.with_name(bob_file.name + ".sig").replace(forged.with_name(forged.name + ".sig"))
        forged.with_name("swap-disk.carol.bare.approval").write_text(bob_file.read_text())
        # ana's own, validly signed by her key with OpenSSH alone: still not counted
        own_file = forged.with_name("swap-disk.ana.own.approval")
        own_file.write_text(bob_file.read_text().replace("approver bob", "approver ana"))
        subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", str(team.keys["ana"]), "-n", "drp-approval",
             str(own_file)],
            check=True,
        )  # fmt: skip
        bob_file.unlink()  # bob's own approval gone: only the forgeries remain
        assert wait_until(lambda: len(refused_lines(lab, run_id)) >= 3, 20)
        assert process.poll() is None  # still waiting: nothing counted
        problems = " | ".join(refused_lines(lab, run_id))
        assert "does not verify for carol" in problems
        assert "is not signed" in problems
        assert "ana runs this run (ana): an approval must come from someone else" in problems

        assert approve(lab, team, "bob", run_id).returncode == 0
        assert approve(lab, team, "carol", run_id, "--note", "checked").returncode == 0
        code, out = finish(process)
    finally:
        stop(process)
    assert code == 0, out
    assert "waiting for 2 more approval(s) from bob, carol\n" in out  # never from ana
    assert "approval not counted: the approval by carol" in out
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]
    approved = lab.of(run_id, "step.approved", step="swap-disk")[-1]["data"]
    assert sorted(a["by"] for a in approved["approvals"]) == ["bob", "carol"]
    assert "carol: checked" in approved["note"]
    report = lab.drp("log", "report", run_id, "--format", "md")
    assert report.returncode == 0, combined(report)
    assert "approved by" in report.stdout and "carol: checked" in report.stdout
    verified = lab.drp("log", "verify", run_id)
    assert verified.returncode == 0, combined(verified)


def test_approve_on_the_command_line_cannot_bypass_the_approvers(lab: Lab, team: Team) -> None:
    book = lab.runbook(BOOK)
    refused = lab.run(book, "--approve", "swap-disk", "--sign-key", str(team.keys["ana"]))
    assert refused.returncode == 2, combined(refused)
    assert "not of the run's operator" in combined(refused)
    assert "drp approve" in combined(refused)
    assert lab.run_ids() == []  # refused before anything ran
    assert not (lab.root / "order").exists()


def test_resume_after_a_kill_counts_the_approvals_given_meanwhile(lab: Lab, team: Team) -> None:
    process = start_run(lab, team)
    try:
        run_id = waiting(lab)
    finally:
        stop(process)  # killed while it waited
    assert approve(lab, team, "bob", run_id).returncode == 0
    assert approve(lab, team, "carol", run_id).returncode == 0
    resume = ("resume", run_id, "--operator", "ana", "--sign-key", str(team.keys["ana"]))
    nowhere = {"DRP_ALLOWED_SIGNERS": ""}  # and no allowed_signers: in the config file
    refused = lab.drp(*resume, env=nowhere)
    assert refused.returncode == 2, combined(refused)
    assert "needs the team's allowed_signers file" in combined(refused)
    done = lab.drp(*resume, "--allowed-signers", str(team.allowed), env=nowhere)
    assert done.returncode == 0, combined(done)
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]
    resumed_at = lab.of(run_id, "run.resumed")[-1]["seq"]
    waits = [e for e in lab.of(run_id, "step.waiting") if e["seq"] > resumed_at]
    assert waits == []  # the approvals were there: no new wait


def test_a_bad_approver_list_is_a_located_error(lab: Lab) -> None:
    book = lab.runbook(
        """\
        name: bad
        targets: all
        steps:
          - id: a
            run: echo hi
            approvers: [bob]
          - id: b
            manual: do it
            approvers: [bob, carol]
            min_approvals: 3
          - id: c
            run: echo hi
            gate_timeout: 1h
          - id: d
            manual: do it
            on_timeout: fail
        """
    )
    done = lab.drp("plan", str(book), "-i", str(lab.inventory))
    assert done.returncode == 2, combined(done)
    out = combined(done)
    assert f"{book}:4:5" in out and "'approvers' goes with a manual step" in out
    assert f"{book}:7:5" in out and "'min_approvals: 3' is more than the 2 approver" in out
    assert f"{book}:11:5" in out and "'gate_timeout' goes with a manual step" in out
    assert f"{book}:14:5" in out and "'on_timeout' needs 'gate_timeout: DURATION'" in out


# -- the store: approvals from other machines --------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_postgres() as server:
        yield server


def test_approvals_from_other_machines_through_the_store_and_an_edited_row(
    lab: Lab, team: Team, pg: PgServer
) -> None:
    assert lab.drp("store", "init", "--store", pg.url).returncode == 0
    process = start_run(lab, team, "--store", pg.url)
    try:
        run_id = waiting(lab)
        assert wait_until(
            lambda: pg.sql(
                "SELECT count(*) FROM drp.records WHERE run_id = %s AND line LIKE %s",
                run_id,
                '%"step.waiting"%',
            )[0][0]
        )
        elsewhere = lab.root / "bob-machine"
        first = approve(lab, team, "bob", run_id, "--store", pg.url, state=elsewhere)
        assert first.returncode == 0, combined(first)
        assert "in the store" in first.stdout
        assert not (elsewhere / "runs").exists()  # nothing fetched on bob's machine
        pg.sql("UPDATE drp.approvals SET statement = replace(statement, 'note ', 'note X')")
        assert wait_until(lambda: refused_lines(lab, run_id), 20)
        assert "does not verify for bob" in refused_lines(lab, run_id)[0]
        assert process.poll() is None

        again = approve(lab, team, "bob", run_id, "--store", pg.url, state=elsewhere)
        assert again.returncode == 0, combined(again)
        carol = approve(
            lab, team, "carol", run_id, "--store", pg.url, state=lab.root / "carol-machine"
        )
        assert carol.returncode == 0, combined(carol)
        code, out = finish(process)
    finally:
        stop(process)
    assert code == 0, out
    approved = lab.of(run_id, "step.approved", step="swap-disk")[-1]["data"]
    assert sorted(a["by"] for a in approved["approvals"]) == ["bob", "carol"]


# -- gate deadlines ----------------------------------------------------------------

DEADLINE = """\
name: deadline
targets: all
notify:
  channels:
    - name: pager
      command: [sh, -c, "cat >> {dir}/notices"]
      on: [deadline]
steps:
  - id: prepare
    run: echo prepared >> {{{{ vars.dir }}}}/order
  - id: swap-disk
    manual: Swap the disk in bay 2.
    approvers: [bob]
    gate_timeout: 1s
    on_timeout: {policy}
  - id: finish
    run: echo finished >> {{{{ vars.dir }}}}/order
"""


def deadline_book(lab: Lab, policy: str) -> Path:
    return lab.runbook(DEADLINE.format(dir=lab.root, policy=policy), f"deadline-{policy}.yaml")


def notices(lab: Lab) -> list[dict[str, object]]:
    path = lab.root / "notices"
    if not path.exists():
        return []
    decoder, text, out = json.JSONDecoder(), path.read_text(), []
    index = 0
    while index < len(text.rstrip()):
        item, index = decoder.raw_decode(text, index)
        out.append(item)
        while index < len(text) and text[index].isspace():
            index += 1
    return out


def test_a_gate_deadline_that_pauses_ends_the_session_and_notifies(lab: Lab, team: Team) -> None:
    done = lab.run(deadline_book(lab, "pause"), "--sign-key", str(team.keys["ana"]))
    assert done.returncode == 5, combined(done)  # paused
    run_id = lab.only_run()
    (late,) = lab.of(run_id, "step.deadline", step="swap-disk")
    assert late["data"] == {"kind": "manual", "gate_timeout": 1.0, "on_timeout": "pause"}
    # a pause, as any: the run still owns the host (resume goes on), the session ended
    assert not lab.of(run_id, "lock.released", host="h1")
    assert lab.outcome(run_id) == "paused"
    assert f"drp approve {run_id} swap-disk" in combined(done)
    assert wait_until(lambda: notices(lab), 10)
    (sent,) = notices(lab)
    assert sent["event"] == "deadline" and sent["step"] == "swap-disk"
    assert sent["command"] == f"drp resume {run_id}"
    assert (lab.root / "order").read_text().split() == ["prepared"]


def test_a_gate_deadline_that_fails_fails_the_host(lab: Lab, team: Team) -> None:
    done = lab.run(deadline_book(lab, "fail"), "--sign-key", str(team.keys["ana"]))
    assert done.returncode == 1, combined(done)
    run_id = lab.only_run()
    (late,) = lab.of(run_id, "step.deadline", step="swap-disk")
    assert late["message"] == "no answer within 1.0s (gate_timeout): the step fails"
    (host,) = lab.of(run_id, "host.finished", host="h1")
    assert host["outcome"] == "failed"
    assert not (lab.root / "order").read_text().split()[1:]  # finish never ran
    report = lab.drp("log", "report", run_id, "--format", "md")
    assert report.returncode == 0, combined(report)
    assert "no answer within 1.0s" in report.stdout
    assert lab.outcome(run_id) == "failed"


def test_a_gate_deadline_that_notifies_keeps_waiting_for_the_approval(lab: Lab, team: Team) -> None:
    book = deadline_book(lab, "notify")
    process = lab.start(
        "run", str(book), "-i", str(lab.inventory), "--sign-key", str(team.keys["ana"])
    )
    try:
        run_id = waiting(lab)
        assert wait_until(lambda: lab.of(run_id, "step.deadline"), 20)
        assert wait_until(lambda: notices(lab), 10)
        assert process.poll() is None  # still waiting
        assert approve(lab, team, "bob", run_id).returncode == 0
        code, out = finish(process)
    finally:
        stop(process)
    assert code == 0, out
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]
    assert notices(lab)[0]["event"] == "deadline"
