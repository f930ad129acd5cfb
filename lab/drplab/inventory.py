"""Write drp inventory entries and known_hosts files for lab guests.

Inventory entry (merged into ``hosts:`` of a YAML file)::

    hosts:
      lab1:
        address: 127.0.0.1
        port: 40222
        user: root
        key: /root/.cache/drp-lab/id_ed25519
        known_hosts: /tmp/drplab-lab1-xxxx/known_hosts
        fallback:                 # the management port (guest eth1)
          - {address: "127.0.0.1:40223", jump: none}
        vars:
          lab: true
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def known_hosts_line(host_key: str, port: int, address: str = "127.0.0.1") -> str:
    """A known_hosts line; non-22 ports use the ``[host]:port`` form."""
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {host_key.strip()}"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    Path(tmp).chmod(0o644)
    Path(tmp).replace(path)


def write_known_hosts(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` as the whole known_hosts file ``path``."""
    _atomic_write(path, "".join(line.rstrip("\n") + "\n" for line in lines))
    return path


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return data


def write_inventory(
    path: Path,
    host: str,
    *,
    port: int,
    key: Path,
    known_hosts: Path,
    address: str = "127.0.0.1",
    user: str = "root",
    variables: dict[str, Any] | None = None,
    fallback: list[dict[str, str]] | None = None,
    merge: bool = True,
) -> Path:
    """Write the entry for ``host`` into inventory ``path`` (merged with what is there)."""
    data = _load(path) if merge else {}
    hosts = data.setdefault("hosts", {})
    if not isinstance(hosts, dict):
        raise ValueError(f"{path}: 'hosts' is not a mapping")
    hosts[host] = {
        "address": address,
        "port": port,
        "user": user,
        "key": str(key),
        "known_hosts": str(known_hosts),
        "vars": {"lab": True, **(variables or {})},
    }
    if fallback:
        hosts[host]["fallback"] = fallback
    _atomic_write(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return path


def remove_inventory_host(path: Path, host: str) -> bool:
    """Drop ``host`` from inventory ``path``; return whether it was there."""
    data = _load(path)
    hosts = data.get("hosts")
    if not isinstance(hosts, dict) or host not in hosts:
        return False
    del hosts[host]
    _atomic_write(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return True
