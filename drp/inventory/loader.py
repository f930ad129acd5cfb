"""Load an inventory file, resolve groups and jump hosts, and select targets.

Selection patterns (as in Ansible): ``db1``, ``databases``, ``db*``, ``all``,
several joined with ``,``; ``!name`` excludes, ``&group`` intersects.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

from drp.errors import InventoryError, Problem
from drp.inventory.ansible import ansible_source, sniff
from drp.inventory.model import GroupSpec, Host
from drp.inventory.resolve import _resolve_groups, _Resolver
from drp.inventory.spec import _validate
from drp.inventory.sshconfig import open_ssh_config
from drp.inventory.suggest import _did_you_mean


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


def load_inventory(path: Path) -> Inventory:
    """Read, validate and resolve an inventory file; every problem is reported at once.

    An Ansible inventory (INI, YAML, a directory, a script) is read by Ansible itself
    (:mod:`drp.inventory.ansible`) and then checked as drp's own.

    Each host and group is validated on its own, and what is valid of it is still
    resolved: a bad key in one host hides neither its other problems nor anyone else's.
    """
    source = sniff(path)
    content = None
    if source is None:  # an Ansible inventory: Ansible reads it, drp checks what it says
        source, content = ansible_source(path)
    if not isinstance(source.data, dict):
        raise InventoryError(
            [source.problem((), "an inventory is a YAML mapping", "start with 'hosts:'")]
        )
    problems: list[Problem] = []
    spec = _validate(source, problems)
    groups = _resolve_groups(spec, source, problems)
    base_dir = path.resolve().parent
    try:
        ssh_config = open_ssh_config(spec.top.ssh_config, base_dir)
    except InventoryError as error:
        problems += error.problems
        ssh_config = None
    resolver = _Resolver(spec, groups, base_dir, source, problems, ssh_config)
    hosts: dict[str, Host] = {}
    for name in spec.hosts:
        host = resolver.host(name)
        if host is not None:
            hosts[name] = host
    if problems:
        raise InventoryError(_in_file_order(problems))
    data = path.read_bytes() if content is None else content.encode()
    digest = hashlib.sha256(data).hexdigest()
    return Inventory(str(path), hosts, groups, digest)


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Each problem once, from the top of the file down."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))


__all__ = ["GroupSpec", "Inventory", "load_inventory"]
