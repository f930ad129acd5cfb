"""The team's config file and a runbook's ``notify:``, turned into a run's channels.

The config file is ``$DRP_CONFIG`` when set (it must then exist), else
``~/.config/drp/config.yaml`` when it exists. It is YAML; its ``notify:`` section
is written as a runbook's (see :mod:`drp.runbook.notify`)::

    notify:
      channels:
        - name: ops-chat
          webhook: {url_env: DRP_CHAT_HOOK, format: slack}
          on: [paused, failed, unreachable, finished]

A runbook's channels are added to the team's (one of the same name replaces the
team's); its ``bound`` and ``wait_at_end``, when written, win. Every problem is a
located :class:`drp.errors.ConfigError`, found before the run starts: a bad key,
a variable (``url_env``, ``password_env``) that is not set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from drp import yamlsrc
from drp.errors import ConfigError, InputError, Problem
from drp.notify.channels import Channel, Command, Email, Webhook
from drp.notify.worker import Settings
from drp.runbook.notify import ChannelSpec, NotifySpec, Strict, http_url

ENV_CONFIG = "DRP_CONFIG"


class TeamConfig(Strict):
    """The config file's keys."""

    notify: NotifySpec | None = None
    store: str | None = None  # the journal store's URL: read by drp.journal.store.config
    # the team's OpenSSH allowed_signers file (relative to this file): who may approve,
    # read by drp.journal.approvals
    allowed_signers: str | None = None


@dataclass(frozen=True)
class Located:
    """A ``notify:`` section (at the top of its file) and the file, to locate problems."""

    spec: NotifySpec
    source: yamlsrc.Source

    def problem(self, loc: yamlsrc.Loc, message: str, hint: str = "") -> Problem:
        return self.source.problem(("notify", *loc), message, hint)


def runbook_notify(spec: NotifySpec | None, path: str) -> Located | None:
    """A runbook's ``notify:`` (its file read again, for the positions of problems)."""
    return Located(spec, yamlsrc.load(Path(path))) if spec is not None else None


def config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The team's config file: ``$DRP_CONFIG``, else the default one if it exists."""
    env = os.environ if env is None else env
    given = env.get(ENV_CONFIG)
    if given:
        return Path(given).expanduser()
    default = Path(env.get("HOME") or Path.home()) / ".config" / "drp" / "config.yaml"
    return default if default.is_file() else None


def load_config(path: Path) -> TeamConfig:
    """Read and check the team's config file; ConfigError with every problem found."""
    return _validate(_read(path))


def _read(path: Path) -> yamlsrc.Source:
    try:
        return yamlsrc.load(path)
    except InputError as error:
        raise ConfigError(error.problems) from None


def _validate(source: yamlsrc.Source) -> TeamConfig:
    if not isinstance(source.data, dict):
        raise ConfigError(
            [source.problem((), "the config file is a YAML mapping", "start with 'notify:'")]
        )
    try:
        return TeamConfig.model_validate(source.data)
    except ValidationError as exc:
        raise ConfigError(yamlsrc.problems_from(exc, source, TeamConfig)) from None


def team_notify(env: Mapping[str, str] | None = None) -> Located | None:
    """The ``notify:`` of the team's config file, if there is one."""
    path = config_path(env)
    if path is None:
        return None
    source = _read(path)
    spec = _validate(source).notify
    return Located(spec, source) if spec is not None else None


def settings(
    team: Located | None, book: Located | None, env: Mapping[str, str] | None = None
) -> Settings:
    """The channels and bounds of a run, their secrets read from the environment."""
    env = os.environ if env is None else env
    chosen: dict[str, tuple[ChannelSpec, Located, int]] = {}
    bound, wait_at_end = NotifySpec().bound, NotifySpec().wait_at_end
    for where in (team, book):
        if where is None:
            continue
        for index, spec in enumerate(where.spec.channels):
            chosen[spec.name] = (spec, where, index)
        if "bound" in where.spec.model_fields_set or where is team:
            bound = where.spec.bound
        if "wait_at_end" in where.spec.model_fields_set or where is team:
            wait_at_end = where.spec.wait_at_end
    problems: list[Problem] = []
    channels: list[Channel] = []
    for spec, where, index in chosen.values():
        found = _channel(spec, where, index, env, problems)
        if found is not None:
            channels.append(found)
    if problems:
        raise ConfigError(problems)
    return Settings(tuple(channels), bound, wait_at_end)


def _channel(
    spec: ChannelSpec,
    where: Located,
    index: int,
    env: Mapping[str, str],
    problems: list[Problem],
) -> Channel | None:
    on = frozenset(spec.on)
    at: yamlsrc.Loc = ("channels", index)

    def variable(key: yamlsrc.Loc, name: str, what: str) -> str | None:
        value = env.get(name)
        if not value:
            problems.append(
                where.problem(
                    (*at, *key),
                    f"${name} is not set (channel {spec.name!r}: {what})",
                    f"export {name}=… before the run, or remove the channel",
                )
            )
        return value or None

    if spec.webhook is not None:
        hook = spec.webhook
        url = hook.url or variable(("webhook", "url_env"), hook.url_env or "", "the webhook URL")
        if url is None:
            return None
        try:
            http_url(url)
        except ValueError as error:  # the URL from a variable, checked as a written one
            problems.append(where.problem((*at, "webhook", "url_env"), str(error)))
            return None
        return Webhook(spec.name, url, hook.format, on, hook.timeout)
    if spec.email is not None:
        mail = spec.email
        password = None
        if mail.password_env is not None:
            password = variable(("email", "password_env"), mail.password_env, "the SMTP password")
            if password is None:
                return None
        return Email(
            spec.name,
            mail.host,
            mail.port,
            mail.security,
            mail.sender,
            tuple(mail.to),
            mail.user,
            password,
            on,
            mail.timeout,
        )
    assert spec.command is not None  # the model holds exactly one
    return Command(spec.name, tuple(spec.command), on)
