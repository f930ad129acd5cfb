"""The engine on FakeTransport: ordering, failure policies, rollouts, guards, captures,
retries, gates, in-doubt steps and secret masking. No network."""

from __future__ import annotations

import _thread
import textwrap
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from drp.engine.events import Event, EventType
from drp.engine.executor import Executor, RunResult, batches
from drp.engine.options import (
    Decision,
    GateAnswer,
    GateRequest,
    HostResume,
    NoOperator,
    Operator,
    RunOptions,
)
from drp.engine.plan import Plan, build_plan
from drp.engine.retry import AttemptFailed, is_retryable
from drp.errors import StepFailed
from drp.inventory import load_inventory
from drp.results import CommandResult, HostStatus, RunStatus
from drp.runbook.loader import load_runbook
from drp.runbook.model import RetryPolicy
from drp.runbook.params import resolve_params
from drp.testing import FakeTransport, Reply

RUN_ID = "20260101-000000-test-0000"


@dataclass
class Scripted:
    """An Operator that answers from a list (the last answer repeats) and remembers questions."""

    decisions: list[Decision]
    by: str = "alice"
    asked: list[GateRequest] = field(default_factory=list)

    def decide(self, request: GateRequest) -> GateAnswer:
        self.asked.append(request)
        decision = self.decisions[min(len(self.asked), len(self.decisions)) - 1]
        return GateAnswer(decision, self.by, "scripted")


@dataclass
class World:
    plan: Plan
    fakes: dict[str, FakeTransport]
    events: list[Event] = field(default_factory=list)
    result: RunResult | None = None

    def execute(
        self,
        operator: Operator | None = None,
        resume: dict[str, HostResume] | None = None,
        **options: Any,
    ) -> RunResult:
        opts = RunOptions(run_id=RUN_ID, operator="tester", **{"lock": False, **options})
        executor = Executor(
            self.plan,
            opts,
            emit=self.events.append,
            operator=operator or NoOperator(),
            transports=lambda host: self.fakes[host.name],
            local=FakeTransport("local"),
            resume=resume,
        )
        self.result = executor.execute(resumed=resume is not None)
        return self.result

    def of(self, type_: EventType, **match: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.type is type_ and all(getattr(e, k) == v for k, v in match.items())
        ]

    def finished(self, host: str = "h1") -> dict[str, str | None]:
        return {e.step or "": e.outcome for e in self.of(EventType.STEP_FINISHED, host=host)}


def world(
    tmp_path: Path,
    runbook: str,
    hosts: tuple[str, ...] = ("h1",),
    params: dict[str, Any] | None = None,
) -> World:
    book = tmp_path / "book.yaml"
    book.write_text(textwrap.dedent(runbook))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "hosts:\n"
        + "".join(f"  {h}: {{address: 192.0.2.{i + 1}, user: root}}\n" for i, h in enumerate(hosts))
    )
    loaded = load_runbook(book)
    inv = load_inventory(inventory)
    plan = build_plan(loaded, inv, resolve_params(loaded, params or {}, inv))
    return World(plan, {h: FakeTransport(h) for h in hosts})


# -- rollback and on_failure ------------------------------------------------------------

ROLLBACK = """
name: t
targets: all
defaults: {on_failure: rollback}
steps:
  - {id: a, run: do-a, rollback: undo-a}
  - {id: b, run: do-b}
  - {id: c, run: do-c, rollback: undo-c}
  - {id: d, run: do-d, rollback: undo-d}
  - {id: e, run: do-e, rollback: undo-e}
"""


def test_rollback_undoes_completed_steps_newest_first(tmp_path: Path) -> None:
    w = world(tmp_path, ROLLBACK)
    w.fakes["h1"].on("^do-d", Reply(1, stderr="boom"))
    assert w.execute().status is RunStatus.FAILED
    assert w.fakes["h1"].commands == ["do-a", "do-b", "do-c", "do-d", "undo-d", "undo-c", "undo-a"]
    assert [e.step for e in w.of(EventType.ROLLBACK_STARTED)] == ["d", "c", "a"]
    assert "e" not in w.finished()


