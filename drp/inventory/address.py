"""Parse the addresses an inventory writes: ``host``, ``host:port``, ``[v6]:port``."""

from __future__ import annotations

import ipaddress

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
    return Address(host, port)


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise _AddressError(f"port {text!r} is not a number", "a port is a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise _AddressError(f"port {port} is out of range", "a port is a number from 1 to 65535")
    return port
