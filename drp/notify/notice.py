"""What a notification says: a :class:`Notice` built from a run's event, and its payloads.

Six kinds of event notify (see :data:`drp.runbook.notify.NOTICE_KINDS`):

- ``paused``: a gate waits for a person (``step.waiting``: a manual step, a
  destructive step to confirm, a step in doubt), with the exact command that
  answers it (``drp resume RUN --approve STEP``, ``--retry-in-doubt`` ...; for a
  step with ``approvers:``, ``drp approve RUN STEP``, which others run);
- ``failed``: a step failed on a host (``step.finished`` with outcome failed);
- ``unreachable``: a host could not be reached (``host.unreachable``);
- ``deadline``: a gate's ``gate_timeout`` passed without an answer (``step.deadline``),
  with what ``on_timeout`` does next;
- ``finished``: the session ended (``run.finished``), with the run's outcome and,
  when it can go on, the command that continues it;
- ``store``: the shared journal store stopped answering (``store.behind``): the run
  goes on, its records wait on the operator's machine.

Every other event notifies nobody. The event's text is already masked (events are
masked when they are built), so a notice holds no secret of the run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from drp.engine.events import Event, EventType
from drp.runbook.notify import NoticeKind

if TYPE_CHECKING:
    from email.message import EmailMessage

# what the console calls each gate (drp.cli.console), for a person reading a phone
_GATES = {"manual": "manual step", "confirm": "destructive step", "in-doubt": "step in doubt"}
# a session that ended so: the run goes on with `drp resume`
_CONTINUED = frozenset({"paused", "interrupted", "unreachable", "running"})


@dataclass(frozen=True)
class RunContext:
    """What every notice of a run says besides its event: which run, whose, where."""

    runbook: str
    operator: str
    at_terminal: bool = False  # an operator's terminal asks the gates (else they pause)
    incident: str | None = None


@dataclass(frozen=True)
class Notice:
    """One notification, ready for any channel; ``about`` is the event's type."""

    kind: NoticeKind
    run: str
    runbook: str
    operator: str
    title: str
    text: str
    ts: str
    about: str
    host: str | None = None
    step: str | None = None
    outcome: str | None = None
    command: str | None = None
    incident: str | None = None

    def document(self) -> dict[str, Any]:
        """The JSON document of a webhook (``format: json``) and of a command's stdin."""
        fields = asdict(self)
        return {"drp": "notification", "event": fields.pop("kind"), **fields}

    def message(self) -> str:
        """The notice as a few lines of plain text: title, text, then the command."""
        lines = [self.title]
        if self.text:
            lines.append(self.text)
        if self.command:
            lines.append(f"To go on: {self.command}")
        lines.append(f"(run {self.run} of {self.runbook}, operator {self.operator})")
        return "\n".join(lines)


def notice_for(event: Event, context: RunContext) -> Notice | None:  # noqa: PLR0911 - one per event
    """The notice an event gives, or ``None`` for an event that notifies nobody."""
    run, host, step = event.run_id, event.host or "local", event.step or "?"

    def notice(
        kind: NoticeKind, title: str, text: str, outcome: str | None, command: str | None
    ) -> Notice:
        return Notice(
            kind=kind,
            run=run,
            runbook=context.runbook,
            operator=context.operator,
            title=title,
            text=text,
            ts=event.ts.isoformat(),
            about=str(event.type),
            host=event.host,
            step=event.step,
            outcome=outcome,
            command=command,
            incident=context.incident,
        )

    if event.type is EventType.STEP_WAITING and event.data.get("approvers"):
        names = ", ".join(str(name) for name in event.data["approvers"])
        needed = event.data.get("min_approvals") or 1
        return notice(
            "paused",
            f"run {run} waits on {host} at {step} for {needed} approval(s) of {names}",
            event.message,
            None,
            str(event.data.get("command") or f"drp approve {run} {step}"),
        )
    if event.type is EventType.STEP_WAITING:
        gate = str(event.data.get("kind") or "manual")
        where = (
            "the run asks at the operator's terminal; if it is stopped there, answer with the "
            "command below\n"
            if context.at_terminal
            else ""
        )
        return notice(
            "paused",
            f"run {run} waits on {host} at {step} ({_GATES.get(gate, gate)})",
            where + event.message,
            None,
            resume_command(run, step, gate),
        )
    if event.type is EventType.STEP_DEADLINE:
        policy = str(event.data.get("on_timeout") or "notify")
        command = {
            "notify": f"drp log show {run} --step {step}",
            "fail": f"drp log show {run} --step {step}",
            "pause": f"drp resume {run}",
        }.get(policy)
        return notice(
            "deadline",
            f"gate deadline passed: run {run} on {host} at {step}",
            event.message,
            None,
            command,
        )
    if event.type is EventType.STEP_FINISHED and event.outcome == "failed":
        return notice(
            "failed",
            f"step {step} failed on {host} (run {run})",
            event.message,
            "failed",
            f"drp log show {run} --step {step} --output",
        )
    if event.type is EventType.HOST_UNREACHABLE:
        title = f"{host} is unreachable (run {run})"
        return notice("unreachable", title, event.message, "unreachable", None)
    if event.type is EventType.STORE_BEHIND:
        title = f"the journal store does not answer (run {run})"
        return notice("store", title, event.message, None, f"drp store sync {run}")
    if event.type is EventType.RUN_FINISHED:
        outcome = event.outcome or "?"
        hosts = event.data.get("hosts")
        text = (
            ", ".join(f"{h}: {o}" for h, o in sorted(hosts.items()))
            if isinstance(hosts, dict)
            else ""
        )
        command = f"drp resume {run}" if outcome in _CONTINUED else f"drp log report {run}"
        title = f"run {run} of {context.runbook} ended: {outcome}"
        return notice("finished", title, text, outcome, command)
    return None


def resume_command(run: str, step: str, gate: str) -> str:
    """The command that answers a gate, as the console and ``drp resume`` word it."""
    if gate == "in-doubt":
        return f"drp resume {run} --retry-in-doubt (or --skip-in-doubt)"
    return f"drp resume {run} --approve {step}"


def webhook_body(notice: Notice, fmt: str) -> bytes:
    """A webhook's body: drp's document, or ``{"text": ...}`` for Slack and Mattermost."""
    if fmt == "slack":
        return json.dumps({"text": notice.message()}, ensure_ascii=False).encode()
    return json.dumps(notice.document(), ensure_ascii=False).encode()


def email_message(notice: Notice, sender: str, to: list[str]) -> EmailMessage:
    """The mail of a notice: the title as its subject, the text as its body."""
    from email.message import EmailMessage  # only when a mail is sent

    mail = EmailMessage()
    mail["Subject"] = f"[drp] {notice.title}"
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail.set_content(notice.message() + "\n")
    return mail
