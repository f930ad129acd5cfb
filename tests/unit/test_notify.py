"""Notifications: what a notice says, and its delivery to real servers on loopback.

The webhook receiver is a real HTTP server, the mail server a real aiosmtpd, the
command a real process; a channel that is down is a closed port, a server that
answers 500, an SMTP server that refuses the recipient.
"""

from __future__ import annotations

import email
import email.policy
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_servers import HookServer, Mailbox, closed_port, hook_server, smtp_server

from drp.engine.events import Event, EventType
from drp.errors import ConfigError
from drp.notify.channels import Command, Email, Webhook
from drp.notify.config import load_config, runbook_notify, settings, team_notify
from drp.notify.notice import RunContext, notice_for, webhook_body
from drp.notify.worker import Notifier, Settings
from drp.runbook.loader import load_runbook

RUN = "20261207-101500-gate-1a2b"
CONTEXT = RunContext(runbook="gate", operator="ana@ops")


def waiting(kind: str = "manual") -> Event:
    return Event(
        EventType.STEP_WAITING,
        RUN,
        host="db1",
        step="swap-disk",
        message="Replace the disk in bay 2, then approve.",
        data={"kind": kind},
    )


def finished(outcome: str) -> Event:
    return Event(EventType.RUN_FINISHED, RUN, outcome=outcome, data={"hosts": {"db1": outcome}})


