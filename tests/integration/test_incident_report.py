"""One incident, several runs, through the CLI against a real sshd: ``--incident`` and
``$DRP_INCIDENT`` tag the runs, ``drp log report --incident`` tells them as one story.

Run 1 pauses at a gate (tagged with the flag) and is resumed by another operator (the
tag from ``$DRP_INCIDENT``); run 2 (tagged from ``$DRP_INCIDENT``) takes a secret param,
fails and rolls back; run 3 is of no incident. Bad ids, an unknown incident and a
resume into another incident are refused with located errors, exit 2.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration

SEALED = """\
    name: sealed
    targets: all
    defaults: {on_failure: rollback}
    params:
      password: {secret: true, required: true}
    steps:
      - id: unseal
        run: echo unsealing with {{ params.password }}
        rollback: echo resealing {{ params.password }}
      - id: check
        run: echo check refused {{ params.password }} >&2; exit 4
"""


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.delenv("DRP_INCIDENT", raising=False)
    monkeypatch.setenv("DRP_SIGN_KEY", "none")
    return new_lab(tmp_path, sshd)


def _new_run(lab: Lab, before: list[str]) -> str:
    (run_id,) = set(lab.run_ids()) - set(before)
    return run_id


@pytest.fixture
def incident(lab: Lab) -> tuple[str, str, str, str]:
    """The incident id, its two runs, and the secret given to the second."""
    tag, secret = f"inc-{uuid.uuid4().hex[:8]}", f"s3cr3t-{uuid.uuid4().hex}"
    env = {"DRP_INCIDENT": tag}
    paused = lab.run(lab.book("gate"), "--incident", tag, "--operator", "ana@ops")
    assert paused.returncode == 5, combined(paused)
    first = lab.only_run()
    done = lab.drp("resume", first, "--approve", "swap-disk", "--operator", "bob@ops", env=env)
    assert done.returncode == 0, combined(done)
    book, before = lab.runbook(SEALED, "sealed.yaml"), lab.run_ids()
    failed = lab.drp("run", str(book), "-p", f"password={secret}", "--operator", "cy", env=env)
    assert failed.returncode == 1, combined(failed)
    second = _new_run(lab, before)
    before = lab.run_ids()
    assert lab.run(lab.book("hello")).returncode == 0  # of no incident
    assert lab.of(_new_run(lab, before), "run.started")[0]["data"].get("incident") is None
    return tag, first, second, secret


def test_the_tag_is_journaled_and_listed(lab: Lab, incident: tuple[str, str, str, str]) -> None:
    tag, first, second, _ = incident
    assert lab.of(first, "run.started")[0]["data"]["incident"] == tag  # the flag
    assert lab.of(first, "run.resumed")[0]["data"]["incident"] == tag  # $DRP_INCIDENT
    assert lab.of(second, "run.started")[0]["data"]["incident"] == tag  # $DRP_INCIDENT
    listed = lab.drp("log", "list", "--incident", tag, "--format", "json")
    assert listed.returncode == 0, combined(listed)
    runs = json.loads(listed.stdout)
    assert [r["run"] for r in runs] == [second, first]
    assert {r["incident"] for r in runs} == {tag}
    table = lab.drp("log", "list").stdout
    assert "incident" in table and table.count(tag) == 2
    assert f"gate (ok), incident {tag}" in lab.drp("log", "show", first).stdout
    assert f"- **Incident**: {tag}" in lab.drp("log", "report", second).stdout


def test_one_report_in_markdown_json_and_html_secrets_masked(
    lab: Lab, incident: tuple[str, str, str, str], tmp_path: Path
) -> None:
    tag, first, second, secret = incident
    md = lab.drp("log", "report", "--incident", tag)
    assert md.returncode == 0, combined(md)
    text = md.stdout
    assert f"# Incident {tag}: 2 runs" in text
    assert (
        f"| r1 | {first} | gate | ok |" in text and f"| r2 | {second} | sealed | failed |" in text
    )
    assert "all 2 journals verified while reading them" in text
    assert "session r1/s2 (resume)" in text and "operator bob@ops" in text
    assert "(manual) approved by **bob@ops**" in text
    assert "- h1: ssh 127.0.0.1 in session r2/s1, 2 steps" in text
    assert "rollback of unseal: rolled-back (session r2/s1)" in text
    assert "check: attempt 1 (action) failed, exit 4" in text
    assert "Between sessions" in text and "password=********" in text
    data = json.loads(lab.drp("log", "report", "--incident", tag, "-f", "json").stdout)
    assert data["incident"] == tag and [r["run"] for r in data["runs"]] == [first, second]
    assert data["integrity"]["ok"] is True and data["integrity"]["journals"] == 2
    assert [(s["run"], s["kind"]) for s in data["sessions"]] == [
        (first, "run"),
        (first, "resume"),
        (second, "run"),
    ]
    assert [(p["run"], p["via"], p["host"]) for p in data["paths"]] == [
        (first, "ssh", "h1"),
        (first, "ssh", "h1"),
        (second, "ssh", "h1"),
    ]
    assert [a["by"] for a in data["approvals"]] == ["bob@ops"]
    assert [f["step"] for f in data["failures"]] == ["check"]
    assert sum(data["time"][k] for k in ("human_wait", "machine", "idle")) == pytest.approx(
        data["time"]["total"]
    )
    out = tmp_path / "incident.html"
    html = lab.drp("log", "report", "--incident", tag, "-f", "html", "-o", str(out))
    assert html.returncode == 0, combined(html)
    page = out.read_text()
    assert '<svg id="timeline"' in page and page.count('class="run-row"') == 2
    for shown in (text, json.dumps(data), page, md.stderr):
        assert secret not in shown


def test_bad_ids_unknown_incidents_and_moving_a_run_are_refused(lab: Lab) -> None:
    for args, env in (
        (["run", str(lab.book("hello")), "--incident", "a b"], {}),
        (["run", str(lab.book("hello"))], {"DRP_INCIDENT": "../etc"}),
        (["log", "report", "--incident", "x/y"], {}),
        (["log", "list", "--incident", "-x"], {}),
    ):
        bad = lab.drp(*args, env=env)
        assert bad.returncode == 2, combined(bad)
        where = "$DRP_INCIDENT" if env else "--incident"
        assert f"{where}: incident id" in bad.stderr and "e.g. 2019-09-disk" in bad.stderr
        assert "Traceback" not in combined(bad)
    assert lab.run_ids() == []  # refused before anything ran
    unknown = lab.drp("log", "report", "--incident", "2019-10-net")
    assert unknown.returncode == 2, combined(unknown)
    assert "no run of incident '2019-10-net'" in unknown.stderr
    assert "--incident ID" in unknown.stderr and "Traceback" not in combined(unknown)
    both = lab.drp("log", "report", "latest", "--incident", "x")
    assert both.returncode == 2 and "give a RUN or --incident ID" in both.stderr
    assert lab.run(lab.book("gate"), "--incident", "night-1").returncode == 5
    run_id = lab.only_run()
    moved = lab.drp("resume", run_id, "--approve", "swap-disk", env={"DRP_INCIDENT": "night-2"})
    assert moved.returncode == 2, combined(moved)
    assert f"run {run_id} belongs to incident 'night-1', not 'night-2'" in moved.stderr
    assert lab.of(run_id, "run.resumed") == []  # refused before the journal was touched
    wins = lab.drp("resume", run_id, "--approve", "swap-disk", "--incident", "night-1",
                   env={"DRP_INCIDENT": "night-2"})  # fmt: skip
    assert wins.returncode == 0, combined(wins)  # the flag wins over the variable


def test_the_dry_run_plan_names_the_incident(lab: Lab) -> None:
    dry = lab.run(lab.book("hello"), "--dry-run", "--incident", "2019-09-disk")
    assert dry.returncode == 0, combined(dry)
    assert "incident: 2019-09-disk" in dry.stdout
    as_json = lab.run(lab.book("hello"), "--dry-run", "--incident", "night-1", "-f", "json")
    assert json.loads(as_json.stdout)["incident"] == "night-1"
    assert lab.run_ids() == []
