"""The shared journal store against a real PostgreSQL: replication, catch-up, hand-over.

Each test runs the installed ``drp`` against the session sshd and a throwaway
PostgreSQL 15 cluster (tests/pgserver.py) started for this module, or for the one
test that takes the store down.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgserver import PgServer, running_postgres
from sshd import SshServer

from integration.support import Lab, combined, new_lab, stop, wait_until

pytestmark = pytest.mark.integration

BEHIND = "records not yet replicated; `drp store sync` will send them"

NAP = """\
name: handover
targets: all
steps:
  - id: prepare
    run: echo prepared >> {{ vars.dir }}/order
  - id: swap-disk
    manual: Replace the disk in bay 2, then approve.
  - id: nap
    run: |
      echo $$ > {{ vars.dir }}/nap.pid
      while [ ! -e {{ vars.dir }}/go ]; do sleep 0.05; done
  - id: finish
    run: echo finished >> {{ vars.dir }}/order
"""


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_alone() -> Iterator[PgServer]:
    """A cluster of its own, for a test that takes it down."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def init(lab: Lab, pg: PgServer) -> None:
    done = lab.drp("store", "init", "--store", pg.url)
    assert done.returncode == 0, combined(done)


def stored(pg: PgServer, run_id: str) -> bytes:
    """The run's journal as the store holds it, one line per record."""
    rows = pg.sql("SELECT line FROM drp.records WHERE run_id = %s ORDER BY seq", run_id)
    return b"".join(f"{row[0]}\n".encode() for row in rows)


def state_run(state: Path) -> str:
    (run_id,) = [p.name for p in (state / "runs").iterdir()]
    return run_id


def test_init_is_idempotent_and_never_shows_the_password(lab: Lab, pg: PgServer) -> None:
    for _ in range(2):
        done = lab.drp("store", "init", "--store", pg.url)
        assert done.returncode == 0, combined(done)
        assert pg.password not in combined(done)
        assert "********" in done.stdout
    tables = pg.sql("SELECT table_name FROM information_schema.tables WHERE table_schema='drp'")
    assert {t[0] for t in tables} == {"runs", "records", "leases", "approvals"}


def test_runs_replicate_byte_for_byte_and_the_list_shows_both_state_dirs(
    lab: Lab, pg: PgServer
) -> None:
    init(lab, pg)
    first = lab.run(lab.book("hello"), "--store", pg.url)
    assert first.returncode == 0, combined(first)
    one = lab.only_run()
    # a second operator's machine: another state dir, the store from the config file
    other = lab.root / "other-state"
    config = lab.root / "config.yaml"
    config.write_text(f"store: {pg.url}\nnotify: {{}}\n")
    second = lab.drp(
        "run", str(lab.book("hello")), "--state-dir", str(other), env={"DRP_CONFIG": str(config)}
    )
    assert second.returncode == 0, combined(second)
    two = state_run(other)

    assert stored(pg, one) == lab.journal_file(one).read_bytes()
    assert stored(pg, two) == (other / "runs" / two / "events.jsonl").read_bytes()
    assert BEHIND not in combined(first) + combined(second)
    assert pg.password not in combined(first) + combined(second)
    assert pg.password.encode() not in lab.journal_file(one).read_bytes()

    listed = lab.drp("log", "list", "--store", pg.url, "--format", "json")
    assert listed.returncode == 0, combined(listed)
    runs = {r["run"]: r for r in json.loads(listed.stdout)}
    assert {one, two} <= set(runs)
    assert runs[one]["status"] == "ok" and runs[one]["verified"] is True

    shown = lab.drp("log", "show", two, "--store", pg.url)  # not in this state dir
    assert shown.returncode == 0, combined(shown)
    assert two in shown.stdout and "hello" in shown.stdout
    report = lab.drp("log", "report", two, "--store", pg.url, "--format", "json")
    assert report.returncode == 0, combined(report)
    assert two in report.stdout
    exported = lab.drp("log", "export", one, two, "--store", pg.url)
    assert exported.returncode == 0, combined(exported)
    assert exported.stdout.encode() == stored(pg, one) + stored(pg, two)