class Journal:
    """The notifier's ``record`` sink: keeps what it is told, as the journal would."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind: EventType) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.type is kind]

    def text(self) -> str:
        with self.lock:
            return "\n".join(f"{e.message} {json.dumps(dict(e.data))}" for e in self.events)


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    with hook_server() as server:
        yield server


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


# -- what a notice says -----------------------------------------------------------------
def test_a_manual_gate_notice_carries_the_exact_resume_command() -> None:
    notice = notice_for(waiting("manual"), CONTEXT)
    assert notice is not None and notice.kind == "paused"
    assert notice.command == f"drp resume {RUN} --approve swap-disk"
    assert "Replace the disk in bay 2" in notice.text
    assert notice.host == "db1" and notice.step == "swap-disk"
    assert f"To go on: drp resume {RUN} --approve swap-disk" in notice.message()


def test_a_gate_with_approvers_notifies_the_drp_approve_command() -> None:
    event = Event(
        EventType.STEP_WAITING,
        RUN,
        host="db1",
        step="swap-disk",
        message="Swap the disk.",
        data={
            "kind": "manual",
            "approvers": ["bob", "carol"],
            "min_approvals": 2,
            "command": f"drp approve {RUN} swap-disk",
        },
    )
    notice = notice_for(event, CONTEXT)
    assert notice is not None and notice.kind == "paused"
    assert notice.command == f"drp approve {RUN} swap-disk"
    assert "2 approval(s) of bob, carol" in notice.title
    assert f"To go on: drp approve {RUN} swap-disk" in notice.message()


def test_a_confirmation_and_a_step_in_doubt_name_their_own_answers() -> None:
    confirm = notice_for(waiting("confirm"), CONTEXT)
    assert confirm is not None and confirm.command == f"drp resume {RUN} --approve swap-disk"
    assert "destructive step" in confirm.title
    doubt = notice_for(waiting("in-doubt"), CONTEXT)
    assert doubt is not None and "--retry-in-doubt" in (doubt.command or "")
    assert "step in doubt" in doubt.title


def test_failed_unreachable_and_finished_notices() -> None:
    failed = notice_for(
        Event(EventType.STEP_FINISHED, RUN, host="db1", step="x", outcome="failed", message="x"),
        CONTEXT,
    )
    assert failed is not None and failed.kind == "failed"
    lost = notice_for(Event(EventType.HOST_UNREACHABLE, RUN, host="db1", message="no"), CONTEXT)
    assert lost is not None and lost.kind == "unreachable" and "db1" in lost.title
    paused = notice_for(finished("paused"), CONTEXT)
    assert paused is not None and paused.command == f"drp resume {RUN}"
    assert paused.outcome == "paused" and "db1: paused" in paused.text
    ok = notice_for(finished("ok"), CONTEXT)
    assert ok is not None and ok.command == f"drp log report {RUN}"


def test_other_events_notify_nobody() -> None:
    for event in (
        Event(EventType.STEP_FINISHED, RUN, host="db1", step="x", outcome="ok"),
        Event(EventType.STEP_STARTED, RUN, host="db1", step="x"),
        Event(EventType.RUN_STARTED, RUN),
    ):
        assert notice_for(event, CONTEXT) is None


def test_payload_formats() -> None:
    notice = notice_for(waiting(), CONTEXT)
    assert notice is not None
    slack = json.loads(webhook_body(notice, "slack"))
    assert list(slack) == ["text"]
    assert f"drp resume {RUN} --approve swap-disk" in slack["text"]
    document = json.loads(webhook_body(notice, "json"))
    assert document["drp"] == "notification" and document["event"] == "paused"
    assert document["command"] == f"drp resume {RUN} --approve swap-disk"


# -- delivery ---------------------------------------------------------------------------
def deliver(
    channel: Webhook | Email | Command,
    *events: Event,
    bound: float = 5.0,
    wait_at_end: float = 10.0,
) -> tuple[Journal, float]:
    journal = Journal()
    notifier = Notifier(Settings((channel,), bound, wait_at_end), CONTEXT, journal)
    started = time.monotonic()
    for event in events:
        notifier(event)
    notifier.close()
    return journal, time.monotonic() - started


ALL = frozenset({"paused", "failed", "unreachable", "finished"})


def test_webhook_delivers_json_and_journals_it(hooks: HookServer) -> None:
    token = uuid.uuid4().hex
    hook = Webhook("ops", hooks.url(f"/hooks/{token}"), "json", ALL)
    journal, _ = deliver(hook, waiting(), finished("paused"))
    bodies = hooks.bodies()
    assert [b["event"] for b in bodies] == ["paused", "finished"]
    assert bodies[0]["command"] == f"drp resume {RUN} --approve swap-disk"
    assert hooks.received[0].path == f"/hooks/{token}"
    assert hooks.received[0].content_type == "application/json"
    sent = journal.of(EventType.NOTIFY_SENT)
    assert [e.data["event"] for e in sent] == ["paused", "finished"]
    assert sent[0].data["channel"] == "ops" and sent[0].attempt == 1


def test_slack_format_and_the_channels_on_filter(hooks: HookServer) -> None:
    hook = Webhook("chat", hooks.url("/x"), "slack", frozenset({"finished"}))
    deliver(hook, waiting(), finished("ok"))
    bodies = hooks.bodies()
    assert len(bodies) == 1 and list(bodies[0]) == ["text"]
    assert "ended: ok" in bodies[0]["text"]


def test_a_server_answering_500_is_retried_within_the_bound_and_masked(
    hooks: HookServer,
) -> None:
    hooks.status, hooks.echo_path = 500, True  # its answer holds the URL's token
    token = f"T{uuid.uuid4().hex}"
    hook = Webhook("ops", hooks.url(f"/services/{token}"), "json", ALL)
    journal, took = deliver(hook, waiting(), bound=2.0)
    failed = journal.of(EventType.NOTIFY_FAILED)
    assert len(hooks.received) >= 2 and len(failed) == len(hooks.received)
    assert all("HTTP 500 no hook at ********" in e.data["error"] for e in failed), failed
    assert [e.data["final"] for e in failed][-1] is True
    assert not any(e.data["final"] for e in failed[:-1])
    assert [e.attempt for e in failed] == list(range(1, len(failed) + 1))
    assert took < 2.0 + 3.0  # the bound, and one attempt's worth
    assert token not in journal.text()
    assert not journal.of(EventType.NOTIFY_SENT)


def test_a_closed_port_fails_within_the_bound() -> None:
    port = closed_port()
    hook = Webhook("ops", f"http://127.0.0.1:{port}/hook/secret-token-xyz", "json", ALL)
    journal, took = deliver(hook, waiting(), bound=1.0)
    failed = journal.of(EventType.NOTIFY_FAILED)
    assert failed and failed[-1].data["final"] is True
    assert "cannot reach the server" in failed[-1].data["error"]
    assert took < 4.0
    assert "secret-token-xyz" not in journal.text()


def test_what_is_still_undelivered_when_the_run_ends_is_journaled(hooks: HookServer) -> None:
    hooks.delay = 3.0  # each request takes longer than the end of the run waits
    hook = Webhook("slow", hooks.url("/slow"), "json", ALL, timeout=10.0)
    journal, took = deliver(hook, waiting(), finished("ok"), bound=30.0, wait_at_end=0.5)
    assert took < 2.0  # the run's end waited wait_at_end, not the bound
    failed = journal.of(EventType.NOTIFY_FAILED)
    assert [e.data["event"] for e in failed] == ["paused", "finished"]
    assert all(e.data["final"] and "still undelivered" in e.data["error"] for e in failed)


def test_email_through_a_real_smtp_server_with_a_login() -> None:
    password = f"pw-{uuid.uuid4().hex}"
    with smtp_server(user="drp", password=password) as box:
        mail = Email(
            "oncall",
            "127.0.0.1",
            box.port,
            "none",
            "drp@example.org",
            ("oncall@example.org",),
            user="drp",
            password=password,
            on=ALL,
        )
        journal, _ = deliver(mail, waiting())
    assert box.logins == [("drp", password)]
    assert len(box.messages) == 1
    mail_read = email.message_from_string(box.texts()[0], policy=email.policy.default)
    assert (
        str(mail_read["Subject"]).strip().startswith(f"[drp] run {RUN} waits on db1 at swap-disk")
    )
    assert str(mail_read["To"]) == "oncall@example.org"
    assert f"drp resume {RUN} --approve swap-disk" in box.texts()[0]
    assert box.messages[0].rcpt_tos == ["oncall@example.org"]
    assert journal.of(EventType.NOTIFY_SENT)


def test_an_smtp_server_that_refuses_is_a_failure_never_a_crash(mailbox: Mailbox) -> None:
    mailbox.refuse = True
    mail = Email("oncall", "127.0.0.1", mailbox.port, "none", "drp@x.org", ("a@x.org",), on=ALL)
    journal, _ = deliver(mail, finished("failed"), bound=1.0)
    failed = journal.of(EventType.NOTIFY_FAILED)
    assert failed and failed[-1].data["final"] is True
    assert "550" in failed[-1].data["error"] or "refused" in failed[-1].data["error"]
    assert not mailbox.messages


def test_a_command_gets_the_notice_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "notice.json"
    script = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.stdin.read())"
    command = Command("pager", (sys.executable, "-c", script, str(out)), ALL)
    journal, _ = deliver(command, waiting())
    document = json.loads(out.read_text())
    assert document["command"] == f"drp resume {RUN} --approve swap-disk"
    assert journal.of(EventType.NOTIFY_SENT)


def test_a_failing_command_is_reported_with_its_stderr(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('pager is down'); sys.exit(3)"
    command = Command("pager", (sys.executable, "-c", script), ALL)
    journal, _ = deliver(command, waiting(), bound=0.5)
    failed = journal.of(EventType.NOTIFY_FAILED)
    assert failed and "exited with 3: pager is down" in failed[-1].data["error"]


# -- configuration ----------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_team_config_file_builds_channels_with_secrets_from_the_environment(
    tmp_path: Path,
) -> None:
    config = write(
        tmp_path / "config.yaml",
        "notify:\n"
        "  bound: 5s\n"
        "  channels:\n"
        "    - name: chat\n"
        "      webhook: {url_env: HOOK, format: slack}\n"
        "      on: [paused, finished]\n"
        "    - name: mail\n"
        "      email: {host: smtp.example.org, user: drp, password_env: SMTP_PW,\n"
        "              from: drp@example.org, to: [oncall@example.org]}\n"
        "    - name: pager\n"
        "      command: [page-oncall, --team, storage]\n",
    )
    env = {
        "DRP_CONFIG": str(config),
        "HOOK": "https://hooks.example/T/B/tok3n1234",
        "SMTP_PW": "pw",
    }
    found = settings(team_notify(env), None, env)
    assert [c.name for c in found.channels] == ["chat", "mail", "pager"]
    assert found.bound == 5.0 and found.wait_at_end == 10.0
    assert found.channels[0].on == frozenset({"paused", "finished"})
    assert "https://hooks.example/T/B/tok3n1234" in found.secrets()
    assert "pw" in found.secrets()


def test_a_runbook_channel_is_added_and_replaces_the_teams_of_its_name(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        "notify:\n  channels:\n    - name: pager\n      command: [team-pager]\n",
    )
    book = write(
        tmp_path / "book.yaml",
        "name: book\n"
        "notify:\n"
        "  wait_at_end: 2s\n"
        "  channels:\n"
        "    - name: pager\n      command: [book-pager]\n"
        "    - name: log\n      command: [logger]\n"
        "steps:\n  - id: a\n    local: 'true'\n",
    )
    loaded = load_runbook(book)
    env = {"DRP_CONFIG": str(config)}
    found = settings(team_notify(env), runbook_notify(loaded.notify, loaded.path), env)
    commands = {c.name: c.argv for c in found.channels if isinstance(c, Command)}
    assert commands == {"pager": ("book-pager",), "log": ("logger",)}
    assert found.wait_at_end == 2.0


def test_config_errors_are_located_with_a_hint(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        "notify:\n  channels:\n    - name: chat\n      webhok: {url: 'https://x.example/h'}\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    text = str(raised.value)
    assert f"{config}:4:" in text and "unknown key 'webhok'" in text
    assert "did you mean 'webhook'?" in text
    assert raised.value.exit_code == 2


def test_an_unset_variable_is_located_at_its_key(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        "notify:\n  channels:\n    - name: chat\n      webhook:\n        url_env: NOPE_HOOK\n",
    )
    env = {"DRP_CONFIG": str(config)}
    with pytest.raises(ConfigError) as raised:
        settings(team_notify(env), None, env)
    text = str(raised.value)
    assert f"{config}:5:" in text and "$NOPE_HOOK is not set" in text
    assert "export NOPE_HOOK=" in text


def test_a_channel_of_two_kinds_and_a_wrong_event_are_refused(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        "notify:\n"
        "  channels:\n"
        "    - name: a\n      command: [x]\n      webhook: {url: 'https://x.example/h'}\n"
        "    - name: b\n      command: [x]\n      on: [pasued]\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    text = str(raised.value)
    assert "one of webhook:, email:, command:" in text
    assert "did you mean 'paused'?" in text


def test_a_named_config_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        team_notify({"DRP_CONFIG": str(tmp_path / "nope.yaml")})
    assert "nope.yaml" in str(raised.value)


def test_no_config_file_is_no_channel(tmp_path: Path) -> None:
    assert team_notify({"HOME": str(tmp_path)}) is None


def test_a_channel_that_is_down_delays_no_other(hooks: HookServer) -> None:
    down = Webhook("down", f"http://127.0.0.1:{closed_port()}/h", "json", ALL)
    up = Webhook("up", hooks.url("/up"), "json", ALL)
    journal = Journal()
    notifier = Notifier(Settings((down, up), 3.0, 10.0), CONTEXT, journal)
    notifier(waiting())
    notifier(finished("paused"))
    started = time.monotonic()
    while len(hooks.bodies()) < 2 and time.monotonic() - started < 10:
        time.sleep(0.02)
    assert time.monotonic() - started < 2.0  # not after the down channel's 3 s of retries
    notifier.close()
    assert [b["event"] for b in hooks.bodies()] == ["paused", "finished"]
    assert {e.data["channel"] for e in journal.of(EventType.NOTIFY_FAILED)} == {"down"}


# -- the journal's readers take the notifier's records --------------------------------
def test_notify_records_after_run_finished_leave_the_run_finished(tmp_path: Path) -> None:
    from drp.cli.run import _ended_with
    from drp.journal import JournalWriter, journal_path, read_journal, replay, run_dir
    from drp.journal.reader import verify
    from drp.report.timeline import build_timeline
    from drp.results import RunStatus

    folder = run_dir(tmp_path, RUN)
    with JournalWriter.create(folder, "ana") as writer:
        writer.append(Event(EventType.RUN_STARTED, RUN, data={"runbook": "gate"}))
        writer.append(Event(EventType.RUN_FINISHED, RUN, outcome="ok"))
        writer.append(Event(EventType.NOTIFY_SENT, RUN, attempt=1, outcome="sent"))
        writer.append(
            Event(
                EventType.NOTIFY_FAILED,
                RUN,
                outcome="failed",
                message="finished notification to pager (command) not delivered: exit 1",
                data={"final": True, "channel": "pager"},
            )
        )
    journal = read_journal(journal_path(folder))
    assert verify(journal).ok and verify(journal).finished
    assert replay(journal.records).status is RunStatus.OK
    assert _ended_with(journal_path(folder)) == "ok"
    timeline = build_timeline(journal.records)
    assert any("pager (command) not delivered" in m.text for m in timeline.milestones)


class Broken:
    """A channel with a bug: its send raises something that is not a DeliveryError."""

    name, via, on = "broken", "command", ALL

    def send(self, notice: object, timeout: float) -> None:
        raise RuntimeError("a bug in a channel")

    def secrets(self) -> tuple[str, ...]:
        return ()


def test_a_channel_with_a_bug_is_reported_at_once_and_the_next_notice_still_goes() -> None:
    journal, took = deliver(Broken(), waiting(), finished("ok"))  # type: ignore[arg-type]
    failed = journal.of(EventType.NOTIFY_FAILED)
    assert [e.data["event"] for e in failed] == ["paused", "finished"]
    assert all("RuntimeError: a bug in a channel" in e.data["error"] for e in failed)
    assert took < 5.0  # not the end of the run's wait: each was reported when it failed