def test_on_failure_continue_goes_on_and_abort_stops(tmp_path: Path) -> None:
    text = """
    name: t
    targets: all
    steps:
      - {id: a, run: do-a, on_failure: continue}
      - {id: b, run: do-b}
      - {id: c, run: do-c}
    """
    w = world(tmp_path, text)
    w.fakes["h1"].on("^do-a", Reply(2)).on("^do-b", Reply(3))
    result = w.execute()
    assert w.finished() == {"a": "failed", "b": "failed"}  # a continued, b aborted
    assert "do-c" not in w.fakes["h1"].commands
    assert result.hosts == {"h1": HostStatus.FAILED}
    assert not w.of(EventType.ROLLBACK_STARTED)


# -- rollouts ---------------------------------------------------------------------------

FOUR = ("h1", "h2", "h3", "h4")
ONE_STEP = """
name: t
targets: all
{extra}
steps:
  - {{id: a, run: do-a}}
"""


def test_batches_by_count_and_percentage(tmp_path: Path) -> None:
    hosts = list(world(tmp_path, ONE_STEP.format(extra=""), hosts=(*FOUR, "h5")).plan.hosts)
    sizes = lambda serial: [len(b) for b in batches(hosts, serial)]  # noqa: E731
    assert sizes(None) == [5]
    assert sizes(2) == [2, 2, 1]
    assert sizes("40%") == [2, 2, 1]
    assert sizes("10%") == [1, 1, 1, 1, 1]  # never an empty batch
    assert sizes("100%") == [5]
    assert [h.name for b in batches(hosts, 2) for h in b] == ["h1", "h2", "h3", "h4", "h5"]


def test_serial_batches_run_one_after_another(tmp_path: Path) -> None:
    w = world(tmp_path, ONE_STEP.format(extra="serial: 2"), hosts=FOUR)
    assert w.execute().status is RunStatus.OK
    order = [
        (e.type, e.host)
        for e in w.events
        if e.type in (EventType.HOST_CONNECTED, EventType.HOST_FINISHED)
    ]
    first_batch_done = max(
        i for i, (t, h) in enumerate(order) if h in ("h1", "h2") and t is EventType.HOST_FINISHED
    )
    second_batch_start = min(i for i, (t, h) in enumerate(order) if h in ("h3", "h4"))
    assert first_batch_done < second_batch_start


def test_max_fail_percentage_halts_the_remaining_batches(tmp_path: Path) -> None:
    w = world(tmp_path, ONE_STEP.format(extra="serial: 1\nmax_fail_percentage: 0"), hosts=FOUR)
    w.fakes["h2"].on("do-a", Reply(1))
    result = w.execute()
    assert result.status is RunStatus.FAILED
    assert result.hosts == {
        "h1": HostStatus.OK,
        "h2": HostStatus.FAILED,
        "h3": HostStatus.NOT_RUN,
        "h4": HostStatus.NOT_RUN,
    }
    assert w.fakes["h3"].commands == [] and w.fakes["h4"].commands == []


def test_max_fail_percentage_not_exceeded_keeps_rolling(tmp_path: Path) -> None:
    w = world(tmp_path, ONE_STEP.format(extra="serial: 2\nmax_fail_percentage: 50"), hosts=FOUR)
    w.fakes["h1"].on("do-a", Reply(1))
    result = w.execute()
    assert result.hosts["h3"] is HostStatus.OK and result.hosts["h4"] is HostStatus.OK
    assert w.fakes["h4"].commands == ["do-a"]


def test_cli_serial_overrides_the_runbook(tmp_path: Path) -> None:
    w = world(tmp_path, ONE_STEP.format(extra="serial: 1\nmax_fail_percentage: 0"), hosts=FOUR)
    w.fakes["h1"].on("do-a", Reply(1))
    result = w.execute(serial=4, max_fail_percentage=100.0)
    assert all(result.hosts[h] is HostStatus.OK for h in ("h2", "h3", "h4"))


