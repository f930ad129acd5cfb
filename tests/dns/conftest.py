"""A real BIND 9 pair on loopback for the dns-failover / dns-failback tests.

:func:`start_named` writes a private ``named.conf`` in a directory and runs
``named -g`` on a free port of one loopback address, then polls with ``dig``
until the zone answers (never a fixed sleep). The ``bind_pair`` fixture starts a
primary on 127.0.0.1 (with an rndc control channel on its own free port and
key) and a secondary on another port of 127.0.0.1 (named only binds addresses an
interface has, and lo has just 127.0.0.1) that follows it by NOTIFY and transfer,
so "every listed name server answers the new serial" is tested for real. Both
stop at teardown. The "host" the runbooks change is this machine, reached
through the session sshd fixture.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd import SshServer

NAMED = shutil.which("named") or "/usr/sbin/named"
DIG = shutil.which("dig")
ZONE = "example.test"
READY_TIMEOUT = 20.0
DRP = shutil.which("drp") or "drp"
RUN_TIMEOUT = 120.0
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"

ORIGINAL = """\
$TTL 60
@   IN  SOA ns1.example.test. hostmaster.example.test. (
        {serial} ; serial
        60 10 86400 30 )
    IN  NS  ns1
    IN  MX  10 mail
ns1     IN  A   192.0.2.1
www     IN  A   192.0.2.10
mail    IN  A   192.0.2.25
"""

# The degraded-infrastructure variant: web and mail on the backup site.
VARIANT = """\
$TTL 60
@   IN  SOA ns1.example.test. hostmaster.example.test. (
        {serial} ; serial
        60 10 86400 30 )
    IN  NS  ns1
    IN  MX  10 mail
ns1     IN  A   192.0.2.1
www     IN  A   198.51.100.10
mail    IN  A   198.51.100.25
status  IN  TXT "degraded: backup site"
"""


def _below_ephemeral_ports() -> range:
    """Ports the kernel never hands out on its own: below ``ip_local_port_range``.

    A listening port taken from the ephemeral range (``bind(port 0)``) can also be
    picked as the *source* port of a query: by dig, or by the other named (its
    NOTIFY and refresh queries use random ports of that range, on sockets with
    SO_REUSEADDR/SO_REUSEPORT). Then a query meant for one server is delivered to
    the wrong socket, and dig gets no answer or ";; Warning: query response not
    set" (a flaky CI failure we had). Below the range, no such collision exists.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return range(max(1024, low - 20000), max(1025, low))


