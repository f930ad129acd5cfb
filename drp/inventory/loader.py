"""Load an inventory file, resolve groups and jump hosts, and select targets.

Selection patterns (as in Ansible): ``db1``, ``databases``, ``db*``, ``all``,
several joined with ``,``; ``!name`` excludes, ``&group`` intersects.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drp import yamlsrc
from drp.errors import InventoryError, Problem
from drp.inventory.model import (
    Address,
    Become,
    BecomeSpec,
    ConnectionSpec,
    FallbackSpec,
    GroupSpec,
    Host,
    HostSpec,
    InventoryFile,
)


@dataclass(frozen=True)
class Inventory:
    """Resolved hosts and groups, plus the file's content hash (recorded in journals)."""

    path: str
    hosts: dict[str, Host]
    groups: dict[str, tuple[str, ...]]
    sha256: str

    def get(self, name: str) -> Host:
        if name not in self.hosts:
            raise InventoryError(
                [
                    Problem(
                        self.path,
                        None,
                        None,
                        "hosts",
                        f"no host named {name!r}",
                        _did_you_mean(name, list(self.hosts)),
                    )
                ]
            )
        return self.hosts[name]

    def select(self, pattern: str, limit: str | None = None) -> list[Host]:
        """Hosts matching ``pattern`` (then ``limit``), in inventory order."""
        names = self._match(pattern)
        if limit:
            allowed = set(self._match(limit))
            names = [n for n in names if n in allowed]
        return [self.hosts[n] for n in names]

    def _match(self, pattern: str) -> list[str]:
        """``a,b`` union, ``!x`` minus, ``&g`` intersection; starting with ``!`` or ``&``
        starts from every host (``--limit '!ns1'`` is every target but ns1), as Ansible does."""
        include: set[str] = set()
        exclude: set[str] = set()
        intersect: list[set[str]] = []
        terms = [t for t in (p.strip() for p in pattern.split(",")) if t]
        if terms and terms[0][0] in "!&":
            include = set(self.hosts)
        for raw in terms:
            if raw.startswith("!"):
                exclude |= self._term(raw[1:])
            elif raw.startswith("&"):
                intersect.append(self._term(raw[1:]))
            else:
                include |= self._term(raw)
        for subset in intersect:
            include &= subset
        chosen = include - exclude
        return [n for n in self.hosts if n in chosen]

    def _term(self, term: str) -> set[str]:
        if term in ("all", "*"):
            return set(self.hosts)
        if term in self.hosts:
            return {term}
        if term in self.groups:
            return set(self.groups[term])
        if any(c in term for c in "*?["):
            found = {n for n in self.hosts if fnmatch.fnmatchcase(n, term)}
            for group, members in self.groups.items():
                if fnmatch.fnmatchcase(group, term):
                    found |= set(members)
            if found:
                return found
        raise InventoryError(
            [
                Problem(
                    self.path,
                    None,
                    None,
                    "",
                    f"no host or group matches {term!r}",
                    _did_you_mean(term, [*self.hosts, *self.groups])
                    or "run 'drp inventory list' to see hosts and groups",
                )
            ]
        )


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else ""


def load_inventory(path: Path) -> Inventory:
    """Read, validate and resolve an inventory file; every problem is reported at once."""
    source = yamlsrc.load(path)
    if not isinstance(source.data, dict):
        raise InventoryError(
            [source.problem((), "an inventory is a YAML mapping", "start with 'hosts:'")]
        )
    try:
        spec = InventoryFile.model_validate(source.data)
    except ValidationError as exc:
        raise InventoryError(yamlsrc.problems_from(exc, source, InventoryFile)) from None
    problems: list[Problem] = []
    groups = _resolve_groups(spec, source, problems)
    base_dir = path.resolve().parent
    hosts: dict[str, Host] = {}
    for name in spec.hosts:
        hosts[name] = _resolve_host(name, spec, groups, base_dir, source, problems, set())
    if problems:
        raise InventoryError(problems)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Inventory(str(path), hosts, groups, digest)


def _resolve_groups(
    spec: InventoryFile, source: yamlsrc.Source, problems: list[Problem]
) -> dict[str, tuple[str, ...]]:
    resolved: dict[str, tuple[str, ...]] = {}

    def members(group: str, trail: tuple[str, ...]) -> list[str]:
        if group in trail:
            problems.append(
                source.problem(
                    ("groups", group, "children"),
                    f"group cycle: {' -> '.join((*trail, group))}",
                    "a group cannot contain itself",
                )
            )
            return []
        gspec = spec.groups[group]
        out: list[str] = []
        for index, host in enumerate(gspec.hosts):
            if host not in spec.hosts:
                problems.append(
                    source.problem(
                        ("groups", group, "hosts", index),
                        f"unknown host {host!r}",
                        _did_you_mean(host, list(spec.hosts)) or "declare it under 'hosts:'",
                    )
                )
            elif host not in out:
                out.append(host)
        for index, child in enumerate(gspec.children):
            if child not in spec.groups:
                problems.append(
                    source.problem(
                        ("groups", group, "children", index),
                        f"unknown group {child!r}",
                        _did_you_mean(child, list(spec.groups)) or "declare it under 'groups:'",
                    )
                )
                continue
            out.extend(h for h in members(child, (*trail, group)) if h not in out)
        return out

    for group in spec.groups:
        resolved[group] = tuple(members(group, ()))
    return resolved


