"""paramiko's side of host-key checking, and what a failed connect means, for the SSH transport.

Host keys are verified against known_hosts, parsed once per version of the file
by drp's own parser (:mod:`drp.transport.hostkeys`, which reads what paramiko's
cannot) and never auto-accepted: an unknown key is refused, naming its
fingerprint and ``drp inventory trust``; a revoked or changed key says so. A
failed ``connect`` becomes :class:`drp.errors.HostKeyError`,
:class:`drp.errors.AuthError`, or, for network trouble only,
:class:`drp.transport.sockets.UnreachableError` (try the next address).
Used by :mod:`drp.transport.ssh_link`.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import threading
from pathlib import Path
from typing import NoReturn

from drp.errors import AuthError, HostKeyError
from drp.inventory.model import Address, Host
from drp.transport.hostkeys import (
    KnownHostsFile,
    entry_name,
    fingerprint,
    host_matches,
    known_hosts_path,
    parse_known_hosts,
)
from drp.transport.logins import login_help
from drp.transport.paramiko_import import paramiko
from drp.transport.sockets import UnreachableError


class _UnknownKeyError(paramiko.SSHException):
    """Raised by the missing-host-key policy; carries the key the server showed."""

    def __init__(self, name: str, key: paramiko.PKey) -> None:
        super().__init__(f"{name} not in known_hosts")
        self.name = name
        self.key = key


class _RevokedKeyError(paramiko.SSHException):
    """The server showed a key known_hosts marks ``@revoked``."""

    def __init__(self, name: str, key: paramiko.PKey) -> None:
        super().__init__(f"{name} showed a revoked key")
        self.name = name
        self.key = key


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, revoked: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.revoked = revoked

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if (key.get_name(), key.get_base64()) in self.revoked:
            raise _RevokedKeyError(hostname, key)
        raise _UnknownKeyError(hostname, key)


class _Client(paramiko.SSHClient):
    """An SSHClient that verifies against an already parsed known_hosts file.

    ``SSHClient.load_host_keys`` parses the file again for every client, and
    paramiko's parser is quadratic (each line is checked against every earlier
    one, with an HMAC per hashed name): 0.16 s for 1,000 hashed lines, paid by
    every host of a fan-out and on every reconnect. drp parses each version of
    the file once and shares the result, which is only read: the missing-key
    policy never adds a key. Should paramiko rename the attribute, the client
    would know no keys and refuse every host: it fails closed.
    """

    def __init__(self, known: paramiko.HostKeys) -> None:
        super().__init__()
        self._host_keys = known


class _KnownHosts(paramiko.HostKeys):
    """paramiko's HostKeys, filled by drp's known_hosts parser, matching names as OpenSSH does.

    paramiko's own parser ends in an exception on a valid ``@cert-authority`` or
    ``@revoked`` line and knows no wildcards or negations. Revoked keys are left
    out, so a server showing one reaches the policy, which names it.
    """

    def __init__(self, parsed: KnownHostsFile) -> None:
        super().__init__()
        self.parsed = parsed
        self.skipped = list(parsed.skipped)
        for known in parsed.keys:
            if (known.key_type, known.key_b64) in parsed.revoked:
                continue
            try:
                blob = base64.b64decode(known.key_b64)
                key = paramiko.PKey.from_type_string(known.key_type, blob)
            except Exception:  # an unknown or damaged key: OpenSSH skips the line too
                self.skipped.append(f"line {known.lineno}: a {known.key_type} key drp cannot read")
                continue
            entry = paramiko.hostkeys.HostKeyEntry(list(known.patterns), key)
            self._entries.append(entry)  # type: ignore[attr-defined]  # what load() fills

    def _hostname_matches(self, hostname: str, entry: paramiko.hostkeys.HostKeyEntry) -> bool:
        return host_matches(tuple(entry.hostnames), hostname)


_parsed: dict[str, tuple[bytes, _KnownHosts]] = {}  # path -> (content hash, keys)
_parsed_lock = threading.Lock()


def _known_host_keys(path: str) -> _KnownHosts:
    """The parsed known_hosts at ``path``, parsed again whenever its content changed."""
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        return _KnownHosts(KnownHostsFile())
    version = hashlib.sha256(content).digest()
    with _parsed_lock:
        cached = _parsed.get(path)
        if cached is None or cached[0] != version:
            parsed = parse_known_hosts(content.decode("utf-8", errors="replace"), path)
            cached = _parsed[path] = (version, _KnownHosts(parsed))
        return cached[1]


def new_client(host: Host) -> paramiko.SSHClient:
    path = known_hosts_path(host)
    try:
        known = _known_host_keys(str(path))
    except OSError as exc:
        raise HostKeyError(host.name, f"cannot read {path}: {exc.strerror or exc}") from None
    client = _Client(known)
    client.set_missing_host_key_policy(_RefuseUnknown(known.parsed.revoked))
    return client


def _revoked(known: Path, key: paramiko.PKey) -> bool:
    with contextlib.suppress(OSError):
        return (key.get_name(), key.get_base64()) in _known_host_keys(str(known)).parsed.revoked
    return False


def _skipped_note(known: Path) -> str:
    """What drp left out of ``known``, said when a key was refused (it may be why)."""
    try:
        skipped = _known_host_keys(str(known)).skipped
    except OSError:
        return ""
    return f" (skipped: {'; '.join(skipped)})" if skipped else ""


def raise_connect_failure(host: Host, address: Address, exc: BaseException) -> NoReturn:
    """Translate a paramiko connect failure; only network trouble says try the next address."""
    name = entry_name(address.host, address.port)
    known = known_hosts_path(host)
    if isinstance(exc, paramiko.BadHostKeyException) and _revoked(known, exc.key):
        exc = _RevokedKeyError(name, exc.key)
    if isinstance(exc, _RevokedKeyError):
        raise HostKeyError(
            host.name,
            f"host key for {name} is REVOKED in {known}: {exc.key.get_name()} "
            f"{fingerprint(exc.key.get_base64())}. The server must get a new key",
        ) from None
    if isinstance(exc, _UnknownKeyError):
        raise HostKeyError(
            host.name,
            f"unknown host key for {name}: {exc.key.get_name()} "
            f"{fingerprint(exc.key.get_base64())} is not in {known}. "
            f"Check the fingerprint out of band, then run: drp inventory trust {host.name}"
            + _skipped_note(known),
        ) from None
    if isinstance(exc, paramiko.BadHostKeyException):
        raise HostKeyError(
            host.name,
            f"host key for {name} CHANGED (possible man-in-the-middle attack): "
            f"expected {exc.expected_key.get_name()} {fingerprint(exc.expected_key.get_base64())} "
            f"from {known}, got {exc.key.get_name()} {fingerprint(exc.key.get_base64())}. "
            f"If the change is legitimate, run: drp inventory trust {host.name}",
        ) from None
    if isinstance(exc, paramiko.AuthenticationException) or "authentication" in str(exc).lower():
        user = host.user or getpass.getuser()
        raise AuthError(
            host.name,
            f"authentication failed for {user}@{name}: {str(exc).rstrip('.')}; "
            f"{login_help(host, user)}",
        ) from None
    if isinstance(exc, paramiko.SSHException) and str(exc) in _NO_GREETING:
        raise UnreachableError(
            f"the port took the connection but no SSH greeting came within "
            f"{host.connect_timeout:g}s (it stayed silent or closed: a host booting or hung, "
            f"sshd turning new sessions away, or a forward/NAT in front of a dead host)"
        ) from None
    if isinstance(exc, (OSError, EOFError, paramiko.SSHException)):
        raise UnreachableError(str(exc) or type(exc).__name__) from None
    raise exc


#: What paramiko says, depending on which of its timeouts fires first, when the TCP
#: connect succeeds and no SSH banner follows (silence and a bare close read the same).
_NO_GREETING = frozenset(
    {"Error reading SSH protocol banner", "No existing session", "Negotiation timed out."}
)
