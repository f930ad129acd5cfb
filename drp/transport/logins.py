"""What a refused login tried, and the way forward: the keys and where each came from.

drp offers, in this order, as paramiko does: the inventory's ``key:`` (else the
ssh_config's ``IdentityFile``), the ssh-agent's keys (unless ``IdentitiesOnly``
with a named key), and with no key named at all the default files ``~/.ssh/id_*``.
"""

from __future__ import annotations

import os
from pathlib import Path

from drp.inventory.model import Host

#: The files paramiko's ``look_for_keys`` tries, in its order.
DEFAULT_KEYS = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519")


def keys_tried(host: Host) -> list[str]:
    """Each source of keys drp offered for ``host``, as ``what (from where)``."""
    tried: list[str] = []
    if host.key:
        tried.append(f"{host.key} (the inventory's key:)")
    else:
        tried += [f"{path} (ssh_config IdentityFile)" for path in host.identity_files]
    named = bool(host.key or host.identity_files)
    if not (host.identities_only and named):
        tried.append(_agent())
    if host.key is None and not host.identities_only:
        found = [str(p) for p in _default_keys() if p.is_file()]
        tried.append(
            f"{', '.join(found)} (the default files)" if found else "no ~/.ssh/id_* default files"
        )
    return tried


def login_help(host: Host, user: str) -> str:
    """The sentence after "authentication failed": what was tried, and what to set."""
    where = f"hosts: {host.name}: key: PATH (or defaults: key:)"
    return (
        f"keys tried: {'; '.join(keys_tried(host))}. To log in as {user}, set the private "
        f"key in the inventory ({where}), load it into ssh-agent (ssh-add PATH), or name "
        f"it with IdentityFile in ~/.ssh/config; its public key must be in {user}'s "
        "~/.ssh/authorized_keys on the host"
    )


def _agent() -> str:
    socket = os.environ.get("SSH_AUTH_SOCK")
    if not socket:
        return "no ssh-agent (SSH_AUTH_SOCK is not set)"
    try:
        from drp.transport.paramiko_import import paramiko

        agent = paramiko.Agent()
        try:
            count = len(agent.get_keys())
        finally:
            agent.close()
    except Exception as exc:  # the agent went away: say so, the login already failed
        return f"ssh-agent at {socket} (unreadable: {exc})"
    return f"ssh-agent ({count} key{'s' if count != 1 else ''})"


def _default_keys() -> list[Path]:
    home = Path(os.path.expanduser("~/.ssh"))
    return [home / name for name in DEFAULT_KEYS]


__all__ = ["keys_tried", "login_help"]
