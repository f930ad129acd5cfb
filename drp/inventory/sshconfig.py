"""The operator's OpenSSH client config (``~/.ssh/config``), read as ``ssh`` reads it.

An inventory ``address`` is looked up in the ssh_config, as ``ssh ADDRESS`` would:
``Host`` aliases and patterns (and ``Match``), then ``HostName``, ``Port``, ``User``,
``IdentityFile``, ``IdentitiesOnly``, ``ProxyJump``, ``UserKnownHostsFile`` and
``ServerAliveInterval`` fill what the inventory leaves unsaid: where both speak,
the inventory wins. The file is ``~/.ssh/config`` unless the inventory names another
(``ssh_config: PATH``) or none (``ssh_config: none``).

The parsing is paramiko's own (:class:`paramiko.SSHConfig`), imported only when a
config file exists, so a machine without one pays nothing at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from drp.errors import InventoryError, Problem
from drp.inventory.model import Host

#: What ``ssh_config:`` says for "read no ssh_config".
NO_CONFIG = "none"
DEFAULT_PATH = "~/.ssh/config"
_MAX_HOPS = 8  # ProxyJump chains longer than this are surely a loop


@dataclass(frozen=True)
class SshSettings:
    """What the ssh_config says about one destination (None: it says nothing)."""

    hostname: str | None = None
    port: int | None = None
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    proxy_jump: str | None = None
    known_hosts: str | None = None
    server_alive: float | None = None


class SshConfig:
    """One parsed ssh_config file; :meth:`settings` looks a destination up."""

    def __init__(self, path: Path) -> None:
        from paramiko.config import SSHConfig  # only when there is a file to read

        self.path = path
        try:
            self._config = SSHConfig.from_path(str(path))
        except OSError as exc:
            raise _problem(path, f"cannot read the ssh_config: {exc.strerror or exc}") from None
        except Exception as exc:  # paramiko's ConfigParseError and the like
            raise _problem(path, f"invalid ssh_config: {exc}") from None

    def settings(self, destination: str) -> SshSettings:
        """The settings ``ssh DESTINATION`` would use, as far as drp uses them."""
        try:
            found: dict[str, Any] = dict(self._config.lookup(destination))
        except Exception as exc:  # a bad Match, an unknown token
            raise _problem(self.path, f"ssh_config lookup of {destination!r}: {exc}") from None
        hostname = found.get("hostname")
        return SshSettings(
            hostname=hostname if hostname and hostname != destination else None,
            port=_number(found.get("port"), int),
            user=found.get("user"),
            identity_files=tuple(_expand(p) for p in found.get("identityfile", ())),
            identities_only=str(found.get("identitiesonly", "no")).lower() == "yes",
            proxy_jump=_jump(found.get("proxyjump")),
            known_hosts=_first_file(found.get("userknownhostsfile")),
            server_alive=_number(found.get("serveraliveinterval"), float) or None,
        )


def open_ssh_config(setting: str | None, base_dir: Path) -> SshConfig | None:
    """The ssh_config the inventory's ``ssh_config:`` names (default ~/.ssh/config), if any.

    The default file is read only when it exists; a file the inventory names must exist.
    """
    if setting is not None and setting.strip().lower() == NO_CONFIG:
        return None
    path = Path(_expand(setting or DEFAULT_PATH))
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        if setting is None:
            return None
        raise _problem(path, "ssh_config file not found", "fix 'ssh_config:' or write 'none'")
    return SshConfig(path)


def apply(
    host: Host, config: SshConfig, given: frozenset[str], seen: frozenset[str] = frozenset()
) -> Host:
    """``host`` with what the ssh_config says for its address, where the inventory said nothing.

    ``given`` names the Host fields the inventory set (those are kept as they are).
    A ``ProxyJump`` becomes the host's jump (when the inventory names none), each hop
    itself looked up in the ssh_config, as ssh does; a hop whose own ProxyJump leads
    back into the chain (``Host *`` with ``ProxyJump bastion`` matches the bastion
    too) is reached directly.
    """
    found = config.settings(host.address)
    changes: dict[str, Any] = {}
    if found.hostname:
        changes["address"] = found.hostname
    if found.port is not None and "port" not in given:
        changes["port"] = found.port
    if found.user and "user" not in given:
        changes["user"] = found.user
    if "key" not in given:
        changes["identity_files"] = tuple(p for p in found.identity_files if Path(p).is_file())
    if found.identities_only:
        changes["identities_only"] = True
    if found.known_hosts and "known_hosts" not in given:
        changes["known_hosts"] = found.known_hosts
    if found.server_alive is not None:
        changes["keepalive"] = found.server_alive
    chain = seen | {host.address}
    if found.proxy_jump and "jump" not in given and not _hops(found.proxy_jump) & chain:
        changes["jump"] = _chain(found.proxy_jump, host, config, chain)
    return replace(host, **changes)


def _hops(proxy_jump: str) -> set[str]:
    """The host names of a ProxyJump's hops (``user@`` and ``:port`` left out)."""
    return {_split_port(hop.strip().rpartition("@")[2])[0] for hop in proxy_jump.split(",")}


def _chain(proxy_jump: str, host: Host, config: SshConfig, seen: frozenset[str]) -> Host:
    """``a,b,c``: c is reached through b, b through a; each hop resolved in the ssh_config."""
    jump: Host | None = None
    seen = seen | _hops(proxy_jump)
    for hop in proxy_jump.split(","):
        if len(seen) > _MAX_HOPS:
            raise _problem(config.path, f"ProxyJump for {host.name!r} goes {_MAX_HOPS}+ hops deep")
        user, _, rest = hop.strip().rpartition("@")
        name, port = _split_port(rest)
        bastion = Host(
            name=hop.strip(),
            address=name,
            port=port or 22,
            user=user or None,
            connect_timeout=host.connect_timeout,
            jump=jump,
        )
        given = {"user"} if user else set()
        given |= {"port"} if port else set()
        given |= {"jump"} if jump is not None else set()
        # a hop of the bastion's own config leads to it, unless this chain already does
        jump = apply(bastion, config, frozenset(given), seen)
        if jump.known_hosts is None:
            jump = replace(jump, known_hosts=host.known_hosts)
    assert jump is not None
    return jump


def _split_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):  # [v6]:port
        inside, _, rest = text[1:].partition("]")
        return inside, int(rest[1:]) if rest[1:].isdigit() else None
    name, colon, port = text.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name, int(port)
    return text, None


def _jump(value: object) -> str | None:
    text = str(value).strip() if value else ""
    return None if not text or text.lower() == NO_CONFIG else text


def _first_file(value: object) -> str | None:
    """UserKnownHostsFile may list several; drp verifies against the first."""
    words = str(value).split() if value else []
    return _expand(words[0]) if words and words[0].lower() != NO_CONFIG else None


def _number(value: object, kind: type[int] | type[float]) -> Any:
    try:
        return kind(str(value)) if value is not None else None
    except ValueError:
        return None


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def _problem(path: Path, message: str, hint: str = "") -> InventoryError:
    return InventoryError([Problem(str(path), None, None, "ssh_config", message, hint)])


__all__ = ["SshConfig", "SshSettings", "apply", "open_ssh_config"]