# -- when, unless, capture --------------------------------------------------------------


def test_when_false_skips_and_when_true_runs(tmp_path: Path) -> None:
    text = """
    name: t
    targets: all
    params: {go: {type: bool, default: false}}
    steps:
      - {id: maybe, run: do-maybe, when: params.go}
      - {id: always, run: do-always, when: not params.go}
    """
    w = world(tmp_path, text)
    w.execute()
    assert w.fakes["h1"].commands == ["do-always"]
    skipped = w.of(EventType.STEP_SKIPPED, step="maybe")
    assert skipped and skipped[0].data["reason"] == "when"


@pytest.mark.parametrize(("guard_exit", "runs"), [(0, False), (1, True)])
def test_unless_guard_exit_zero_skips(tmp_path: Path, guard_exit: int, runs: bool) -> None:
    text = """
    name: t
    targets: all
    steps:
      - {id: a, run: do-a, unless: check-a}
    """
    w = world(tmp_path, text)
    w.fakes["h1"].on("^check-a", Reply(guard_exit))
    assert w.execute().status is RunStatus.OK
    assert ("do-a" in w.fakes["h1"].commands) is runs
    assert w.finished()["a"] == ("ok" if runs else "skipped")


def test_a_guard_says_why_a_step_is_skipped_unless_the_step_is_sensitive(tmp_path: Path) -> None:
    text = """
    name: t
    targets: all
    steps:
      - {id: a, run: do-a, unless: check-a}
      - {id: b, run: do-b, unless: check-b, sensitive: true}
      - {id: c, run: do-c, unless: check-c}
    """
    w = world(tmp_path, text)
    w.fakes["h1"].on("^check-a", Reply(0, "looking\nalready failed over\n"))
    w.fakes["h1"].on("^check-b", Reply(0, "token=s3cret\n"))
    w.fakes["h1"].on("^check-c", Reply(0))
    assert w.execute().status is RunStatus.OK
    messages = {e.step: e.message for e in w.of(EventType.STEP_FINISHED)}
    assert messages == {
        "a": "guard: already failed over",
        "b": "guard: already done",
        "c": "guard: already done",
    }


def test_a_guard_that_cannot_run_fails_its_step_under_the_step_policy(tmp_path: Path) -> None:
    text = """
    name: t
    targets: all
    steps:
      - {id: a, run: do-a, rollback: undo-a}
      - {id: b, run: do-b, unless: check-b, on_failure: continue}
      - {id: c, run: do-c, unless: check-c, on_failure: rollback}
      - {id: d, run: do-d}
    """
    w = world(tmp_path, text)
    w.fakes["h1"].on("^check-", Reply(error="timeout"))
    assert w.execute().status is RunStatus.FAILED
    assert w.finished() == {"a": "ok", "b": "failed", "c": "failed"}
    assert w.fakes["h1"].ran("^(do|undo)-") == ["do-a", "undo-a"]
    failed = w.of(EventType.STEP_FINISHED, step="b")[0]
    assert "guard of b failed" in failed.message


def test_results_carry_their_attempt_number(tmp_path: Path) -> None:
    text = """
    name: t
    targets: all
    steps:
      - {id: a, run: flaky, retry: {attempts: 3, delay: 0s, failures: [exit]}}
    """
    w = world(tmp_path, text)
    w.fakes["h1"].on("^flaky", Reply(1), Reply(1), Reply(0))
    assert w.execute().status is RunStatus.OK
    attempts = [e.attempt for e in w.of(EventType.STEP_ATTEMPT, step="a")]
    assert attempts == [1, 2, 3]


