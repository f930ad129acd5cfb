"""The channels a notice goes out on: a webhook, an SMTP server, a command.

Each :class:`Channel` makes one attempt per :meth:`Channel.send` call, within the
timeout it is given, and raises :class:`DeliveryError` when that attempt failed;
retrying is :mod:`drp.notify.worker`'s business. ``secrets()`` names what must be
masked in anything said about the channel (its URL, its password).
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from typing import Protocol

from drp.errors import DrpError
from drp.notify.notice import Notice, email_message, webhook_body
from drp.runbook.notify import NoticeKind

_SMTP_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
_STDERR_SHOWN = 300  # characters of a failed command's stderr kept in its error


class DeliveryError(DrpError):
    """One attempt to deliver a notice failed (it may be tried again)."""


class Channel(Protocol):
    """Where notices go; ``on`` are the kinds it gets."""

    @property
    def name(self) -> str: ...

    @property
    def via(self) -> str: ...

    @property
    def on(self) -> frozenset[NoticeKind]: ...

    def send(self, notice: Notice, timeout: float) -> None: ...

    def secrets(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Webhook:
    """POST the notice as JSON (``fmt`` json: drp's document; slack: ``{"text": ...}``)."""

    name: str
    url: str = field(repr=False)
    fmt: str = "json"
    on: frozenset[NoticeKind] = frozenset()
    timeout: float = 10.0
    via: str = "webhook"

    def send(self, notice: Notice, timeout: float) -> None:
        import urllib.error  # here, not at import: every `drp run` imports this module
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked when configured
            self.url,
            data=webhook_body(notice, self.fmt),
            headers={"Content-Type": "application/json", "User-Agent": "drp"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=min(timeout, self.timeout)) as answer:  # noqa: S310
                answer.read()
        except urllib.error.HTTPError as error:
            raise DeliveryError(f"the server answered HTTP {error.code} {error.reason}") from None
        except urllib.error.URLError as error:
            raise DeliveryError(f"cannot reach the server: {error.reason}") from None
        except (OSError, ValueError) as error:  # a timeout, a reset, a malformed URL
            raise DeliveryError(f"cannot deliver: {error}") from None

    def secrets(self) -> tuple[str, ...]:
        return url_secrets(self.url)


def url_secrets(url: str) -> tuple[str, ...]:
    """A URL's secret parts: itself, its path and query (a hook's token), its password."""
    parts = urllib.parse.urlsplit(url)
    found = [url]
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if tail.strip("/"):
        found.append(tail)
        found.extend(p for p in tail.strip("/").split("/") if len(p) >= 8)
    if parts.password:
        found.append(parts.password)
    return tuple(found)


@dataclass(frozen=True)
class Email:
    """Send the notice as a mail through an SMTP server (STARTTLS, TLS or plain)."""

    name: str
    host: str
    port: int | None
    security: str
    sender: str
    to: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    on: frozenset[NoticeKind] = frozenset()
    timeout: float = 10.0
    via: str = "email"

    def send(self, notice: Notice, timeout: float) -> None:
        import smtplib  # here, not at import: every `drp run` imports this module
        import ssl

        port = self.port or _SMTP_PORTS[self.security]
        wait = min(timeout, self.timeout)
        try:
            mail = email_message(notice, self.sender, list(self.to))
            context = ssl.create_default_context()
            if self.security == "ssl":
                server: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, port, timeout=wait, context=context
                )
            else:
                server = smtplib.SMTP(self.host, port, timeout=wait)
            with server:
                if self.security == "starttls":
                    server.starttls(context=context)
                if self.user is not None and self.password is not None:
                    server.login(self.user, self.password)
                server.send_message(mail)
        except smtplib.SMTPResponseException as error:
            said = error.smtp_error
            text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
            raise DeliveryError(f"the SMTP server answered {error.smtp_code} {text}") from None
        except (smtplib.SMTPException, OSError, ValueError) as error:
            raise DeliveryError(f"cannot send the mail: {error}") from None

    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()


@dataclass(frozen=True)
class Command:
    """Run a command (argv, no shell) with the notice as JSON on its standard input."""

    name: str
    argv: tuple[str, ...]
    on: frozenset[NoticeKind] = frozenset()
    timeout: float = 10.0
    via: str = "command"

    def send(self, notice: Notice, timeout: float) -> None:
        try:
            done = subprocess.run(
                list(self.argv),
                input=json.dumps(notice.document(), ensure_ascii=False),
                capture_output=True,
                text=True,
                timeout=min(timeout, self.timeout),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeliveryError(f"{self.argv[0]} ran longer than {timeout:.0f}s") from None
        except OSError as error:
            raise DeliveryError(f"cannot run {self.argv[0]}: {error.strerror or error}") from None
        if done.returncode != 0:
            said = done.stderr.strip()[-_STDERR_SHOWN:]
            raise DeliveryError(
                f"{self.argv[0]} exited with {done.returncode}" + (f": {said}" if said else "")
            )

    def secrets(self) -> tuple[str, ...]:
        return ()
