"""Host keys: fingerprints, known_hosts entries, and scanning a server's key.

These back ``drp inventory trust HOST``: scan the key the server presents
(without authenticating), show its SHA256 fingerprint, and, once the operator
agrees, record it in the known_hosts file that :class:`SshTransport` verifies
against. Only the scan needs the network; it goes through ``ssh_link.py``, one
of the ``ssh*.py`` modules, the only ones that use paramiko.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from drp.inventory.model import Address, Host

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


def known_hosts_path(host: Host) -> Path:
    """The known_hosts file used for ``host`` (the inventory's, else ``~/.ssh/known_hosts``)."""
    return Path(os.path.expanduser(host.known_hosts or DEFAULT_KNOWN_HOSTS))


def fingerprint(key_b64: str) -> str:
    """OpenSSH-style SHA256 fingerprint of a base64 public key blob."""
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def entry_name(address: str, port: int) -> str:
    """How known_hosts names an address: ``addr`` on port 22, ``[addr]:port`` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


def scan_host_key(host: Host, address: Address | None = None) -> tuple[str, str, str]:
    """Fetch the key ``host`` presents (key type, base64 blob, SHA256 fingerprint).

    ``address`` defaults to the host's primary address; a jump host, if any,
    is used (and its own key verified) to reach it.
    """
    from drp.transport.ssh_link import fetch_server_key

    target = address or Address(host.address, host.port)
    key_type, key_b64 = fetch_server_key(host, target)
    return key_type, key_b64, fingerprint(key_b64)


def record_host_key(
    known_hosts: Path,
    host: Host,
    key_type: str,
    key_b64: str,
    *,
    address: Address | None = None,
) -> str:
    """Record a trusted key for ``host`` (or one of its ``address``es); return the line.

    Older entries for the same name and key type (plain or hashed) are removed,
    so re-trusting a host after a legitimate key change leaves one answer. The
    file is created with mode 0600 when absent and rewritten atomically.
    """
    target = address or Address(host.address, host.port)
    name = entry_name(target.host, target.port)
    line = f"{name} {key_type} {key_b64}"
    lines = known_hosts.read_text().splitlines() if known_hosts.exists() else []
    kept = [kept for old in lines if (kept := _without(old, name, key_type)) is not None]
    if line in kept:
        return line
    _write_atomically(known_hosts, [*kept, line])
    return line


def _without(line: str, name: str, key_type: str) -> str | None:
    """``line`` with ``name`` removed from its host list when it holds a key of ``key_type``."""
    fields = line.split()
    if len(fields) < 3 or line.startswith(("#", "@")) or fields[1] != key_type:
        return line
    names = fields[0].split(",")
    remaining = [n for n in names if not _matches(n, name)]
    if len(remaining) == len(names):
        return line
    if not remaining:
        return None
    return " ".join([",".join(remaining), *fields[1:]])


def _matches(pattern: str, name: str) -> bool:
    if not pattern.startswith("|1|"):
        return pattern == name
    try:
        salt_b64, hash_b64 = pattern[3:].split("|", 1)
        salt = base64.b64decode(salt_b64)
    except ValueError:
        return False
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), hash_b64)


def _write_atomically(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class KnownKey:
    """One key line of a known_hosts file: the host patterns, the key, and its marker."""

    lineno: int
    patterns: tuple[str, ...]
    key_type: str
    key_b64: str
    marker: str = ""  # "", "@revoked" or "@cert-authority"


@dataclass(frozen=True)
class KnownHostsFile:
    """A parsed known_hosts: usable keys, revoked keys, and the lines drp cannot use."""

    keys: tuple[KnownKey, ...] = ()
    revoked: frozenset[tuple[str, str]] = frozenset()  # (key type, base64)
    skipped: tuple[str, ...] = ()  # why each unusable line was left out


def parse_known_hosts(text: str, path: str = "known_hosts") -> KnownHostsFile:
    """OpenSSH's known_hosts syntax (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"), never an error.

    Comments and blank lines are ignored; ``@revoked`` keys are refused for every
    host; ``@cert-authority`` lines (host certificates, which paramiko cannot
    verify) and lines that are not a key are skipped, each with a note.
    """
    keys: list[KnownKey] = []
    revoked: set[tuple[str, str]] = set()
    skipped: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3 or not _is_base64(fields[2]):
            skipped.append(f"{path}:{lineno} is not a known_hosts key line")
            continue
        if marker == "@revoked":
            revoked.add((fields[1], fields[2]))
        elif marker == "@cert-authority":
            skipped.append(
                f"{path}:{lineno} is a @cert-authority line: drp (paramiko) cannot verify "
                "host certificates; add the host's own key with 'drp inventory trust'"
            )
        elif marker:
            skipped.append(f"{path}:{lineno} has an unknown marker {marker!r}")
        else:
            keys.append(KnownKey(lineno, tuple(fields[0].split(",")), fields[1], fields[2]))
    return KnownHostsFile(tuple(keys), frozenset(revoked), tuple(skipped))


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True


def host_matches(patterns: tuple[str, ...], name: str) -> bool:
    """Whether ``name`` (``host`` or ``[host]:port``) matches a known_hosts pattern list.

    As OpenSSH: hashed names (``|1|salt|hash``), wildcards ``*`` and ``?``, case
    ignored; a matching negated pattern (``!pattern``) rules the line out.
    """
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if body.startswith("|1|"):
            hit = _matches(body, name)
        else:
            hit = _glob(body).fullmatch(name.lower()) is not None
        if hit and negated:
            return False
        matched = matched or hit
    return matched


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """OpenSSH's host pattern: ``*`` and ``?`` are wildcards, all else literal (``[h]:22`` too)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.compile("".join(parts), re.DOTALL)
