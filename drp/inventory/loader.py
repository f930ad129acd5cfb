"""Load an inventory file, resolve groups and jump hosts, and select targets.

Selection patterns (as in Ansible): ``db1``, ``databases``, ``db*``, ``all``,
several joined with ``,``; ``!name`` excludes, ``&group`` intersects.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from drp import yamlsrc
from drp.errors import InventoryError, Problem
from drp.inventory.model import (
    NO_JUMP,
    Address,
    Become,
    BecomeSpec,
    ConnectionSpec,
    FallbackSpec,
    GroupSpec,
    Host,
    HostSpec,
    InventoryFile,
    is_no_jump,
    name_problem,
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
                        _did_you_mean(name, list(self.hosts))
                        or "run 'drp inventory list' to see the hosts",
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


def _distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions from ``a`` to ``b``."""
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i]
        for j, right in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right))
            )
        previous = current
    return previous[-1]


#: A bare jump name this close to an inventory host is taken for a typo of it.
TYPO_DISTANCE = 2


def _typo_edits(name: str) -> int:
    """How many edits of ``name`` are still a typo of it: one per three letters, at most two.

    "bastoin" is "bastion" mistyped and "db2" may be "db1", but "gw0" is no typo
    of "h10", nor "db2" of "b": short names are only a few edits from anything.
    """
    return min(TYPO_DISTANCE, len(name) // 3)


_SECTIONS = {"hosts": "host", "groups": "group"}
_KINDS = {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}


@dataclass
class _Spec:
    """The inventory as far as it is valid: what a bad host or group leaves of the file."""

    top: InventoryFile  # known_hosts, defaults, vars (hosts and groups are below)
    declared: list[str]  # every host name written, usable or not
    declared_groups: list[str]
    hosts: dict[str, HostSpec]
    groups: dict[str, GroupSpec]


def load_inventory(path: Path) -> Inventory:
    """Read, validate and resolve an inventory file; every problem is reported at once.

    Each host and group is validated on its own, and what is valid of it is still
    resolved: a bad key in one host hides neither its other problems nor anyone else's.
    """
    source = yamlsrc.load(path)
    if not isinstance(source.data, dict):
        raise InventoryError(
            [source.problem((), "an inventory is a YAML mapping", "start with 'hosts:'")]
        )
    problems: list[Problem] = []
    spec = _validate(source, problems)
    groups = _resolve_groups(spec, source, problems)
    resolver = _Resolver(spec, groups, path.resolve().parent, source, problems)
    hosts: dict[str, Host] = {}
    for name in spec.hosts:
        host = resolver.host(name)
        if host is not None:
            hosts[name] = host
    if problems:
        raise InventoryError(_in_file_order(problems))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Inventory(str(path), hosts, groups, digest)


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Each problem once, from the top of the file down."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))


def _validate(source: yamlsrc.Source, problems: list[Problem]) -> _Spec:
    data: dict[Any, Any] = source.data
    top = {key: value for key, value in data.items() if key not in _SECTIONS}
    head = _valid(InventoryFile, top, (), source, problems) or InventoryFile()
    declared: list[str] = []
    hosts: dict[str, HostSpec] = {}
    for name, value in _entries(source, "hosts", problems):
        declared.append(name)
        if isinstance(value, str):  # `db1: 10.0.0.1`
            problems.append(
                source.problem(
                    ("hosts", name),
                    f"a host's settings are a mapping, not {value!r}",
                    f"write {name}: {{address: {value}}}",
                )
            )
            continue
        host = (
            HostSpec()
            if value is None
            else _valid(HostSpec, value, ("hosts", name), source, problems)
        )
        if host is not None:
            hosts[name] = host
    declared_groups: list[str] = []
    groups: dict[str, GroupSpec] = {}
    for name, value in _entries(source, "groups", problems):
        declared_groups.append(name)
        group = (
            GroupSpec()
            if value is None
            else _valid(GroupSpec, value, ("groups", name), source, problems)
        )
        if group is not None:
            groups[name] = group
    return _Spec(head, declared, declared_groups, hosts, groups)


def _entries(
    source: yamlsrc.Source, section: str, problems: list[Problem]
) -> list[tuple[str, Any]]:
    """The (name, settings) pairs of ``hosts:`` or ``groups:``, each name checked at its key."""
    data: dict[Any, Any] = source.data
    kind = _SECTIONS[section]
    if section not in data:
        return []
    raw = data[section]
    if raw is None:
        problems.append(
            source.problem(
                (section,), f"'{section}' is empty", f"indent the {section} under it, or remove it"
            )
        )
        return []
    if not isinstance(raw, dict):
        problems.append(
            source.problem(
                (section,),
                f"'{section}' must be a mapping of {kind} names to their settings, "
                f"not {_KINDS.get(type(raw), 'a ' + type(raw).__name__)}",
                f"one 'NAME: {{...}}' per line, indented under '{section}:'",
            )
        )
        return []
    out: list[tuple[str, Any]] = []
    for name, value in raw.items():
        wrong = name_problem(name, kind)
        if wrong:
            line, column = source.where((section, str(name), "__key__"))
            field = yamlsrc.format_loc((section, str(name)) if str(name) else (section,))
            problems.append(Problem(source.path, line, column, field, *wrong))
            # keep a misspelt name: what else is wrong with the entry still shows
            if not isinstance(name, str):
                continue
        out.append((name, value))
    return out


_M = TypeVar("_M", bound=BaseModel)


def _valid(
    model: type[_M], data: Any, loc: yamlsrc.Loc, source: yamlsrc.Source, problems: list[Problem]
) -> _M | None:
    """``data`` as a ``model``; when it is not, its problems, and the model of its valid keys."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(yamlsrc.problems_from(exc, source, model, loc))
        errors = exc.errors(include_url=False)
    if not isinstance(data, dict) or any(not error["loc"] for error in errors):
        return None
    bad = {error["loc"][0] for error in errors}
    try:
        return model.model_validate({k: v for k, v in data.items() if k not in bad})
    except ValidationError:  # pragma: no cover - what is left was valid on its own
        return None


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


class _AddressError(ValueError):
    """Why an address cannot be read, and what to write instead."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


_FORMS = "write 'host', 'host:port' or '[v6]:port'"
_JUMP_FORMS = "name an inventory host, or write user@host:port"


def _parse_address(text: str, default_port: int) -> Address:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address; raise _AddressError."""
    if not text.strip():
        raise _AddressError("the address is empty", _FORMS)
    if any(c.isspace() for c in text):
        raise _AddressError("an address has no spaces", _FORMS)
    if text.startswith("["):  # [v6] or [v6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise _AddressError("the '[' is never closed", "write '[v6]' or '[v6]:port'")
        if rest and not rest.startswith(":"):
            raise _AddressError(f"unexpected {rest!r} after ']'", "write '[v6]' or '[v6]:port'")
        port = _port(rest[1:]) if rest else default_port
    elif text.count(":") == 1:
        host, _, given = text.partition(":")
        port = _port(given)
    elif ":" in text:  # more than one: a bare IPv6 address, with the default port
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise _AddressError(
                "not an IPv6 address, nor host:port",
                "write an IPv6 address with a port as '[v6]:port'",
            ) from None
        host, port = text, default_port
    else:
        host, port = text, default_port
    if not host:
        raise _AddressError("the host part is empty", _FORMS)
    return Address(host, port)


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise _AddressError(f"port {text!r} is not a number", "a port is a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise _AddressError(f"port {port} is out of range", "a port is a number from 1 to 65535")
    return port


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
    ) -> None:
        self.spec = spec
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
        return Host(
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
            groups=member_of,
            vars=host_vars,
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
        return Host(
            name=ref,
            address=address.host,
            port=address.port,
            user=user or conn.get("user"),
            key=_expand(conn.get("key"), self.base_dir),
            known_hosts=_expand(conn.get("known_hosts") or spec.top.known_hosts, self.base_dir),
        )

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


__all__ = ["GroupSpec", "Inventory", "load_inventory"]
