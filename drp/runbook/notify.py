"""Where a run's notifications go: the ``notify:`` section of a runbook and of the team config.

The same models validate both (a runbook's ``notify:`` and the ``notify:`` of the
team's config file, see :mod:`drp.notify.config`), so both give the same located
errors. Secrets are not written here but named: a webhook URL (which carries the
token of a Slack or Mattermost hook) by ``url_env``, an SMTP password by
``password_env``; a literal ``url`` is allowed and is masked like a secret.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drp.fields import Duration, PositiveDuration

NoticeKind = Literal["paused", "failed", "unreachable", "finished", "store", "deadline"]
NOTICE_KINDS: tuple[NoticeKind, ...] = (
    "paused",
    "failed",
    "unreachable",
    "finished",
    "store",
    "deadline",
)
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
NAME = r"^[a-z0-9][a-z0-9_-]*$"  # as a runbook's name (drp.runbook.model imports this module)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def http_url(value: str) -> str:
    """A webhook URL as given, refused unless it is http(s) and names a host."""
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("a webhook URL starts with http:// or https:// and names a host")
    return value


class WebhookSpec(Strict):
    """``webhook:`` POST a JSON document to a URL (``format: slack`` for Slack / Mattermost)."""

    url: str | None = Field(default=None, description="the URL (a secret: masked everywhere)")
    url_env: str | None = Field(
        default=None, pattern=ENV_NAME, description="the variable that holds the URL"
    )
    format: Literal["json", "slack"] = Field(
        default="json", description='json: drp\'s document; slack: {"text": ...}'
    )
    timeout: PositiveDuration = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _one_url(self) -> WebhookSpec:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give the webhook's url or url_env (the variable holding it), one")
        return self


class EmailSpec(Strict):
    """``email:`` send a mail through an SMTP server."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535, description="25, 587 or 465 if unset")
    security: Literal["starttls", "ssl", "none"] = "starttls"
    user: str | None = None
    password_env: str | None = Field(
        default=None, pattern=ENV_NAME, description="the variable that holds the password"
    )
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _login(self) -> EmailSpec:
        if self.password_env is not None and self.user is None:
            raise ValueError("password_env needs a user to log in as")
        return self


class ChannelSpec(Strict):
    """One channel: a name, one of webhook / email / command, and the events it gets."""

    name: str = Field(pattern=NAME)
    on: list[NoticeKind] = Field(default_factory=lambda: list(NOTICE_KINDS), min_length=1)
    webhook: WebhookSpec | None = None
    email: EmailSpec | None = None
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="argv (no shell); the notice as JSON on its standard input",
    )

    @model_validator(mode="before")
    @classmethod
    def _on_key(cls, data: Any) -> Any:
        """YAML 1.1 reads an unquoted ``on:`` key as ``true``: it is meant as ``on``."""
        if isinstance(data, dict) and True in data and "on" not in data:
            return {("on" if key is True else key): value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> ChannelSpec:
        given = [k for k in ("webhook", "email", "command") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a channel has one of webhook:, email:, command:"
                + (f" (this one has {', '.join(given)})" if given else "")
            )
        return self


class NotifySpec(Strict):
    """``notify:`` the channels, and how long a notification may take."""

    channels: list[ChannelSpec] = Field(default_factory=list)
    bound: PositiveDuration = Field(
        default=30.0, description="the longest one notification is tried, retries included"
    )
    wait_at_end: Duration = Field(
        default=10.0,
        description="how long the end of a run waits for notifications still on their way",
    )

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[ChannelSpec]) -> list[ChannelSpec]:
        names = [c.name for c in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel names must be unique: {', '.join(twice)} twice")
        return value
