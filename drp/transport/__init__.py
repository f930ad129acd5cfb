"""Transports: how drp runs commands on a host (SSH) or on the operator's machine (local)."""

from drp.transport.base import ConnectInfo, Transport

__all__ = ["ConnectInfo", "Transport"]
