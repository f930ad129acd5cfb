"""A farm of private OpenSSH sshd processes on loopback, one "host" per address.

``start_sshd(directory, count)`` listens on ``count`` loopback addresses (127.0.0.1,
127.0.0.2, ... , continuing into 127.0.1.x past 254), all on one free port and with one
host key. sshd binds at most 16 listen sockets (``MAX_LISTEN_SOCKS``), so the farm runs
one sshd per 16 addresses: 20 hosts are two processes, 200 hosts thirteen. Readiness is
polled (the SSH banner on every address), never a fixed sleep. Logins are as the
dedicated user ``drpbench`` whose shell is ``/bin/sh`` (see README.md for why not root).
``_stop`` stops one process; the caller stops them all in a ``finally``.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
BENCH_USER = "drpbench"
READY_TIMEOUT = 30.0
#: sshd's MAX_LISTEN_SOCKS: ListenAddress lines one sshd process can bind.
ADDRESSES_PER_SSHD = 16

# MaxStartups: sshd's default 10:30:100 starts refusing (30 % of the time) once 10
# connections are unauthenticated at once, which a 200-host fan-out is for a moment.
# MaxSessions: channels per connection (one per command, closed before the next).
SSHD_CONFIG = """\
Port {port}
{listen}
HostKey {host_key}
PidFile {dir}/sshd.{index}.pid
AuthorizedKeysFile {dir}/authorized_keys
AllowUsers {user}
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
MaxSessions 1000
MaxStartups 1000
LoginGraceTime 60
LogLevel ERROR
Subsystem sftp internal-sftp
"""


@dataclass
class Server:
    port: int
    directory: Path
    client_key: Path
    known_hosts: Path
    addresses: list[str]
    processes: list[subprocess.Popen[bytes]]
    home: Path

    def hosts(self, count: int) -> dict[str, str]:
        """The first ``count`` hosts: name (h01, h02, ..., h200) to address."""
        return {f"h{i + 1:02d}": self.addresses[i] for i in range(count)}


def ensure_user() -> Path:
    """The login user: a system user with /bin/sh, no rc files, an unlocked (no) password."""
    try:
        entry = pwd.getpwnam(BENCH_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--shell", "/bin/sh", "--create-home", BENCH_USER], check=True
        )
        entry = pwd.getpwnam(BENCH_USER)
    if entry.pw_shell != "/bin/sh":
        sys.exit(f"user {BENCH_USER} exists with shell {entry.pw_shell}; expected /bin/sh")
    # sshd without PAM refuses accounts whose shadow password starts with '!' (locked);
    # '*' means "no password can match" and is allowed for key logins.
    shadow = Path("/etc/shadow").read_text().splitlines()
    hashed = next((ln.split(":")[1] for ln in shadow if ln.startswith(BENCH_USER + ":")), "")
    if hashed.startswith("!"):
        subprocess.run(["usermod", "-p", "*", BENCH_USER], check=True)
    return Path(entry.pw_dir)


def raise_open_files(needed: int) -> None:
    """Lift the soft open-files limit (inherited by every tool timed) towards ``needed``.

    A 200-host fan-out holds 200 sockets in one client process, and each sshd one per
    connection it accepts; the usual soft limit of 1024 is close to that."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < needed:
        print(f"warning: open files limited to {soft} (< {needed})", file=sys.stderr)


def loopback_addresses(count: int) -> list[str]:
    """127.0.0.1 onwards, skipping x.x.x.0 and x.x.x.255 (all of 127/8 is loopback)."""
    out: list[str] = []
    address = ipaddress.IPv4Address("127.0.0.1")
    while len(out) < count:
        if int(address) & 0xFF not in (0, 255):
            out.append(str(address))
        address += 1
    return out


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


def _banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as conn:
            return conn.recv(64).startswith(b"SSH-2.0")
    except OSError:
        return False


def start_sshd(directory: Path, count: int) -> Server:
    """Start the farm for ``count`` hosts; every process is in ``Server.processes``."""
    if not SSHD.exists():
        sys.exit(f"{SSHD} not found (apt-get install openssh-server)")
    home = ensure_user()
    raise_open_files(4 * count + 256)
    directory.mkdir(parents=True, exist_ok=True)
    host_key = _keygen(directory / "host_key")
    client_key = _keygen(directory / "client_key")
    (directory / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    os.chmod(directory, 0o755)  # sshd reads authorized_keys as the user
    os.chmod(directory / "authorized_keys", 0o644)
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    addresses = loopback_addresses(count)
    log = directory / "sshd.log"
    step = ADDRESSES_PER_SSHD
    chunks = [addresses[i : i + step] for i in range(0, len(addresses), step)]
    for _attempt in range(3):  # the port may be taken between probe and bind
        port = _free_port()
        processes = []
        for index, chunk in enumerate(chunks):
            listen = "\n".join(f"ListenAddress {a}:{port}" for a in chunk)
            config = directory / f"sshd_config.{index}"
            config.write_text(
                SSHD_CONFIG.format(
                    port=port, listen=listen, host_key=host_key, dir=directory,
                    user=BENCH_USER, index=index,
                )
            )  # fmt: skip
            with log.open("ab") as sink:
                processes.append(
                    subprocess.Popen(
                        [str(SSHD), "-D", "-e", "-f", str(config)], stdout=sink, stderr=sink
                    )
                )
        if all(_wait_ready(p, port, c) for p, c in zip(processes, chunks, strict=True)):
            break
        for process in processes:
            _stop(process)
    else:
        sys.exit(f"sshd did not start:\n{log.read_text()[-2000:]}")
    key_line = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    known_hosts = directory / "known_hosts"
    known_hosts.write_text("".join(f"[{a}]:{port} {key_line}\n" for a in addresses))
    return Server(port, directory, client_key, known_hosts, addresses, processes, home)


def _wait_ready(process: subprocess.Popen[bytes], port: int, addresses: list[str]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(addresses)
    while pending:
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            return False
        if _banner(pending[0], port):
            pending.pop(0)
        else:
            time.sleep(0.02)
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def stop_all(server: Server) -> None:
    """Stop every sshd of the farm (for a ``finally``)."""
    for process in server.processes:
        _stop(process)
