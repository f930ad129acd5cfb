"""Small helpers: deadline-bound polling and free loopback ports."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """A wait ran past its deadline."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 0.5,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes.

    Returns the truthy value. Raises :class:`WaitTimeoutError` at the deadline. The
    pause between polls is never longer than the time left.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(min(interval, left))


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
