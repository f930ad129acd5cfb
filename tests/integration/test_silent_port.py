"""A host whose port accepts TCP and never answers: a clear line, no library traceback.

Behind a port forward or NAT with the host dead, or a machine that hangs while it
boots, the TCP connect succeeds and no SSH banner ever comes. paramiko reports that
from its own thread through ``logging``; drp's screen must show drp's message only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


def test_no_banner_is_one_clear_line_without_traceback(tmp_path: Path, silent_port: int) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  mute1:\n    address: 127.0.0.1\n    port: {silent_port}\n"
        "    user: root\n    connect_timeout: 2\n"
    )
    book = tmp_path / "book.yaml"
    book.write_text("name: t\nsteps:\n  - {id: a, run: 'true'}\n")
    state = tmp_path / "state"
    done = subprocess.run(
        ["drp", "run", str(book), "-i", str(inventory), "-H", "mute1", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert "mute1" in said and "unreachable" in said.lower(), said
    assert "Traceback" not in said, said
    assert "Exception (client)" not in said, said
    assert "no SSH greeting came within 2s" in said, said
    assert "No existing session" not in said, said
