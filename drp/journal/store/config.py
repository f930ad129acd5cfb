"""Where the shared journal store is: ``--store``, ``$DRP_STORE``, or the config file.

In order of precedence: the ``--store URL`` argument, the ``DRP_STORE`` environment
variable, the ``store:`` key of the team's config file (``$DRP_CONFIG``, else
``config.yaml`` in the user's config directory: ``~/.config/drp/config.yaml``). The
file may hold other keys (notifications read the same file): only ``store`` is read
here. No store anywhere: ``None``, drp works on the local journal alone.

A store URL is a libpq connection string (``postgresql://user:password@host/db`` or
``host=... password=...``). Its password never reaches the console or the journal:
:func:`masked` replaces it with the mask of :mod:`drp.redact`.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from drp.errors import InputError
from drp.redact import Redactor

ENV_STORE = "DRP_STORE"
ENV_CONFIG = "DRP_CONFIG"
CONFIG_FILE = "config.yaml"


def config_path() -> Path:
    """The team's config file: ``$DRP_CONFIG``, else ``~/.config/drp/config.yaml``."""
    given = os.environ.get(ENV_CONFIG, "")
    if given:
        return Path(given).expanduser()
    return Path(platformdirs.user_config_dir("drp")) / CONFIG_FILE


def _from_file(path: Path, required: bool) -> str | None:
    if not path.is_file():
        if required:
            raise InputError(f"${ENV_CONFIG}: no file {path}")
        return None
    from drp import yamlsrc  # YAML and pydantic: loaded only when there is a file

    source = yamlsrc.load(path)
    if source.data is None:
        return None
    if not isinstance(source.data, dict):
        raise InputError([source.problem((), "the config file is a YAML mapping", "store: URL")])
    value = source.data.get("store")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            [
                source.problem(
                    ("store",), "must be a PostgreSQL URL", "store: postgresql://drp@db/drp"
                )
            ]
        )
    return value.strip()


def store_url(flag: str | None) -> str | None:
    """The store URL to use, or ``None`` when no store is configured anywhere."""
    if flag:
        return flag
    env = os.environ.get(ENV_STORE, "")
    if env:
        return env
    return _from_file(config_path(), required=bool(os.environ.get(ENV_CONFIG)))


def password_of(url: str) -> str | None:
    """The password a connection string holds (URL or key=value form), if any."""
    from urllib.parse import urlsplit

    try:
        from psycopg.conninfo import conninfo_to_dict

        value = conninfo_to_dict(url).get("password")
    except Exception:  # no psycopg, or malformed (reported at connect): the URL form
        try:
            value = urlsplit(url).password
        except ValueError:
            return None
    return str(value) if value else None


def store_password(url: str | None) -> str | None:
    """The password of the store URL in use (``None`` without a store): a secret to mask."""
    return password_of(url) if url else None


def redactor(url: str) -> Redactor:
    """The redactor that masks the password of ``url`` wherever it appears."""
    return Redactor.of([password_of(url)])


def masked(url: str) -> str:
    """``url`` with its password masked: what may be printed or journaled."""
    return redactor(url).text(url)
