"""Parse the addresses an inventory writes: ``host``, ``host:port``, ``[v6]:port``."""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from drp.inventory.model import Address


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
    check_host(host)
    return Address(host, port)


_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_HOST_HINT = "an address is a DNS name (letters, digits, '-', '_', '.') or an IP address"


def check_host(host: str) -> None:
    """Raise _AddressError unless ``host`` is an IP address or an ASCII DNS name.

    Shell words (``a;b``, ``$(x)``), options (``-oProxyCommand=…``) and look-alike
    letters from other scripts (Cyrillic ``е`` in ``db1.еxample.com``) are refused.
    """
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    for index, char in enumerate(host):
        if not char.isascii():
            name = unicodedata.name(char, f"U+{ord(char):04X}")
            raise _AddressError(
                f"{char!r} at position {index + 1} is not ASCII ({name})",
                "write the name in ASCII; an internationalised name in its xn-- form",
            )
    if host.startswith("-"):
        raise _AddressError("an address cannot start with '-'", _HOST_HINT)
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    bad = next((label for label in labels if not _LABEL.match(label)), None)
    if bad is not None or len(host) > 253:
        what = f"{bad!r} is not a DNS label" if bad is not None else "it is too long"
        raise _AddressError(f"not a host name: {what}", _HOST_HINT)


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise _AddressError(f"port {text!r} is not a number", "a port is a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise _AddressError(f"port {port} is out of range", "a port is a number from 1 to 65535")
    return port