def _expand(path: str | None, base_dir: Path) -> str | None:
    if path is None:
        return None
    expanded = Path(os.path.expandvars(os.path.expanduser(path)))
    return str(expanded if expanded.is_absolute() else base_dir / expanded)


def _parse_address(text: str, default_port: int) -> Address:
    if text.startswith("[") and "]" in text:  # [v6]:port
        host, _, rest = text[1:].partition("]")
        return Address(host, int(rest[1:]) if rest.startswith(":") else default_port)
    if text.count(":") == 1:
        host, port = text.split(":")
        return Address(host, int(port))
    return Address(text, default_port)


def _merged(spec: InventoryFile, hspec: HostSpec) -> dict[str, Any]:
    merged = spec.defaults.model_dump(exclude_none=True)
    merged.update(hspec.model_dump(exclude_none=True, include=set(ConnectionSpec.model_fields)))
    return merged


def _resolve_host(
    name: str,
    spec: InventoryFile,
    groups: dict[str, tuple[str, ...]],
    base_dir: Path,
    source: yamlsrc.Source,
    problems: list[Problem],
    trail: set[str],
) -> Host:
    hspec = spec.hosts[name] or HostSpec()
    conn = _merged(spec, hspec)
    port = int(conn.get("port", 22))
    member_of = tuple(g for g, members in groups.items() if name in members)
    host_vars: dict[str, Any] = dict(spec.vars)
    for group in spec.groups:  # group vars in declaration order, then host vars
        if group in member_of:
            host_vars.update(spec.groups[group].vars)
    host_vars.update(hspec.vars)

    def bastion(ref: str, where: tuple[str | int, ...]) -> Host | None:
        return _resolve_jump(name, ref, where, spec, groups, base_dir, source, problems, trail)

    fallback: list[Address] = []
    for index, entry in enumerate(hspec.fallback):
        where: tuple[str | int, ...] = ("hosts", name, "fallback", index)
        own = entry if isinstance(entry, FallbackSpec) else None
        text = own.address if own else str(entry)
        try:
            address = _parse_address(text, port)
        except ValueError:
            problems.append(
                source.problem(
                    (*where, "address") if own else where,
                    f"invalid address {text!r}",
                    "write 'host' or 'host:port'",
                )
            )
            continue
        if own is not None and own.direct:
            address = replace(address, direct=True)
        elif own is not None and own.jump:
            own_jump = bastion(own.jump, (*where, "jump"))
            if own_jump is None:
                continue
            address = replace(address, jump=own_jump)
        fallback.append(address)
    jump = bastion(hspec.jump, ("hosts", name, "jump")) if hspec.jump else None
    become = conn.get("become")
    return Host(
        name=name,
        address=hspec.address or name,
        port=port,
        user=conn.get("user"),
        key=_expand(conn.get("key"), base_dir),
        known_hosts=_expand(conn.get("known_hosts") or spec.known_hosts, base_dir),
        connect_timeout=float(conn.get("connect_timeout", 10.0)),
        fallback=tuple(fallback),
        jump=jump,
        become=_become(become),
        reboot_command=conn.get("reboot_command"),
        boot_id_command=conn.get("boot_id_command"),
        groups=member_of,
        vars=host_vars,
    )


def _become(value: Any) -> Become | None:
    if value is None or value is False:
        return None
    if value is True:
        return Become()
    spec = BecomeSpec.model_validate(value)
    return Become(user=spec.user, password_env=spec.password_env)


def _resolve_jump(
    name: str,
    ref: str,
    where: tuple[str | int, ...],
    spec: InventoryFile,
    groups: dict[str, tuple[str, ...]],
    base_dir: Path,
    source: yamlsrc.Source,
    problems: list[Problem],
    trail: set[str],
) -> Host | None:
    """The bastion ``ref`` (written at ``where`` for host ``name``): a host, or user@host:port."""
    if ref in spec.hosts:
        if ref in trail or ref == name:
            problems.append(
                source.problem(
                    where, "jump host cycle", "a bastion cannot reach itself through itself"
                )
            )
            return None
        return _resolve_host(ref, spec, groups, base_dir, source, problems, {*trail, name})
    user, _, rest = ref.rpartition("@")
    try:
        address = _parse_address(rest, 22)
    except ValueError:
        problems.append(
            source.problem(
                where,
                f"invalid jump host {ref!r}",
                "name an inventory host or write user@host:port",
            )
        )
        return None
    conn = spec.defaults.model_dump(exclude_none=True)
    return Host(
        name=ref,
        address=address.host,
        port=address.port,
        user=user or conn.get("user"),
        key=_expand(conn.get("key"), base_dir),
        known_hosts=_expand(conn.get("known_hosts") or spec.known_hosts, base_dir),
    )


__all__ = ["GroupSpec", "Inventory", "load_inventory"]
