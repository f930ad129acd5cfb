"""Real servers on loopback that notifications go to: an HTTP webhook receiver, an SMTP server.

Started by the tests' fixtures (see ``hook_server`` / ``smtp_server`` below), each
on a port of its own (port 0), polled until it answers, and stopped in a finalizer.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    """One webhook request as the server got it."""

    path: str
    content_type: str
    body: dict[str, Any]


@dataclass
class HookServer:
    """What the webhook receiver got, and how it answers (``status``, ``delay``)."""

    port: int = 0
    status: int = 200
    delay: float = 0.0
    echo_path: bool = False  # answer with the request's path in the reason phrase
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.received]


def _handler(state: HookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                state.received.append(
                    Received(self.path, self.headers.get("Content-Type", ""), body)
                )
            reason = f"no hook at {self.path}" if state.echo_path else None
            self.send_response(state.status, reason)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    """Poll until something accepts connections on 127.0.0.1:port (never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def hook_server() -> Iterator[HookServer]:
    """An HTTP server on 127.0.0.1 that records every POST (JSON) it gets."""
    state = HookServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wait_for_port(state.port)
        yield state
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server got; ``refuse`` makes it refuse every recipient."""

    port: int = 0
    refuse: bool = False
    messages: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [bytes(m.content or b"").decode() for m in self.messages]


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.box.refuse:
            return "550 5.7.1 relaying denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.box.messages.append(envelope)
        return "250 Message accepted"


@contextmanager
def smtp_server(user: str | None = None, password: str | None = None) -> Iterator[Mailbox]:
    """aiosmtpd on 127.0.0.1 (plain; a login when ``user`` is given, checked)."""
    box = Mailbox(port=closed_port())

    def authenticate(
        server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (
            data.login.decode(),
            data.password.decode(),
        ) == (user, password)
        if ok:
            box.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=ok)

    auth: dict[str, Any] = (
        {"authenticator": authenticate, "auth_require_tls": False} if user is not None else {}
    )
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port, **auth)
    controller.start()  # returns once the server answers
    try:
        wait_for_port(box.port)
        yield box
    finally:
        controller.stop()
