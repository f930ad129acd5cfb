"""A real OpenSSH sshd on loopback for integration tests.

:func:`start_sshd` generates a host key and a client key in a directory,
writes an ``sshd_config`` listening on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (so
tests have several "hosts") on a free port, starts ``sshd -D -e`` and polls
until every address answers with an SSH banner. The returned
:class:`SshServer` builds drp ``Host`` values and inventory files that point
at it, and can drop every client connection to simulate a broken link;
:func:`restart_sshd` brings a killed one back on the same port with the same
host key (a host back from a reboot).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from drp.inventory.model import Host

SSHD = Path("/usr/sbin/sshd")
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
READY_TIMEOUT = 15.0

CONFIG = """\
Port {port}
{listen}
HostKey {host_key}
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys .ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 50
MaxStartups 100
AllowTcpForwarding yes
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""


@dataclass(frozen=True)
class SshServer:
    """A running sshd and what a test needs to reach it."""

    port: int
    directory: Path
    host_key_path: Path
    client_key: Path
    known_hosts: Path
    pid: int
    log: Path

    @property
    def host_public_key(self) -> str:
        """The host key line ``type base64`` (as in ``host_key.pub``, without comment)."""
        key_type, blob, *_ = Path(f"{self.host_key_path}.pub").read_text().split()
        return f"{key_type} {blob}"

    def host(self, name: str = "h1", address: str = "127.0.0.1", **overrides: Any) -> Host:
        """A drp Host for ``address`` on this server, user root, ready to connect."""
        settings: dict[str, Any] = {
            "port": self.port,
            "user": "root",
            "key": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "connect_timeout": 5.0,
        }
        settings.update(overrides)
        return Host(name=name, address=address, **settings)

    def write_inventory(
        self, path: Path, hosts: dict[str, str], extra_vars: dict[str, Any] | None = None
    ) -> Path:
        """Write an inventory YAML file with ``hosts`` (name -> address) on this server."""
        entry = {
            "port": self.port,
            "user": "root",
            "key": str(self.client_key),
            "known_hosts": str(self.known_hosts),
        }
        document: dict[str, Any] = {
            "hosts": {name: {"address": address, **entry} for name, address in hosts.items()}
        }
        if extra_vars:
            document["vars"] = dict(extra_vars)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def accepted_logins(self) -> int:
        """How many connections sshd has authenticated so far (from its log)."""
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def session_pids(self) -> list[int]:
        """PIDs of the per-connection sshd processes (not the listener, not user commands)."""
        return [pid for pid in _descendants(self.pid) if _comm(pid).startswith("sshd")]

    def kill_sessions(self) -> int:
        """Drop every client connection by killing its sshd processes; return how many."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd sessions {pids} survived SIGKILL")
            time.sleep(0.01)
        return len(pids)


def start_sshd(directory: Path) -> tuple[SshServer, subprocess.Popen[bytes]]:
    """Start sshd with its keys and config in ``directory``; return once it accepts SSH."""
    if not SSHD.exists():
        raise RuntimeError(
            f"{SSHD} not found: the integration tests need OpenSSH's server "
            "(apt-get install openssh-server)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    host_key = _keygen(directory / "host_key")
    client_key = _keygen(directory / "client_key")
    (directory / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
    log = directory / "sshd.log"
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        config = directory / "sshd_config"
        listen = "\n".join(f"ListenAddress {a}:{port}" for a in ADDRESSES)
        config.write_text(CONFIG.format(port=port, listen=listen, host_key=host_key, dir=directory))
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)], stdout=sink, stderr=sink
            )
        if _wait_ready(process, port):
            break
        stop_sshd(process)
    else:
        raise RuntimeError(f"sshd did not start; see {log}:\n{log.read_text()[-2000:]}")
    known_hosts = directory / "known_hosts"
    key_line = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    known_hosts.write_text("".join(f"[{a}]:{port} {key_line}\n" for a in ADDRESSES))
    server = SshServer(port, directory, host_key, client_key, known_hosts, process.pid, log)
    return server, process


def restart_sshd(server: SshServer) -> tuple[SshServer, subprocess.Popen[bytes]]:
    """Start ``server``'s sshd again once its listener is gone: same port, host key and config.

    What a host coming back from a reboot looks like to a client: the same
    address and key, new processes. Returns once every address answers.
    """
    config = server.directory / "sshd_config"
    with server.log.open("ab") as sink:
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)], stdout=sink, stderr=sink
        )
    if not _wait_ready(process, server.port):
        raise RuntimeError(f"sshd did not restart; see {server.log}")
    return dataclasses.replace(server, pid=process.pid), process


def refused(address: str, port: int) -> bool:
    """True when nothing listens on ``address:port`` (the connection is refused)."""
    try:
        with socket.create_connection((address, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def stop_sshd(process: subprocess.Popen[bytes]) -> None:
    """Stop the listener (and with it nothing else: sessions die with their clients)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
    )
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    """Poll until every address answers with an SSH banner; False if sshd exits first."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(ADDRESSES)
    while pending:
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd on port {port} not ready after {READY_TIMEOUT}s")
        if _banner(pending[0], port):
            pending.pop(0)
        else:
            time.sleep(0.02)
    return True


def _banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as conn:
            return conn.recv(64).startswith(b"SSH-2.0")
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    return not _alive(pid)
