"""Resolve a validated inventory: group members, jump hosts, fallbacks, become."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from drp import yamlsrc
from drp.errors import Problem
from drp.inventory.address import _FORMS, _JUMP_FORMS, _AddressError, _parse_address, check_host
from drp.inventory.model import (
    NO_JUMP,
    Address,
    Become,
    BecomeSpec,
    ConnectionSpec,
    Console,
    FallbackSpec,
    Host,
    HostSpec,
    is_no_jump,
    name_problem,
)
from drp.inventory.spec import _Spec
from drp.inventory.sshconfig import SshConfig, apply
from drp.inventory.suggest import TYPO_DISTANCE, _did_you_mean, _distance, _typo_edits


def _resolve_groups(
    spec: _Spec, source: yamlsrc.Source, problems: list[Problem]
) -> dict[str, tuple[str, ...]]:
    """Each group's hosts, children included; each group is expanded (and reported on) once."""
    resolved: dict[str, tuple[str, ...]] = {}
    active: list[str] = []  # groups being expanded, outermost first

    def members(group: str) -> tuple[str, ...]:
        if group in resolved:
            return resolved[group]
        active.append(group)
        gspec = spec.groups[group]
        out: dict[str, None] = {}
        for index, host in enumerate(gspec.hosts):
            if host in spec.declared:
                out[host] = None
            else:
                problems.append(
                    source.problem(
                        ("groups", group, "hosts", index),
                        f"unknown host {host!r}",
                        _did_you_mean(host, spec.declared) or "declare it under 'hosts:'",
                    )
                )
        for index, child in enumerate(gspec.children):
            if child in active:
                cycle = [*active[active.index(child) :], child]
                problems.append(
                    source.problem(
                        ("groups", group, "children", index),
                        f"group cycle: {' -> '.join(cycle)}",
                        "a group cannot contain itself",
                    )
                )
            elif child in spec.groups:
                out.update(dict.fromkeys(members(child)))
            elif child not in spec.declared_groups:
                problems.append(
                    source.problem(
                        ("groups", group, "children", index),
                        f"unknown group {child!r}",
                        _did_you_mean(child, list(spec.groups)) or "declare it under 'groups:'",
                    )
                )
        active.pop()
        resolved[group] = tuple(out)
        return resolved[group]

    for group in spec.groups:
        members(group)
    return resolved


def _expand(path: str | None, base_dir: Path) -> str | None:
    if path is None:
        return None
    expanded = Path(os.path.expandvars(os.path.expanduser(path)))
    return str(expanded if expanded.is_absolute() else base_dir / expanded)


def _merged(spec: _Spec, hspec: HostSpec) -> dict[str, Any]:
    merged = spec.top.defaults.model_dump(exclude_none=True)
    merged.update(hspec.model_dump(exclude_none=True, include=set(ConnectionSpec.model_fields)))
    return merged