def test_capture_feeds_a_later_step(tmp_path: Path) -> None:
    text = r"""
    name: t
    targets: all
    steps:
      - id: probe
        run: show-version
        capture: {version: 'version (\S+)', whole: null}
      - {id: use, run: "install {{ captures.version }}"}
    """
    w = world(tmp_path, text)
    w.fakes["h1"].on("show-version", Reply(0, stdout="tool version 1.2.3\n"))
    assert w.execute().status is RunStatus.OK
    assert w.fakes["h1"].commands[-1] == "install 1.2.3"
    probe = w.of(EventType.STEP_FINISHED, step="probe")[0]
    assert probe.data["captures"] == {"version": "1.2.3", "whole": "tool version 1.2.3"}


def test_capture_that_does_not_match_fails_the_step(tmp_path: Path) -> None:
    text = r"""
    name: t
    targets: all
    steps:
      - {id: probe, run: show-version, capture: {version: 'version (\S+)'}}
      - {id: use, run: "install {{ captures.version }}"}
    """
    w = world(tmp_path, text)
    w.fakes["h1"].on("show-version", Reply(0, stdout="nothing here\n"))
    assert w.execute().status is RunStatus.FAILED
    assert w.finished() == {"probe": "failed"}


# -- retry ------------------------------------------------------------------------------


def _result(code: int) -> CommandResult:
    from datetime import UTC, datetime

    return CommandResult("h1", "x", code, "", "", datetime.now(UTC), 0.0)


def test_retryable_kinds_and_exit_codes() -> None:
    default = RetryPolicy()
    codes = RetryPolicy(failures=[3, "verify"])
    assert is_retryable(AttemptFailed("connection", "lost"), default)
    assert is_retryable(AttemptFailed("timeout", "slow"), default)
    assert not is_retryable(AttemptFailed("exit", "exit 1", _result(1)), default)
    assert is_retryable(AttemptFailed("exit", "exit 3", _result(3)), codes)
    assert not is_retryable(AttemptFailed("exit", "exit 4", _result(4)), codes)
    assert is_retryable(AttemptFailed("verify", "no"), codes)
    assert not is_retryable(AttemptFailed("connection", "lost"), codes)
    assert not is_retryable(ValueError("not ours"), default)


RETRY = """
name: t
targets: all
steps:
  - id: a
    run: do-a
    retry: {{attempts: 3, delay: 0.01, jitter: false, failures: {failures}}}
  - {{id: b, run: do-b}}
"""


def test_connection_loss_is_retried_then_succeeds(tmp_path: Path) -> None:
    w = world(tmp_path, RETRY.format(failures="[connection]"))
    w.fakes["h1"].on("^do-a", Reply(error="connection"), Reply(0, stdout="fine"))
    assert w.execute().status is RunStatus.OK
    attempts = w.of(EventType.STEP_ATTEMPT, step="a")
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "failed"), (2, "ok")]
    assert "connection" in attempts[0].data["error"]


def test_connection_loss_on_every_attempt_makes_the_host_unreachable(tmp_path: Path) -> None:
    w = world(tmp_path, RETRY.format(failures="[connection]"))
    w.fakes["h1"].on("^do-a", Reply(error="connection"))
    result = w.execute()
    assert result.hosts == {"h1": HostStatus.UNREACHABLE}
    assert len(w.fakes["h1"].ran("^do-a")) == 3
    assert "do-b" not in w.fakes["h1"].commands


@pytest.mark.parametrize(
    ("failures", "calls", "status"),
    [
        ("[exit]", 2, RunStatus.OK),
        ("[connection]", 1, RunStatus.FAILED),
        ("[7]", 2, RunStatus.OK),
        ("[8]", 1, RunStatus.FAILED),
    ],
)
def test_exit_codes_retry_only_when_listed(
    tmp_path: Path, failures: str, calls: int, status: RunStatus
) -> None:
    w = world(tmp_path, RETRY.format(failures=failures))
    w.fakes["h1"].on("^do-a", Reply(7), Reply(0))
    assert w.execute().status is status
    assert len(w.fakes["h1"].ran("^do-a")) == calls


# -- gates ------------------------------------------------------------------------------