def test_store_down_the_run_completes_and_catches_up_later(lab: Lab, pg_alone: PgServer) -> None:
    init(lab, pg_alone)
    pg_alone.stop()
    down = lab.run(lab.book("hello"), "--store", pg_alone.url)
    assert down.returncode == 0, combined(down)  # the run never fails because of the store
    assert BEHIND in down.stderr
    assert pg_alone.password not in combined(down)
    hello = lab.only_run()

    paused = lab.run(lab.book("gate"), "--store", pg_alone.url)
    assert paused.returncode == 5, combined(paused)
    assert BEHIND in paused.stderr
    gate = next(r for r in lab.run_ids() if r != hello)

    pg_alone.start()
    sync = lab.drp("store", "sync", hello, "--store", pg_alone.url)
    assert sync.returncode == 0, combined(sync)
    records = len(lab.journal_file(hello).read_bytes().splitlines())
    assert f"{hello}: {records} records sent" in sync.stdout
    assert stored(pg_alone, hello) == lab.journal_file(hello).read_bytes()
    again = lab.drp("store", "sync", hello, "--store", pg_alone.url)
    assert again.returncode == 0 and f"{hello}: up to date" in again.stdout, combined(again)
    assert stored(pg_alone, hello) == lab.journal_file(hello).read_bytes()

    # the resume of the paused run sends what its first session could not
    done = lab.drp("resume", gate, "--approve", "swap-disk", "--store", pg_alone.url)
    assert done.returncode == 0, combined(done)
    assert BEHIND not in done.stderr
    assert stored(pg_alone, gate) == lab.journal_file(gate).read_bytes()


def test_a_store_back_during_the_run_gets_every_record_without_a_sync(
    lab: Lab, pg_alone: PgServer
) -> None:
    init(lab, pg_alone)
    pg_alone.stop()
    book = lab.runbook(NAP, "handover.yaml")
    args = ["run", str(book), "--approve", "swap-disk", "--store", pg_alone.url]
    running = lab.start(*args, "--state-dir", str(lab.state))
    try:
        assert wait_until((lab.root / "nap.pid").exists, 30), "the run never got to its nap"
        pg_alone.start()  # the records queued so far go once the store answers
        (lab.root / "go").touch()
        out, err = running.communicate(timeout=60)
        assert running.returncode == 0, out + err
    finally:
        stop(running)
    assert BEHIND not in err
    run_id = lab.only_run()
    assert stored(pg_alone, run_id) == lab.journal_file(run_id).read_bytes()


def test_two_machines_resume_one_run_at_once_one_is_refused(lab: Lab, pg: PgServer) -> None:
    init(lab, pg)
    book = lab.runbook(NAP, "handover.yaml")
    paused = lab.run(book, "--store", pg.url, "--operator", "ana@night")
    assert paused.returncode == 5, combined(paused)
    run_id = lab.only_run()
    assert (lab.root / "lock-h1").is_dir()  # the paused run still holds the host lock

    alice_state, bob_state = lab.root / "alice", lab.root / "bob"
    resume = ["resume", run_id, "--approve", "swap-disk", "--store", pg.url]
    alice = lab.start(*resume, "--state-dir", str(alice_state), "--operator", "alice@day")
    try:
        assert wait_until((lab.root / "nap.pid").exists, 30), "alice never got going"
        bob = lab.drp(*resume, "--state-dir", str(bob_state), "--operator", "bob@day")
        assert bob.returncode == 7, combined(bob)
        assert "alice@day" in combined(bob) and "lease" in combined(bob)
        assert (lab.root / "order").read_text().split() == ["prepared"]
        (lab.root / "go").touch()
        out, err = alice.communicate(timeout=60)
        assert alice.returncode == 0, out + err
    finally:
        stop(alice)
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]
    assert "fetched run" in err and "hand-over" in err

    journal = (alice_state / "runs" / run_id / "events.jsonl").read_bytes()
    resumed = [json.loads(x) for x in journal.splitlines() if b'"run.resumed"' in x]
    handover = resumed[-1]["data"]["handover"]
    assert handover["from"]["operator"] == "ana@night"
    assert handover["to"]["operator"] == "alice@day"
    assert stored(pg, run_id) == journal  # bob's refused attempt wrote nothing
    assert pg.password.encode() not in journal  # resume's command line, masked
    leases = pg.sql("SELECT holder, expires <= now() FROM drp.leases WHERE run_id = %s", run_id)
    assert leases == [("alice@day", True)]  # released at the end

    # ana's machine still has the run as paused: it must not run the rest again
    stale = lab.drp(*resume, "--operator", "ana@night")
    assert stale.returncode == 6, combined(stale)
    assert "went on elsewhere" in combined(stale)
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]
    assert stored(pg, run_id) == journal


