"""What a run was started with, key by key, and what changed since: for ``drp resume``.

``run.started`` journals each target host's settings (:func:`host_settings`,
flattened to dotted keys such as ``vars.dir``, secrets masked) beside the
params and the runbook's sha256; ``run.resumed`` journals what a later session
ran with. :func:`differences` compares two such mappings key by key, so resume
can refuse (or, with ``--allow-changed``, journal) every change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drp.inventory import Host

MISSING = "(none)"


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = list(value) if isinstance(value, tuple) else value


def host_settings(host: Host) -> dict[str, Any]:
    """The settings of ``host`` that shape what a run does there, as flat dotted keys."""
    nested = {
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "key": host.key,
        "known_hosts": host.known_hosts,
        "fallback": [f"{a.host}:{a.port}" for a in host.fallback],
        "jump": host.jump.name if host.jump else None,
        "become": host.become.user if host.become else None,
        "reboot_command": host.reboot_command,
        "boot_id_command": host.boot_id_command,
        "groups": list(host.groups),
        "vars": dict(host.vars),
    }
    out: dict[str, Any] = {}
    _flat("", nested, out)
    return out


def differences(what: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``what KEY: OLD → NEW`` for every key whose value differs (or is only on one side)."""
    changed = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, MISSING), new.get(key, MISSING)
        if before != after:
            changed.append(f"{what}{key}: {before!r} → {after!r}")
    return changed