GATE = """
name: t
targets: all
steps:
  - {id: before, run: do-before}
  - {id: swap, manual: "Swap the disk in bay {{ vars.bay | default(2) }}"}
  - {id: after, run: do-after}
"""


def test_manual_gate_approved_by_the_operator(tmp_path: Path) -> None:
    w = world(tmp_path, GATE)
    operator = Scripted([Decision.APPROVE])
    assert w.execute(operator).status is RunStatus.OK
    assert [r.kind for r in operator.asked] == ["manual"]
    assert "Swap the disk in bay 2" in operator.asked[0].text
    assert w.of(EventType.STEP_APPROVED, step="swap")[0].data["by"] == "alice"
    assert w.fakes["h1"].commands == ["do-before", "do-after"]


def test_manual_gate_rejected_stops_the_host(tmp_path: Path) -> None:
    w = world(tmp_path, GATE)
    result = w.execute(Scripted([Decision.REJECT]))
    assert result.status is RunStatus.REJECTED
    assert w.finished() == {"before": "ok", "swap": "rejected"}
    assert "do-after" not in w.fakes["h1"].commands


def test_manual_gate_paused_says_how_to_resume(tmp_path: Path) -> None:
    w = world(tmp_path, GATE)
    result = w.execute(Scripted([Decision.PAUSE]))
    assert result.status is RunStatus.PAUSED
    paused = w.of(EventType.STEP_FINISHED, step="swap")[0]
    assert paused.outcome == "paused"
    assert f"drp resume {RUN_ID} --approve swap" in paused.message


def test_approve_option_passes_the_gate_without_asking(tmp_path: Path) -> None:
    w = world(tmp_path, GATE)
    operator = Scripted([Decision.REJECT])
    assert w.execute(operator, approve=frozenset({"swap"})).status is RunStatus.OK
    assert operator.asked == []


CONFIRM = """
name: t
targets: all
steps:
  - {id: wipe, run: do-wipe, confirm: "Wipe {{ host.name }}?"}
"""


def test_destructive_step_pauses_without_yes(tmp_path: Path) -> None:
    w = world(tmp_path, CONFIRM)
    assert w.execute().status is RunStatus.PAUSED
    assert w.fakes["h1"].commands == []
    assert w.of(EventType.STEP_WAITING, step="wipe")[0].message == "Wipe h1?"


def test_destructive_step_runs_with_yes(tmp_path: Path) -> None:
    w = world(tmp_path, CONFIRM)
    operator = Scripted([Decision.REJECT])
    assert w.execute(operator, yes=True).status is RunStatus.OK
    assert w.fakes["h1"].commands == ["do-wipe"] and operator.asked == []
    assert w.of(EventType.STEP_APPROVED, step="wipe")[0].data["note"] == "--yes"


def test_destructive_step_refused_by_the_operator(tmp_path: Path) -> None:
    w = world(tmp_path, CONFIRM)
    operator = Scripted([Decision.REJECT])
    assert w.execute(operator).status is RunStatus.REJECTED
    assert [r.kind for r in operator.asked] == ["confirm"]
    assert w.fakes["h1"].commands == []


# -- in-doubt steps on resume -----------------------------------------------------------

DOUBT = """
name: t
targets: all
steps:
  - {id: a, run: do-a}
  - {id: b, run: do-b}
  - {id: c, run: do-c}
"""
RESUME = {"h1": HostResume(done=frozenset({"a"}), in_doubt=frozenset({"b"}))}