def test_a_tampered_row_is_caught_by_verify_and_a_diverging_store_by_sync(
    lab: Lab, pg: PgServer
) -> None:
    init(lab, pg)
    assert lab.run(lab.book("hello"), "--store", pg.url).returncode == 0
    run_id = lab.only_run()
    clean = lab.drp("log", "verify", run_id, "--store", pg.url)
    assert clean.returncode == 0 and "chain verified" in clean.stdout, combined(clean)

    (line,) = pg.sql("SELECT line FROM drp.records WHERE run_id = %s AND seq = 2", run_id)[0]
    pg.sql(
        "UPDATE drp.records SET line = %s WHERE run_id = %s AND seq = 2",
        str(line).replace('"ts":"2', '"ts":"1', 1),
        run_id,
    )
    tampered = lab.drp("log", "verify", run_id, "--store", pg.url)
    assert tampered.returncode == 6, combined(tampered)
    assert "FAILED" in tampered.stdout and "hash mismatch" in tampered.stdout
    elsewhere = lab.root / "elsewhere"  # a hand-over never takes in a tampered journal
    taken = lab.drp("resume", run_id, "--store", pg.url, "--state-dir", str(elsewhere))
    assert taken.returncode == 6, combined(taken)
    assert "does not verify" in combined(taken)
    assert not (elsewhere / "runs" / run_id / "events.jsonl").exists()

    pg.sql("UPDATE drp.records SET hash = %s WHERE run_id = %s AND seq = 3", "0" * 64, run_id)
    pg.sql("DELETE FROM drp.records WHERE run_id = %s AND seq = 4", run_id)
    sync = lab.drp("store", "sync", run_id, "--store", pg.url)
    assert sync.returncode == 6, combined(sync)
    assert "store diverges" in sync.stdout and "seq 3" in sync.stdout
    assert not pg.sql("SELECT 1 FROM drp.records WHERE run_id = %s AND seq = 4", run_id)


def test_a_missing_store_url_is_a_clear_error(lab: Lab) -> None:
    done = lab.drp("store", "sync", env={"DRP_CONFIG": str(lab.root / "none.yaml")})
    assert done.returncode == 2, combined(done)
    assert "none.yaml" in combined(done)


def test_a_store_that_does_not_answer_is_told_during_the_run_and_notified(
    lab: Lab, pg_alone: PgServer
) -> None:
    init(lab, pg_alone)
    pg_alone.stop()
    notices = lab.root / "notices.jsonl"
    book = lab.runbook(
        "name: told\ntargets: all\n"
        "notify:\n  channels:\n"
        f"    - {{name: ops, on: [store],\n"
        f"       command: [sh, -c, 'cat >> {notices}; echo >> {notices}']}}\n"
        "steps:\n  - {id: a, run: 'true'}\n  - {id: b, run: 'true'}\n",
        "told.yaml",
    )
    done = lab.run(book, "--store", pg_alone.url)
    assert done.returncode == 0, combined(done)  # the run goes on without the store
    run_id = lab.only_run()
    assert "store: the journal store does not answer" in done.stdout  # said as it happened
    assert pg_alone.password not in combined(done)
    sent = [json.loads(line) for line in notices.read_text().splitlines() if line.strip()]
    assert [n["event"] for n in sent] == ["store"]  # once per outage, not once per record
    assert sent[0]["command"] == f"drp store sync {run_id}" and sent[0]["run"] == run_id
    assert pg_alone.password not in notices.read_text()
    # the notifier's delivery is journaled, the outage itself is not the run's record
    types = [json.loads(line)["type"] for line in lab.journal_file(run_id).read_text().splitlines()]
    assert "notify.sent" in types and "store.behind" not in types