class _Resolver:
    """Resolves each host once (memoized), following jump hosts and reporting cycles."""

    def __init__(
        self,
        spec: _Spec,
        groups: dict[str, tuple[str, ...]],
        base_dir: Path,
        source: yamlsrc.Source,
        problems: list[Problem],
        ssh_config: SshConfig | None = None,
    ) -> None:
        self.spec = spec
        self.ssh_config = ssh_config
        self.groups = groups
        self.base_dir = base_dir
        self.source = source
        self.problems = problems
        self.done: dict[str, Host | None] = {}
        self.active: list[str] = []  # hosts being resolved, each the jump host of the one before
        self.typos: dict[str, str | None] = {}

    def host(self, name: str) -> Host | None:
        """The resolved host ``name``; None when it is not usable (its problems are reported)."""
        if name not in self.done:
            self.active.append(name)
            try:
                self.done[name] = self._build(name) if name in self.spec.hosts else None
            finally:
                self.active.pop()
        return self.done[name]

    def _build(self, name: str) -> Host:
        spec = self.spec
        hspec = spec.hosts[name]
        conn = _merged(spec, hspec)
        port = int(conn.get("port", 22))
        member_of = tuple(g for g, members in self.groups.items() if name in members)
        host_vars: dict[str, Any] = dict(spec.top.vars)
        for group in spec.groups:  # group vars in declaration order, then host vars
            if group in member_of:
                host_vars.update(spec.groups[group].vars)
        host_vars.update(hspec.vars)
        jump = None
        if hspec.jump is not None:
            jump = self.jump(hspec.jump, ("hosts", name, "jump"))
        become = conn.get("become")
        self._check_address(name, hspec)
        host = Host(
            name=name,
            address=hspec.address or name,
            port=port,
            user=conn.get("user"),
            key=_expand(conn.get("key"), self.base_dir),
            known_hosts=_expand(conn.get("known_hosts") or spec.top.known_hosts, self.base_dir),
            connect_timeout=float(conn.get("connect_timeout", 10.0)),
            fallback=tuple(self._fallbacks(name, hspec, port)),
            jump=jump,
            become=_become(become),
            reboot_command=conn.get("reboot_command"),
            boot_id_command=conn.get("boot_id_command"),
            console=Console(**hspec.console.model_dump()) if hspec.console else None,
            groups=member_of,
            vars=host_vars,
        )
        given = {"jump"} if hspec.jump is not None else set()
        return self._with_ssh_config(host, set(conn) | given)

    def _with_ssh_config(self, host: Host, given: set[str]) -> Host:
        """``host`` completed by the ssh_config where the inventory (``given``) is silent."""
        if self.ssh_config is None:
            return host
        if self.spec.top.known_hosts:
            given.add("known_hosts")
        return apply(host, self.ssh_config, frozenset(given))

    def _check_address(self, name: str, hspec: HostSpec) -> None:
        """The host's own address (its name when none is given) must be a host name or an IP."""
        text = hspec.address or name
        if not hspec.address and name_problem(name, "host") is not None:
            return  # the name itself is reported where it is written
        try:
            check_host(text)
        except _AddressError as exc:
            where: yamlsrc.Loc = ("hosts", name, "address") if hspec.address else ("hosts", name)
            self.problems.append(
                self.source.problem(where, f"invalid address {text!r}: {exc.reason}", exc.hint)
            )

    def _fallbacks(self, name: str, hspec: HostSpec, port: int) -> list[Address]:
        out: list[Address] = []
        for index, entry in enumerate(hspec.fallback):
            where: yamlsrc.Loc = ("hosts", name, "fallback", index)
            own = entry if isinstance(entry, FallbackSpec) else None
            text = own.address if own else str(entry)
            try:
                address: Address | None = _parse_address(text, port)
            except _AddressError as exc:
                address = None
                self.problems.append(
                    self.source.problem(
                        (*where, "address") if own else where,
                        f"invalid address {text!r}: {exc.reason}",
                        exc.hint,
                    )
                )
            own_jump: Host | None = None
            if own is not None and not own.direct and own.jump is not None:
                own_jump = self.jump(own.jump, (*where, "jump"))  # checked, whatever the address
                if own_jump is None:
                    continue
            if address is None:
                continue
            if own is not None and own.direct:
                address = replace(address, direct=True)
            elif own_jump is not None:
                address = replace(address, jump=own_jump)
            out.append(address)
        return out

    def jump(self, ref: str, where: yamlsrc.Loc) -> Host | None:
        """The bastion ``ref`` written at ``where``: an inventory host, or user@host:port.

        ``none`` is no jump host (None, as is a problem, which is then reported).
        """
        spec = self.spec
        if is_no_jump(ref):  # even if a host is (wrongly) named so: that is reported
            return None
        if ref in spec.declared:
            if ref in self.active:
                cycle = [*self.active[self.active.index(ref) :], ref]
                self.problems.append(
                    self.source.problem(
                        where,
                        f"jump host cycle: {' -> '.join(cycle)}",
                        "a host cannot be reached through itself",
                    )
                )
                return None
            return self.host(ref)
        typo = self._typo(ref)
        if typo is not None:
            self.problems.append(
                self.source.problem(
                    where,
                    f"unknown jump host {ref!r}",
                    f"did you mean {typo!r}? a host outside the inventory: write its full "
                    "DNS name or user@host",
                )
            )
            return None
        user, _, rest = ref.rpartition("@")
        try:
            if not ref.strip():
                raise _AddressError("it is empty", f"{_JUMP_FORMS}; '{NO_JUMP}' connects directly")
            address = _parse_address(rest, 22)
        except _AddressError as exc:
            self.problems.append(
                self.source.problem(
                    where,
                    f"invalid jump host {ref!r}: {exc.reason}",
                    _JUMP_FORMS if exc.hint == _FORMS else exc.hint,
                )
            )
            return None
        conn = spec.top.defaults.model_dump(exclude_none=True)
        host = Host(
            name=ref,
            address=address.host,
            port=address.port,
            user=user or conn.get("user"),
            key=_expand(conn.get("key"), self.base_dir),
            known_hosts=_expand(conn.get("known_hosts") or spec.top.known_hosts, self.base_dir),
        )
        given = set(conn) | ({"user"} if user else set()) | ({"port"} if ":" in rest else set())
        return self._with_ssh_config(host, given)

    def _typo(self, ref: str) -> str | None:
        """The inventory host a bare name (no '.', ':' or '@') is a typo of, if any."""
        if any(c in ref for c in ".:@"):
            return None
        if ref not in self.typos:  # many hosts may name the same bastion
            self.typos[ref] = self._closest(ref)
        return self.typos[ref]

    def _closest(self, ref: str) -> str | None:
        close = [
            (_distance(ref, name), name)
            for name in self.spec.declared
            if abs(len(name) - len(ref)) <= TYPO_DISTANCE  # else more edits than that
        ]
        typos = [(d, name) for d, name in close if d <= _typo_edits(name)]
        return min(typos, key=lambda typo: typo[0])[1] if typos else None


def _become(value: Any) -> Become | None:
    if value is None or value is False:
        return None
    if value is True:
        return Become()
    spec = BecomeSpec.model_validate(value)
    return Become(user=spec.user, password_env=spec.password_env)