def _free_port(address: str) -> int:
    """A port free for both TCP and UDP on ``address`` (named binds both), outside the
    ephemeral range (see :func:`_below_ephemeral_ports`)."""
    ports = _below_ephemeral_ports()
    for _ in range(200):
        port = random.choice(ports)
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                tcp.bind((address, port))
                udp.bind((address, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on {address} in {ports}")


def dig(address: str, port: int, name: str, rtype: str = "A") -> list[str]:
    """``dig +short`` answers (empty when the server does not answer)."""
    assert DIG, "dig not found: apt-get install bind9-dnsutils"
    out = subprocess.run(
        [
            DIG,
            "+short",
            "+norec",
            "+time=1",
            "+tries=1",
            "-p",
            str(port),
            f"@{address}",
            name,
            rtype,
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return out.stdout.split("\n")[:-1] if out.returncode == 0 else []


@dataclass
class NameServer:
    """One running named."""

    address: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def spec(self) -> str:
        return f"{self.address}:{self.port}"

    def answers(self, name: str, rtype: str = "A") -> list[str]:
        fqdn = ZONE if name == "@" else f"{name}.{ZONE}"
        return dig(self.address, self.port, fqdn, rtype)

    def serial(self) -> int | None:
        soa = dig(self.address, self.port, ZONE, "SOA")
        return int(soa[0].split()[2]) if soa else None

    def wait_serial(self, predicate: Callable[[int], bool], seconds: float = 15.0) -> int | None:
        """Poll until ``predicate(serial)`` holds (secondaries follow by NOTIFY)."""
        deadline = time.monotonic() + seconds
        while True:
            serial = self.serial()
            if serial is not None and predicate(serial):
                return serial
            if time.monotonic() > deadline:
                return serial
            time.sleep(0.05)

    def log(self) -> str:
        return (self.directory / "named.log").read_text(errors="replace")[-3000:]


def start_named(directory: Path, address: str, conf: str, port: int | None = None) -> NameServer:
    """Write ``named.conf`` (``conf`` filled with @DIR@/@ADDRESS@/@PORT@) and start named.

    Without ``port``, a free one is probed (and probed again if named loses the race).
    """
    if not Path(NAMED).exists():
        pytest.fail(
            "BIND 9 'named' not found: the dns tests need a real authoritative server "
            "(apt-get install bind9 bind9-dnsutils)",
            pytrace=False,
        )
    directory.mkdir(parents=True, exist_ok=True)
    for _attempt in range(1 if port else 3):  # a probed port may be taken before named binds
        port = port or _free_port(address)
        (directory / "named.conf").write_text(fill(conf, dir=directory, address=address, port=port))
        log = (directory / "named.log").open("ab")
        process = subprocess.Popen(
            [NAMED, "-g", "-4", "-n", "1", "-c", str(directory / "named.conf")],
            stdout=log,
            stderr=log,
            cwd=directory,
        )
        log.close()
        server = NameServer(address, port, directory, process)
        deadline = time.monotonic() + READY_TIMEOUT
        while process.poll() is None and server.serial() is None:
            if time.monotonic() > deadline:
                stop_named(server)
                raise RuntimeError(f"named on {address}:{port} not ready:\n{server.log()}")
            time.sleep(0.05)
        if process.poll() is None:
            return server
        port = None
    raise RuntimeError(f"named did not start on {address}:\n{server.log()}")


def stop_named(server: NameServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)


COMMON = """\
options {
    directory "@DIR@";
    pid-file "@DIR@/named.pid";
    session-keyfile "@DIR@/session.key";
    managed-keys-directory "@DIR@";
    listen-on port @PORT@ { @ADDRESS@; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    allow-transfer { 127.0.0.0/8; };
    notify-source @ADDRESS@;
    notify-delay 0;  # BIND waits 5 s by default before notifying; tests need not
    transfer-source @ADDRESS@;
    @NOTIFY@
};
"""

PRIMARY = (
    COMMON.replace("@NOTIFY@", "notify explicit; also-notify { @SECONDARY@; };")
    + """\
key "drp-test" { algorithm hmac-sha256; secret "@SECRET@"; };
controls { inet 127.0.0.1 port @RNDC_PORT@ allow { 127.0.0.1; } keys { "drp-test"; }; };
zone "example.test" { type primary; file "@ZONE_FILE@"; };
"""
)

SECONDARY = (
    COMMON.replace("@NOTIFY@", "notify no;")
    + """\
controls { };
zone "example.test" { type secondary; primaries { @PRIMARY@; }; file "@DIR@/example.test.db"; };
"""
)


def fill(template: str, **values: object) -> str:
    """Replace each ``@NAME@`` by its value (named.conf is full of braces)."""
    for name, value in values.items():
        template = template.replace(f"@{name.upper()}@", str(value))
    return template


@dataclass
class BindPair:
    """A primary (rndc-controlled, its zone file on disk) and a secondary following it."""

    root: Path
    primary: NameServer
    secondary: NameServer
    zone_file: Path
    variant_file: Path
    rndc: str

    @property
    def servers(self) -> list[NameServer]:
        return [self.primary, self.secondary]


@pytest.fixture
def bind_pair(tmp_path: Path) -> Iterator[BindPair]:
    """Primary and secondary named on two ports of 127.0.0.1, fresh for each test."""
    zones = tmp_path / "zones"
    zones.mkdir()
    zone_file = zones / "example.test.zone"
    variant_file = zones / "example.test.zone.failover"
    zone_file.write_text(ORIGINAL.format(serial=2024010101))
    variant_file.write_text(VARIANT.format(serial=2024010101))
    secret = base64.b64encode(os.urandom(32)).decode()
    rndc_port = _free_port("127.0.0.1")
    rndc_conf = tmp_path / "rndc.conf"
    rndc_conf.write_text(
        f'key "drp-test" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'
        'options { default-key "drp-test"; };\n'
    )
    # The secondary's port must be known before the primary starts (also-notify).
    secondary_port = _free_port("127.0.0.1")
    primary = start_named(
        tmp_path / "primary",
        "127.0.0.1",
        fill(
            PRIMARY,
            secondary=f"127.0.0.1 port {secondary_port}",
            secret=secret,
            rndc_port=rndc_port,
            zone_file=zone_file,
        ),
    )
    secondary: NameServer | None = None
    try:
        secondary = start_named(
            tmp_path / "secondary",
            "127.0.0.1",
            fill(SECONDARY, primary=f"127.0.0.1 port {primary.port}"),
            port=secondary_port,  # the primary already notifies this one
        )
        yield BindPair(
            tmp_path,
            primary,
            secondary,
            zone_file,
            variant_file,
            f"rndc -s 127.0.0.1 -p {rndc_port} -c {rndc_conf}",
        )
    finally:
        if secondary is not None:
            stop_named(secondary)
        stop_named(primary)


@dataclass
class DnsLab:
    """The drp side: inventory on the session sshd, state dir, runbook params."""

    bind: BindPair
    inventory: Path
    state: Path
    helper: Path

    def params(self, expect: str, **overrides: str) -> list[str]:
        values = {
            "zone": ZONE,
            "zone_file": str(self.bind.zone_file),
            "variant_file": str(self.bind.variant_file),
            "servers": ",".join(s.spec for s in self.bind.servers),
            "expect": expect,
            "rndc": self.bind.rndc,
            "helper": str(self.helper),
        }
        values.update(overrides)
        out: list[str] = []
        for name, value in values.items():
            out += ["--param", f"{name}={value}"]
        return out

    def drp(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DRP, *args],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
            env={**os.environ, "DRP_STATE_DIR": str(self.state), "NO_COLOR": "1", "COLUMNS": "200"},
        )

    def run(self, runbook: str, expect: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        params = self.params(expect, **overrides)
        if runbook == "dns-failback":
            params = _drop(params, "variant_file")
        return self.drp(
            "run",
            str(RUNBOOKS / f"{runbook}.yaml"),
            "--yes",
            "--host",
            "ns1",
            "-i",
            str(self.inventory),
            "--state-dir",
            str(self.state),
            *params,
        )


def _drop(params: list[str], name: str) -> list[str]:
    out: list[str] = []
    for flag, value in zip(params[::2], params[1::2], strict=True):
        if not value.startswith(f"{name}="):
            out += [flag, value]
    return out


@pytest.fixture
def dns_lab(bind_pair: BindPair, sshd: SshServer, tmp_path: Path) -> DnsLab:
    inventory = sshd.write_inventory(
        tmp_path / "inventory.yaml",
        {"ns1": "127.0.0.1"},
        {"drp_lock_dir": str(tmp_path / "lock")},
    )
    (tmp_path / "bin").mkdir()
    return DnsLab(bind_pair, inventory, tmp_path / "state", tmp_path / "bin" / "drp-dns-zone")
