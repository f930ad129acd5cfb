"""A real PostgreSQL server on loopback for the journal store's tests.

:func:`start_postgres` makes a throwaway cluster (``initdb``, password auth) in a new
directory under the system's temp dir, starts ``postgres`` on a free port of
127.0.0.1 with its unix socket inside that directory, and polls until it accepts a
login. PostgreSQL refuses to run as root: as root (CI) the cluster belongs to the
``postgres`` system user (``nobody`` without it) and the server runs through
``runuser``; as anyone else, as that user. :meth:`PgServer.stop` and
:meth:`PgServer.start` take it down and bring it back on the same port (the store
down during a run). A cluster left by a killed test session (its pytest pid gone) is
stopped and removed by the next one (:func:`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PREFIX = "drp-pg-"
READY_TIMEOUT = 30.0
USER = "drp"


def _runner() -> tuple[list[str], str | None]:
    """The command prefix that runs PostgreSQL's programs, and the owner of the cluster."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], name
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _postmaster_pid(data: Path) -> int | None:
    try:
        first = (data / "postmaster.pid").read_text().split("\n", 1)[0]
    except OSError:
        return None
    return int(first) if first.strip().isdigit() else None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _stop_cluster(data: Path, process: subprocess.Popen[bytes] | None) -> None:
    pid = _postmaster_pid(data)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # "fast" shutdown: clients cut, no waiting
        deadline = time.monotonic() + 20
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if process is not None:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def sweep_stale() -> None:
    """Stop and remove clusters whose pytest (the pid in their name) is dead."""
    for directory in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = directory.name[len(PREFIX) :].partition("-")[0]
        if owner.isdigit() and _gone(int(owner)):
            _stop_cluster(directory / "data", None)
            shutil.rmtree(directory, ignore_errors=True)


@dataclass
class PgServer:
    """A running throwaway cluster and the URL of its ``postgres`` database."""

    directory: Path
    port: int
    password: str
    prefix: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server (again) on its port; return once it accepts a login."""
        log = (self.directory / "postgres.log").open("ab")
        command = [
            str(PG_BIN / "postgres"),
            "-D", str(self.data),
            "-p", str(self.port),
            "-k", str(self.directory / "socket"),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
        ]  # fmt: skip
        self.process = subprocess.Popen([*self.prefix, *command], stdout=log, stderr=log)
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited; see {self.directory / 'postgres.log'}")
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres on port {self.port} not ready") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (the store is down); the cluster stays for :meth:`start`."""
        _stop_cluster(self.data, self.process)
        self.process = None

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        """Run one statement as the cluster's superuser; its rows (empty when none)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query.encode(), params or None)
            return list(cur.fetchall()) if cur.description else []


def start_postgres() -> PgServer:
    """A new cluster, started; the caller stops it with :func:`remove_postgres`."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"{PG_BIN}/initdb not found: apt-get install postgresql")
    sweep_stale()
    prefix, owner = _runner()
    directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    (directory / "socket").mkdir()
    password = secrets.token_urlsafe(12)
    (directory / "pwfile").write_text(password + "\n")
    if owner is not None:
        shutil.chown(directory, owner)
        for child in directory.iterdir():
            shutil.chown(child, owner)
    server = PgServer(directory, 0, password, prefix)
    try:
        initdb = [str(PG_BIN / "initdb"), "-D", str(server.data), "-U", USER, "-E", "UTF8"]
        subprocess.run(
            [
                *prefix,
                *initdb,
                f"--pwfile={directory / 'pwfile'}",
                "--auth=scram-sha-256",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        for _attempt in range(3):  # the free port may be taken between probe and bind
            server.port = _free_port()
            try:
                server.start()
                break
            except RuntimeError:
                server.stop()
        else:
            raise RuntimeError(f"postgres did not start; see {directory / 'postgres.log'}")
    except BaseException:
        remove_postgres(server)
        raise
    return server


def remove_postgres(server: PgServer) -> None:
    """Stop the server and delete its cluster."""
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@contextlib.contextmanager
def running_postgres() -> Iterator[PgServer]:
    """A throwaway cluster for the ``with`` block (a fixture's body), removed after it."""
    server = start_postgres()
    try:
        yield server
    finally:
        remove_postgres(server)