@pytest.mark.parametrize(
    ("policy", "decisions", "ran", "status"),
    [
        ("retry", [], ["do-b", "do-c"], RunStatus.OK),
        ("skip", [], ["do-c"], RunStatus.OK),
        ("ask", [Decision.APPROVE], ["do-b", "do-c"], RunStatus.OK),
        ("ask", [Decision.REJECT], ["do-c"], RunStatus.OK),
        ("ask", [Decision.PAUSE], [], RunStatus.PAUSED),
    ],
)
def test_in_doubt_policies(
    tmp_path: Path, policy: str, decisions: list[Decision], ran: list[str], status: RunStatus
) -> None:
    w = world(tmp_path, DOUBT)
    operator = Scripted(decisions or [Decision.REJECT])
    assert w.execute(operator, resume=RESUME, in_doubt=policy).status is status
    assert w.fakes["h1"].commands == ran  # a (done) is never run again
    assert [r.kind for r in operator.asked] == (["in-doubt"] if policy == "ask" else [])
    assert w.of(EventType.RUN_STARTED) == [] and len(w.of(EventType.RUN_RESUMED)) == 1


def test_in_doubt_step_with_a_guard_lets_the_guard_decide(tmp_path: Path) -> None:
    text = DOUBT.replace("{id: b, run: do-b}", "{id: b, run: do-b, unless: check-b}")
    w = world(tmp_path, text)
    w.fakes["h1"].on("^check-b", Reply(0))
    operator = Scripted([Decision.APPROVE])
    assert w.execute(operator, resume=RESUME).status is RunStatus.OK
    assert operator.asked == []
    assert w.fakes["h1"].commands == ["check-b", "do-c"]


def test_resume_restores_captures_of_done_steps(tmp_path: Path) -> None:
    text = r"""
    name: t
    targets: all
    steps:
      - {id: a, run: probe, capture: {v: 'v=(\S+)'}}
      - {id: b, run: "use {{ captures.v }}"}
    """
    w = world(tmp_path, text)
    resume = {"h1": HostResume(done=frozenset({"a"}), captures={"v": "42"})}
    assert w.execute(resume=resume).status is RunStatus.OK
    assert w.fakes["h1"].commands == ["use 42"]
    # one record says what earlier sessions did; nothing per step is journaled again
    assert [e.data for e in w.of(EventType.HOST_RESUMED)] == [{"done_earlier": 1}]
    assert not w.of(EventType.STEP_SKIPPED)


# -- secrets ----------------------------------------------------------------------------


def test_secrets_are_masked_in_every_event(tmp_path: Path) -> None:
    secret, token = "hunter2-very-secret", "tok-abcdef123456"
    text = r"""
    name: t
    targets: all
    params: {password: {secret: true, required: true}}
    steps:
      - {id: login, run: "login --password {{ params.password }}"}
      - id: token
        sensitive: true
        run: issue-token
        capture: {token: 'token=(\S+)'}
      - {id: use, run: "use {{ captures.token }}"}
      - {id: fail, run: "fail {{ params.password }}"}
    """
    w = world(tmp_path, text, params={"password": secret})
    fake = w.fakes["h1"]
    fake.on("^login", Reply(0, stdout=f"logged in with {secret}\n"))
    fake.on("^issue-token", Reply(0, stdout=f"token={token}\n"))
    fake.on("^use", Reply(0, stdout=f"used {token}\n"))
    fake.on("^fail", Reply(1, stderr=f"bad password {secret}\n"))
    w.execute()
    assert fake.commands[0] == f"login --password {secret}"  # the host did get it
    assert fake.commands[2] == f"use {token}"
    for event in w.events:
        text_of = repr(replace(event, ts=event.ts))
        assert secret not in text_of, event
        assert token not in text_of, event
    sensitive = w.of(EventType.STEP_ATTEMPT, step="token")[0]
    assert sensitive.data["stdout"].startswith("<sensitive:")
    assert w.of(EventType.STEP_FINISHED, step="token")[0].data["captures"] == {
        "token": "<sensitive>"
    }
    started = w.of(EventType.RUN_STARTED)[0]
    assert started.data["params"]["password"] != secret


