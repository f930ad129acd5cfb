"""A minimal QMP (QEMU Machine Protocol) client over a unix socket."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any


class QMPError(RuntimeError):
    """QEMU answered a command with an error, or the connection failed."""


class QMP:
    """One QMP connection: commands in order, asynchronous events queued."""

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._buf = b""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
            greeting = self._read(time.monotonic() + timeout)
            if "QMP" not in greeting:
                raise QMPError(f"unexpected QMP greeting: {greeting}")
            self.execute("qmp_capabilities")
        except BaseException:
            self._sock.close()
            raise

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()

    def __enter__(self) -> QMP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("QMP: no message before the deadline")
            self._sock.settimeout(left)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QMPError("QMP: connection closed by QEMU")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run ``command`` and return its ``return`` value; raise on error."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read(deadline)
            if "event" in message:
                self.events.append(message)
            elif "error" in message:
                err = message["error"]
                raise QMPError(f"{command}: {err.get('class')}: {err.get('desc')}")
            elif "return" in message:
                return message["return"]

    def wait_event(
        self, name: str, *, timeout: float, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Wait for event ``name`` whose data contains ``data``; consume and return it."""

        def matches(event: dict[str, Any]) -> bool:
            if event.get("event") != name:
                return False
            got = event.get("data", {})
            return all(got.get(k) == v for k, v in (data or {}).items())

        for event in self.events:
            if matches(event):
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._read(deadline)
            except TimeoutError as exc:
                raise TimeoutError(f"QMP: no {name} event {data or ''} in {timeout:.0f}s") from exc
            if "event" not in message:
                continue
            if matches(message):
                return message
            self.events.append(message)
