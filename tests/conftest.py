"""Shared pytest fixtures: a real OpenSSH sshd on loopback (see ``tests/sshd.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer, start_sshd, stop_sshd


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the whole session, listening on 127.0.0.1-3 (user root, key auth)."""
    server, process = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        stop_sshd(process)


@pytest.fixture
def sshd_fresh(tmp_path: Path) -> Iterator[SshServer]:
    """A private sshd for tests that break it (stop the listener, kill every session)."""
    server, process = start_sshd(tmp_path / "sshd")
    try:
        yield server
    finally:
        stop_sshd(process)