def test_resume_runs_a_sensitive_capture_step_again_to_recover_its_value(tmp_path: Path) -> None:
    text = r"""
    name: t
    targets: all
    steps:
      - {id: a, run: read-token, sensitive: true, capture: {token: 'token=(\S+)'}}
      - {id: plain, run: probe, capture: {v: 'v=(\S+)'}}
      - {id: b, run: "use {{ captures.token }} {{ captures.v }}"}
    """
    w = world(tmp_path, text)
    w.fakes["h1"].on("^read-token", Reply(0, stdout="token=s3cret\n"))
    resume = {
        "h1": HostResume(
            done=frozenset({"a", "plain"}), captures={"token": "<sensitive>", "v": "7"}
        )
    }
    assert w.execute(resume=resume).status is RunStatus.OK
    assert w.fakes["h1"].commands == ["read-token", "use s3cret 7"]  # plain is not re-run


# -- failures outside any step's handling ----------------------------------------------


class RefusingPut(FakeTransport):
    """A host whose file transfers fail (a full disk, a read-only file system)."""

    def put(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        raise StepFailed(f"{self.name}: put {dest} failed: No space left on device")


def test_a_failed_upload_fails_the_step_not_the_run(tmp_path: Path) -> None:
    w = world(
        tmp_path,
        """
        name: t
        targets: all
        steps:
          - {id: upload, put: {dest: /etc/x.conf, content: "x=1"}}
          - {id: after, run: echo after}
        """,
        hosts=("h1", "h2"),
    )
    w.fakes["h1"] = RefusingPut("h1")
    result = w.execute()
    assert result.hosts == {"h1": HostStatus.FAILED, "h2": HostStatus.OK}
    failed = w.of(EventType.STEP_FINISHED, host="h1", step="upload")
    assert failed[0].outcome == "failed" and "No space left" in failed[0].message
    assert "after" not in w.finished("h1") and w.finished("h2")["after"] == "ok"


def test_a_template_source_that_is_no_longer_text_fails_its_step(tmp_path: Path) -> None:
    (tmp_path / "motd.j2").write_text("hello {{ host.name }}\n")
    w = world(
        tmp_path,
        """
        name: t
        targets: all
        steps:
          - {id: upload, put: {src: motd.j2, dest: /etc/motd, template: true}}
        """,
    )
    (tmp_path / "motd.j2").write_bytes(b"\xff\xfe binary now")  # changed after validation
    assert w.execute().status is RunStatus.FAILED
    failed = w.of(EventType.STEP_FINISHED, step="upload")[0]
    assert failed.outcome == "failed" and "is not UTF-8" in failed.message
    assert w.fakes["h1"].files == {}


# -- Ctrl-C at a gate -------------------------------------------------------------------


class Withdrawable:
    """An operator at a prompt that nobody answers, until Ctrl-C withdraws the question."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.withdrawn = threading.Event()

    def decide(self, request: GateRequest) -> GateAnswer:
        self.asked.set()
        assert self.withdrawn.wait(10), "the question was never withdrawn"
        return GateAnswer(Decision.APPROVE, "late", "typed as Ctrl-C came")  # must be dropped

    def interrupt(self) -> None:
        self.withdrawn.set()


def press_ctrl_c_once(ready: threading.Event) -> None:
    """KeyboardInterrupt in the main thread (where Ctrl-C lands) once ``ready`` is set."""

    def press() -> None:
        if ready.wait(10):
            _thread.interrupt_main()

    threading.Thread(target=press, daemon=True).start()


@pytest.mark.parametrize(
    ("text", "resume"),
    [
        (GATE, None),
        (CONFIRM, None),
        ("name: t\ntargets: all\nsteps: [{id: after, run: do-after}]\n", frozenset({"after"})),
    ],
    ids=["manual", "confirm", "in-doubt"],
)
def test_ctrl_c_at_a_gate_interrupts_at_once_and_leaves_the_gate_unanswered(
    tmp_path: Path, text: str, resume: frozenset[str] | None
) -> None:
    w = world(tmp_path, text)
    operator = Withdrawable()
    press_ctrl_c_once(operator.asked)
    began = time.monotonic()
    result = w.execute(operator, resume={"h1": HostResume(in_doubt=resume)} if resume else None)
    assert time.monotonic() - began < 5
    assert operator.withdrawn.is_set()
    assert result.status is RunStatus.INTERRUPTED
    assert result.hosts == {"h1": HostStatus.INTERRUPTED}
    assert not w.of(EventType.STEP_APPROVED) and not w.of(EventType.STEP_REJECTED)
    assert not w.of(EventType.STEP_SKIPPED)  # an in-doubt step is not marked done either
    assert "do-wipe" not in w.fakes["h1"].commands and "do-after" not in w.fakes["h1"].commands
    assert all(
        outcome == "interrupted" for step, outcome in w.finished().items() if step != "before"
    )


def test_an_answer_that_arrives_as_the_run_is_interrupted_is_dropped(tmp_path: Path) -> None:
    w = world(tmp_path, GATE)
    interrupt: list[Any] = []

    class AnswersAsCtrlCComes:  # no interrupt(): the gate itself must drop the answer
        def decide(self, request: GateRequest) -> GateAnswer:
            interrupt[0]()
            return GateAnswer(Decision.APPROVE, "alice")

    executor = Executor(
        w.plan,
        RunOptions(run_id=RUN_ID, operator="tester", lock=False),
        emit=w.events.append,
        operator=AnswersAsCtrlCComes(),
        transports=lambda host: w.fakes[host.name],
        local=FakeTransport("local"),
    )
    interrupt.append(executor.interrupt)
    result = executor.execute()
    assert result.hosts == {"h1": HostStatus.INTERRUPTED}
    assert not w.of(EventType.STEP_APPROVED)
    assert w.finished() == {"before": "ok", "swap": "interrupted"}
    assert w.fakes["h1"].commands == ["do-before"]


def test_ctrl_c_in_a_rolling_rollout_leaves_the_later_batches_not_run(tmp_path: Path) -> None:
    w = world(tmp_path, GATE, hosts=("h1", "h2"))
    operator = Withdrawable()
    press_ctrl_c_once(operator.asked)
    result = w.execute(operator, serial=1)
    assert result.status is RunStatus.INTERRUPTED
    assert result.hosts == {"h1": HostStatus.INTERRUPTED, "h2": HostStatus.NOT_RUN}
    assert w.fakes["h2"].commands == []


def test_the_witness_and_the_locks_release_go_in_one_command_at_the_end(tmp_path: Path) -> None:
    w = world(tmp_path, "name: t\ntargets: all\nsteps:\n  - {id: a, run: do-a}\n")
    fake = w.fakes["h1"]
    fake.on("^mkdir -p .*lock", Reply(0, "ACQUIRED\n"))
    fake.on("drp-witness", Reply(0, "drp-witness:ok\nRELEASED\n"))
    head = (7, "ab" * 32)
    assert w.execute(lock=True, chain_head=lambda: head).status is RunStatus.OK
    assert len(fake.commands) == 3  # the lock, the step, then witness and release together
    end = fake.commands[-1]
    assert '"seq": 7' in end and "rm -rf" in end  # the head written, then the lock removed
    assert [e.outcome for e in w.of(EventType.WITNESS_WRITTEN)] == ["ok"]
    assert len(w.of(EventType.LOCK_RELEASED)) == 1


def test_a_lock_the_end_command_did_not_release_is_not_said_released(tmp_path: Path) -> None:
    w = world(tmp_path, "name: t\ntargets: all\nsteps:\n  - {id: a, run: do-a}\n")
    fake = w.fakes["h1"]
    fake.on("^mkdir -p .*lock", Reply(0, "ACQUIRED\n"))
    fake.on("drp-witness", Reply(1, "", "mkdir: Permission denied\n"))
    assert w.execute(lock=True, chain_head=lambda: (3, "cd" * 32)).status is RunStatus.OK
    (witness,) = w.of(EventType.WITNESS_WRITTEN)
    assert witness.outcome == "failed" and "Permission denied" in witness.message
    assert w.of(EventType.LOCK_RELEASED) == []  # nothing said RELEASED: not claimed
