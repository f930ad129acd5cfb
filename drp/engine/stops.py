"""How a host's run ends before its last step: paused, rejected, failed, unreachable."""

from __future__ import annotations

from drp.results import HostStatus


class HostStopped(Exception):
    """Unwinds a host's run with the status it ended in."""

    def __init__(self, status: HostStatus, message: str = "") -> None:
        self.status = status
        super().__init__(message)
