#!/usr/bin/env python3
"""Benchmark ``drp run`` over SSH against its own loopback sshd, next to its peers.

A benchmark, not a test: it prints a table and never fails on a missed target
(exit 0 unless something could not run at all). One invocation:

1. starts a private OpenSSH ``sshd`` on a free port, listening on 127.0.0.1 ..
   127.0.0.20 (20 "hosts"), with fresh host/client keys and a known_hosts file,
   and logs in as the dedicated user ``drpbench`` whose login shell is
   ``/bin/sh`` (created when missing; see README.md for why not root);
2. writes a drp inventory and runbooks of trivial ``run: "true"`` steps;
3. times, as whole processes (fork/exec, imports, connect, journal fsyncs):
   ``drp run`` 1 host x 20 steps, 20 hosts x 5 steps (``--forks 20``), 1 host x
   200 steps (for the marginal cost of one step on an open connection),
   ``drp --help`` / ``drp --version``, and the baselines: raw paramiko (TCP_NODELAY,
   one connection, one channel per command; a thread pool for 20 hosts; once more
   after importing drp's libraries, the floor for a tool built on them), fabric
   ``Connection.run`` / ``ThreadingGroup``, and, when found, ``ansible-playbook``
   and ``pyinfra``; the tools of a scenario round-robin, so a slow spell of the
   machine hits them alike;
4. prints: scenario, tool, median s, per step ms, ratio vs raw paramiko, target, pass/miss.

Usage::

    python benchmarks/bench_run.py                      # drp, paramiko, fabric (+ peers on PATH)
    python benchmarks/bench_run.py --ansible-playbook /tmp/peers/bin/ansible-playbook \\
        --pyinfra /tmp/peers/bin/pyinfra --reps 7 --json results.json

Must run as root (it starts sshd and may create the ``drpbench`` user).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SSHD = Path("/usr/sbin/sshd")
BENCH_USER = "drpbench"
READY_TIMEOUT = 15.0

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
MaxSessions 100
MaxStartups 200
LogLevel ERROR
Subsystem sftp internal-sftp
"""

# -- the private sshd ---------------------------------------------------------------------


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
    if not SSHD.exists():
        sys.exit(f"{SSHD} not found (apt-get install openssh-server)")
    home = ensure_user()
    directory.mkdir(parents=True, exist_ok=True)
    host_key = _keygen(directory / "host_key")
    client_key = _keygen(directory / "client_key")
    (directory / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    os.chmod(directory, 0o755)  # sshd reads authorized_keys as the user
    os.chmod(directory / "authorized_keys", 0o644)
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    addresses = [f"127.0.0.{i + 1}" for i in range(count)]
    log = directory / "sshd.log"
    # sshd binds at most 16 listen sockets (MAX_LISTEN_SOCKS): one sshd per 16 addresses,
    # all on the same port and with the same host key
    chunks = [addresses[i : i + 16] for i in range(0, len(addresses), 16)]
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


# -- files for each tool ------------------------------------------------------------------


def write_drp_files(server: Server, work: Path, nhosts: int, steps: list[int]) -> dict[str, Path]:
    import yaml

    hosts = {}
    for name, address in server.hosts(nhosts).items():
        hosts[name] = {
            "address": address,
            "port": server.port,
            "user": BENCH_USER,
            "key": str(server.client_key),
            "known_hosts": str(server.known_hosts),
            # every "host" is this machine: each needs its own lock directory
            "vars": {"drp_lock_dir": f"{server.home}/drp-locks/{name}"},
        }
    files = {"inventory": work / "inventory.yaml"}
    files["inventory"].write_text(yaml.safe_dump({"hosts": hosts}, sort_keys=False))
    for count in sorted(set(steps)):
        book = {
            "name": f"bench-{count}",
            "summary": f"{count} trivial steps",
            "targets": "all",
            "steps": [{"id": f"s{i:03d}", "run": "true"} for i in range(count)],
        }
        path = work / f"bench-{count}.yaml"
        path.write_text(yaml.safe_dump(book, sort_keys=False))
        files[f"runbook-{count}"] = path
    return files


#: What ``drp run`` imports besides paramiko (the libraries, not drp's own modules).
DRP_LIBRARIES = "typer,pydantic,rich.console,rich.live,rich.table,jinja2,yaml,tenacity"

PARAMIKO_SCRIPT = r"""
import json, os, socket, sys, time
for name in filter(None, os.environ.get("BENCH_PRELOAD", "").split(",")):
    __import__(name)  # the floor row: any tool built on drp's libraries pays these imports
t0 = time.perf_counter()
import paramiko
from concurrent.futures import ThreadPoolExecutor
t_import = time.perf_counter() - t0
port, user, key, known = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
steps = int(sys.argv[5])
addresses = sys.argv[6:]
QUICKACK = os.environ.get("BENCH_QUICKACK") == "1"  # what drp does (drp/transport/sockets.py)

class QuickAckSocket(socket.socket):
    def recv(self, size, flags=0):
        data = super().recv(size, flags)
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data

def connect(address):
    sock = socket.create_connection((address, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if QUICKACK:
        sock = QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        sock.settimeout(5)
    client = paramiko.SSHClient()
    client.load_host_keys(known)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, port=port, username=user, key_filename=key, look_for_keys=False,
                   allow_agent=False, sock=sock)
    return client

def run(client, command):
    channel = client.get_transport().open_session()
    channel.exec_command(command)
    channel.shutdown_write()
    while channel.recv(65536):
        pass
    code = channel.recv_exit_status()
    channel.close()
    if code != 0:
        raise SystemExit(f"exit {code}")

def host(address):
    c0 = time.perf_counter()
    client = connect(address)
    c1 = time.perf_counter()
    for _ in range(steps):
        run(client, "true")
    c2 = time.perf_counter()
    client.close()
    return c1 - c0, (c2 - c1) / steps

with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
    results = list(pool.map(host, addresses))
print(json.dumps({"import": t_import, "connect": max(r[0] for r in results),
                  "per_command": sorted(r[1] for r in results)[len(results) // 2]}))
"""

FABRIC_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from fabric import Connection, ThreadingGroup
t_import = time.perf_counter() - t0
port, user, key, known = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
steps = int(sys.argv[5])
addresses = sys.argv[6:]
kwargs = {"key_filename": key, "look_for_keys": False, "allow_agent": False}
if len(addresses) == 1:
    c = Connection(addresses[0], user=user, port=port, connect_kwargs=kwargs)
    c.client.load_host_keys(known)
    c0 = time.perf_counter()
    c.open()
    c1 = time.perf_counter()
    for _ in range(steps):
        c.run("true", hide=True, in_stream=False)
    c2 = time.perf_counter()
    c.close()
    print(json.dumps({"import": t_import, "connect": c1 - c0, "per_command": (c2 - c1) / steps}))
else:
    group = ThreadingGroup(*addresses, user=user, port=port, connect_kwargs=kwargs)
    for c in group:
        c.client.load_host_keys(known)
    c0 = time.perf_counter()
    for _ in range(steps):
        group.run("true", hide=True, in_stream=False)
    c1 = time.perf_counter()
    group.close()
    print(json.dumps({"import": t_import, "per_command": (c1 - c0) / steps}))
"""


def write_ansible_files(server: Server, work: Path, nhosts: int, steps: list[int]) -> Path:
    directory = work / "ansible"
    directory.mkdir(exist_ok=True)
    ssh_args = f"-o UserKnownHostsFile={server.known_hosts} -o StrictHostKeyChecking=yes"
    lines = ["[bench]"]
    for name, address in server.hosts(nhosts).items():
        lines.append(
            f"{name} ansible_host={address} ansible_port={server.port} "
            f"ansible_user={BENCH_USER} ansible_ssh_private_key_file={server.client_key} "
            f"ansible_ssh_common_args='{ssh_args}' ansible_python_interpreter=/usr/bin/python3"
        )
    (directory / "hosts.ini").write_text("\n".join(lines) + "\n")
    for count in sorted(set(steps)):
        for module in ("command", "raw"):
            tasks = "".join(f"    - {module}: /bin/true\n" for _ in range(count))
            (directory / f"{module}-{count}.yml").write_text(
                f"- hosts: bench\n  gather_facts: false\n  tasks:\n{tasks}"
            )
    return directory


def write_pyinfra_files(server: Server, work: Path, nhosts: int, steps: list[int]) -> Path:
    directory = work / "pyinfra"
    directory.mkdir(exist_ok=True)
    for count in (1, nhosts):
        hosts = [
            (
                name,
                {
                    "ssh_hostname": address,
                    "ssh_port": server.port,
                    "ssh_user": BENCH_USER,
                    "ssh_key": str(server.client_key),
                    "ssh_known_hosts_file": str(server.known_hosts),
                    "ssh_strict_host_key_checking": "yes",
                },
            )
            for name, address in server.hosts(count).items()
        ]
        (directory / f"inventory_{count}.py").write_text(f"hosts = {hosts!r}\n")
    for count in sorted(set(steps)):
        body = "from pyinfra.operations import server\n" + "".join(
            f"server.shell(name='s{i}', commands=['true'])\n" for i in range(count)
        )
        (directory / f"deploy_{count}.py").write_text(body)
    return directory


# -- timing -------------------------------------------------------------------------------


@dataclass
class Sample:
    times: list[float] = field(default_factory=list)
    extra: list[dict[str, float]] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)


@dataclass
class Job:
    """One command to time as a whole process."""

    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    before: Callable[[int], None] | None = None
    json_out: bool = False
    sample: Sample = field(default_factory=Sample)

    def once(self, rep: int) -> None:
        """Run once; record the time unless ``rep`` < 0 (the warm-up) or it failed before."""
        if self.sample.error:
            return
        if self.before is not None:
            self.before(rep)
        start = time.perf_counter()
        done = subprocess.run(
            self.argv, capture_output=True, env=self.env, cwd=self.cwd, check=False
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode(errors="replace")[-1500:]
            self.sample.error = f"exit {done.returncode}: {tail}"
        elif rep >= 0:  # the warm-up fills the page cache, the .pyc files, sshd's first fork
            self.sample.times.append(elapsed)
            if self.json_out:
                self.sample.extra.append(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def interleaved(reps: int, *jobs: Job) -> list[Sample]:
    """Time ``jobs`` round-robin, one warm-up and ``reps`` rounds: a machine that slows
    down part-way (these are shared VMs) slows every tool of a round alike."""
    for rep in range(-1, reps):
        for job in jobs:
            job.once(rep)
    return [job.sample for job in jobs]


def timed(argv: list[str], reps: int, **options: Any) -> Sample:
    """Wall time of ``argv`` as a whole process, ``reps`` times (after one warm-up)."""
    return interleaved(reps, Job(argv, **options))[0]


@dataclass
class Row:
    scenario: str
    tool: str
    sample: Sample | None
    steps: int | None = None  # steps per host, for "per step ms"
    per_step_ms: float | None = None  # overrides median / steps
    baseline: float | None = None  # raw paramiko's value on the same work (s or ms)
    target: str = ""
    target_value: float | None = None  # seconds (or ms when per-step)
    note: str = ""

    def value(self) -> float | None:
        return self.sample.median if self.sample and self.sample.times else None

    def per_step(self) -> float | None:
        if self.per_step_ms is not None:
            return self.per_step_ms
        value = self.value()
        return None if value is None or not self.steps else value * 1000 / self.steps

    def ratio(self) -> float | None:
        """This row's value over raw paramiko's on the same work."""
        mine = self.per_step() if self.per_step_ms is not None else self.value()
        return None if mine is None or not self.baseline else mine / self.baseline

    def verdict(self) -> str:
        """Targets are ratios to raw paramiko measured in the same round-robin run."""
        if self.target_value is None:
            return ""
        ratio = self.ratio()
        if ratio is None:
            return "n/a"
        return "pass" if ratio <= self.target_value else "MISS"


def render(rows: list[Row]) -> str:
    header = ["scenario", "tool", "median s", "min s", "per step ms", "vs paramiko", "target", ""]
    table = [header]
    for row in rows:
        value = row.value()
        if value is None and row.per_step_ms is None:
            why = row.note or (row.sample.error.splitlines()[0][:60] if row.sample else "skipped")
            table.append([row.scenario, row.tool, "-", "-", "-", "-", row.target, why])
            continue
        per = row.per_step()
        measured = row.ratio()
        ratio = f"{measured:.2f}x" if measured is not None else ""
        table.append(
            [
                row.scenario,
                row.tool,
                f"{value:.3f}" if value is not None else "-",
                f"{row.sample.best:.3f}" if row.sample and row.sample.times else "-",
                f"{per:.1f}" if per is not None else "-",
                ratio,
                row.target,
                row.verdict(),
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    out = []
    for index, row_cells in enumerate(table):
        out.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(row_cells, widths, strict=True)) + " |"
        )
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def machine() -> dict[str, str]:
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import paramiko

    versions = {"paramiko": paramiko.__version__}
    with contextlib.suppress(ImportError):
        import fabric

        versions["fabric"] = fabric.__version__
    with contextlib.suppress(ImportError):
        import drp

        versions["drp"] = drp.__version__
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssh": ssh,
        **versions,
    }


def find_tool(given: str | None, name: str) -> str | None:
    if given:
        return given if Path(given).exists() else None
    return shutil.which(name)


def drp_command(given: str | None) -> list[str]:
    """The drp console script next to this interpreter (not a pyenv shim), else PATH."""
    if given:
        return given.split()
    beside = Path(sys.executable).parent / "drp"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("drp")
    return [found] if found else [sys.executable, "-m", "drp"]


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="drpbench-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def serve(args: argparse.Namespace) -> None:
    """Keep a server and the files up, for profiling by hand (see README.md)."""
    with workdir(args.keep) as work:
        server = start_sshd(work / "sshd", args.hosts)
        try:
            steps = [args.steps, args.host_steps, args.long_steps]
            write_drp_files(server, work, args.hosts, steps)
            print(f"sshd on port {server.port}; files in {work} (Ctrl-C stops)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        finally:
            for process in server.processes:
                _stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (after 1 warm-up)")
    parser.add_argument("--peer-reps", type=int, default=3, help="repetitions for ansible/pyinfra")
    parser.add_argument("--steps", type=int, default=20, help="steps for the 1-host scenario")
    parser.add_argument("--hosts", type=int, default=20, help="hosts for the fan-out scenario")
    parser.add_argument("--host-steps", type=int, default=5, help="steps per host in the fan-out")
    parser.add_argument("--long-steps", type=int, default=200, help="steps of the long 1-host run")
    parser.add_argument("--drp", help="drp command (default: the console script beside python)")
    parser.add_argument(
        "--compare-drp",
        help="a second drp command (another version), timed in the same rounds as the first",
    )
    parser.add_argument("--ansible-playbook", help="path to ansible-playbook (default: PATH)")
    parser.add_argument("--pyinfra", help="path to pyinfra (default: PATH)")
    parser.add_argument("--no-peers", action="store_true", help="skip ansible and pyinfra")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--serve", action="store_true", help="only start sshd and write the files; wait for Ctrl-C"
    )
    args = parser.parse_args()
    # kill (SIGTERM) stops like Ctrl-C: the finally blocks stop the private sshd processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark starts sshd and logs in as the drpbench user")
    if args.serve:
        serve(args)
        return

    info = machine()
    drp = drp_command(args.drp)
    other = args.compare_drp.split() if args.compare_drp else None
    ansible = None if args.no_peers else find_tool(args.ansible_playbook, "ansible-playbook")
    pyinfra = None if args.no_peers else find_tool(args.pyinfra, "pyinfra")
    reps, nh, hs, n1, nlong = args.reps, args.hosts, args.host_steps, args.steps, args.long_steps
    rows: list[Row] = []

    with workdir(args.keep) as work:
        server = start_sshd(work / "sshd", nh)
        try:
            files = write_drp_files(server, work, nh, [n1, hs, nlong])
            scripts = work / "scripts"
            scripts.mkdir()
            (scripts / "raw_paramiko.py").write_text(PARAMIKO_SCRIPT)
            (scripts / "fabric_run.py").write_text(FABRIC_SCRIPT)
            common = [str(server.port), BENCH_USER, str(server.client_key), str(server.known_hosts)]
            one = server.addresses[:1]
            many = server.addresses[:nh]
            env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
            # An installed drp has its bytecode (pip compiles it), like paramiko and the
            # rest of site-packages. A source checkout under PYTHONDONTWRITEBYTECODE=1 would
            # compile every drp module on every run (~50 ms); the warm-up writes the cache.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            qenv = {**os.environ, "BENCH_QUICKACK": "1"}
            state = work / "state"

            def fresh_state(_rep: int) -> None:
                # a fresh state dir each time: `drp run` scans earlier runs for unfinished ones
                shutil.rmtree(state, ignore_errors=True)

            def drp_run(
                count: int, forks: int, *, one_host: bool, command: list[str] | None = None
            ) -> list[str]:
                return [
                    *(command or drp), "run", str(files[f"runbook-{count}"]),
                    "-i", str(files["inventory"]),
                    "--state-dir", str(state), "--forks", str(forks),
                    *(["--host", "h01"] if one_host else []),
                ]  # fmt: skip

            log = print
            log(f"sshd on port {server.port}, {nh} addresses, user {BENCH_USER}", file=sys.stderr)

            raw = scripts / "raw_paramiko.py"
            fab = scripts / "fabric_run.py"
            py = sys.executable
            floor_env = {**os.environ, "BENCH_PRELOAD": DRP_LIBRARIES}

            def raw_job(script: Path, count: int, hosts: list[str], **options: Any) -> Job:
                return Job([py, str(script), *common, str(count), *hosts], json_out=True, **options)

            def drp_job(
                count: int, forks: int, *, one_host: bool, command: list[str] | None = None
            ) -> Job:
                argv = drp_run(count, forks, one_host=one_host, command=command)
                if command is not None and other is None:
                    argv = ["true"]  # no second drp: a placeholder that is never shown
                return Job(argv, env=env, before=fresh_state)

            # Each scenario's tools are timed round-robin (see interleaved), the baselines
            # that set the ratios next to drp; the long runs ride with the 1-host ones, as
            # drp's per-step figure is the difference of the two.
            log("1 host: raw paramiko, drp, fabric ...", file=sys.stderr)
            p1, q1, l1, d1, o1, f1, plong, dlong, olong = interleaved(
                reps,
                raw_job(raw, n1, one),
                raw_job(raw, n1, one, env=qenv),
                raw_job(raw, n1, one, env=floor_env),
                drp_job(n1, 10, one_host=True),
                drp_job(n1, 10, one_host=True, command=other),
                raw_job(fab, n1, one),
                raw_job(raw, nlong, one),
                drp_job(nlong, 10, one_host=True),
                drp_job(nlong, 10, one_host=True, command=other),
            )
            log(f"{nh} hosts: raw paramiko, drp, fabric ...", file=sys.stderr)
            pn, qn, ln, dn, on, fn = interleaved(
                reps,
                raw_job(raw, hs, many),
                raw_job(raw, hs, many, env=qenv),
                raw_job(raw, hs, many, env=floor_env),
                drp_job(hs, nh, one_host=False),
                drp_job(hs, nh, one_host=False, command=other),
                raw_job(fab, hs, many),
            )
            raw_cmd_ms = (
                statistics.median(e["per_command"] for e in plong.extra) * 1000
                if plong.extra
                else None
            )
            drp_step_ms = other_step_ms = None
            if d1.times and dlong.times:
                drp_step_ms = (dlong.median - d1.median) * 1000 / (nlong - n1)
            if other and o1.times and olong.times:
                other_step_ms = (olong.median - o1.median) * 1000 / (nlong - n1)
            log("start-up ...", file=sys.stderr)
            libs = ", ".join(DRP_LIBRARIES.split(","))
            py_bare, py_paramiko, py_libs, d_help, d_version, d_list, o_help, o_list = interleaved(
                reps,
                Job([py, "-c", "pass"]),
                Job([py, "-c", "import paramiko"]),
                Job([py, "-c", f"import paramiko, {libs}"]),
                Job([*drp, "--help"], env=env),
                Job([*drp, "--version"], env=env),
                Job([*drp, "list"], env=env),
                Job([*(other or ["true"]), "--help"], env=env),
                Job([*(other or ["true"]), "list"], env=env),
            )

            a1 = an = ar1 = arn = None
            if ansible:
                log("ansible ...", file=sys.stderr)
                adir = write_ansible_files(server, work, nh, [n1, hs])
                aenv = {
                    **os.environ,
                    "ANSIBLE_HOME": str(work / "ah"),
                    "ANSIBLE_LOCAL_TEMP": str(work / "ah" / "tmp"),
                    "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
                    "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_RETRY_FILES_ENABLED": "0",
                }

                def play(name: str, forks: int) -> list[str]:
                    return [
                        ansible, "-i", str(adir / "hosts.ini"), "-f", str(forks),
                        str(adir / name),
                    ]  # fmt: skip

                prep = args.peer_reps
                a1 = timed(play(f"command-{n1}.yml", 20), prep, env=aenv, cwd=adir)
                an = timed(play(f"command-{hs}.yml", nh), prep, env=aenv, cwd=adir)
                ar1 = timed(play(f"raw-{n1}.yml", 20), prep, env=aenv, cwd=adir)
                arn = timed(play(f"raw-{hs}.yml", nh), prep, env=aenv, cwd=adir)

            y1 = yn = None
            if pyinfra:
                log("pyinfra ...", file=sys.stderr)
                ydir = write_pyinfra_files(server, work, nh, [n1, hs])
                yenv = {**os.environ, "PYINFRA_PROGRESS": "off"}

                def deploy(count_hosts: int, count_steps: int) -> list[str]:
                    return [
                        pyinfra, "-y", "--parallel", str(count_hosts),
                        str(ydir / f"inventory_{count_hosts}.py"),
                        str(ydir / f"deploy_{count_steps}.py"),
                    ]  # fmt: skip

                y1 = timed(deploy(1, n1), args.peer_reps, env=yenv, cwd=ydir)
                yn = timed(deploy(nh, hs), args.peer_reps, env=yenv, cwd=ydir)
        finally:
            for process in server.processes:
                _stop(process)

    s1 = f"1 host x {n1} steps"
    sn = f"{nh} hosts x {hs} steps"
    pbase1 = p1.median if p1.times else None
    pbasen = pn.median if pn.times else None
    startup_base = py_paramiko.median if py_paramiko.times else None
    missing_note = "not found (--ansible-playbook PATH)"
    shown_other = " ".join(other) if other else ""
    rows += [
        Row(s1, "raw paramiko (TCP_NODELAY)", p1, n1, baseline=pbase1),
        Row(s1, "raw paramiko (+ TCP_QUICKACK)", q1, n1, baseline=pbase1),
        Row(s1, "raw paramiko after drp's libraries", l1, n1, baseline=pbase1),
        Row(s1, "drp run", d1, n1, baseline=pbase1, target="<= 1.25x", target_value=1.25),
        *([Row(s1, f"drp run ({shown_other})", o1, n1, baseline=pbase1)] if other else []),
        Row(s1, "fabric Connection.run", f1, n1, baseline=pbase1),
        Row(s1, "ansible-playbook command", a1, n1, baseline=pbase1, note=missing_note),
        Row(s1, "ansible-playbook raw", ar1, n1, baseline=pbase1, note=missing_note),
        Row(s1, "pyinfra server.shell", y1, n1, baseline=pbase1, note="not found (--pyinfra)"),
        Row(sn, "raw paramiko pool", pn, hs, baseline=pbasen),
        Row(sn, "raw paramiko pool (+ TCP_QUICKACK)", qn, hs, baseline=pbasen),
        Row(sn, "raw paramiko pool after drp's libraries", ln, hs, baseline=pbasen),
        Row(sn, "drp run --forks 20", dn, hs, baseline=pbasen, target="<= 1.25x",
            target_value=1.25),
        *([Row(sn, f"drp run --forks 20 ({shown_other})", on, hs, baseline=pbasen)]
          if other else []),
        Row(sn, "fabric ThreadingGroup", fn, hs, baseline=pbasen),
        Row(sn, "ansible-playbook command", an, hs, baseline=pbasen, note=missing_note),
        Row(sn, "ansible-playbook raw", arn, hs, baseline=pbasen, note=missing_note),
        Row(sn, "pyinfra server.shell", yn, hs, baseline=pbasen, note="not found (--pyinfra)"),
        Row(
            f"1 host x {nlong} steps", "raw paramiko (TCP_NODELAY)", plong, nlong,
            per_step_ms=raw_cmd_ms, baseline=raw_cmd_ms,
        ),
        Row(
            f"1 host x {nlong} steps", "drp run", dlong, nlong,
            per_step_ms=drp_step_ms, baseline=raw_cmd_ms, target="<= 1.4x", target_value=1.4,
        ),
        *([Row(f"1 host x {nlong} steps", f"drp run ({shown_other})", olong, nlong,
               per_step_ms=other_step_ms, baseline=raw_cmd_ms)] if other else []),
        Row("startup", "python -c pass", py_bare),
        Row("startup", "python -c 'import paramiko'", py_paramiko, baseline=startup_base),
        Row("startup", "python -c 'import paramiko' + drp's libraries", py_libs,
            baseline=startup_base),
        Row("startup", "drp --help", d_help, baseline=startup_base,
            target="<= 1.3x", target_value=1.3),
        Row("startup", "drp --version", d_version, baseline=startup_base),
        Row("startup", "drp list", d_list, baseline=startup_base,
            target="<= 1.3x", target_value=1.3),
        *([Row("startup", f"drp --help ({shown_other})", o_help, baseline=startup_base),
           Row("startup", f"drp list ({shown_other})", o_list, baseline=startup_base)]
          if other else []),
    ]  # fmt: skip

    table = render(rows)
    print()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"drp command: {' '.join(drp)}; reps {reps} (+1 warm-up), peers {args.peer_reps}")
    print()
    print(table)
    print()
    notes = []
    if drp_step_ms is not None:
        notes.append(
            f"drp per step on an open connection = (median {nlong}-step run - median {n1}-step"
            f" run) / {nlong - n1} = {drp_step_ms:.2f} ms; raw paramiko per command (in-process,"
            f" {nlong} commands) = {raw_cmd_ms:.2f} ms"
        )
    for label, sample in (("paramiko 1 host", p1), ("fabric 1 host", f1)):
        if sample.extra:
            imp = statistics.median(e["import"] for e in sample.extra) * 1000
            con = statistics.median(e["connect"] for e in sample.extra) * 1000
            cmd = statistics.median(e["per_command"] for e in sample.extra) * 1000
            notes.append(f"{label}: import {imp:.0f} ms, connect {con:.0f} ms, {cmd:.2f} ms/cmd")
    if fn.extra:
        cmd = statistics.median(e["per_command"] for e in fn.extra) * 1000
        notes.append(f"fabric ThreadingGroup: {cmd:.1f} ms per group.run over {nh} hosts")
    for row in rows:
        if row.sample and row.sample.error:
            notes.append(f"{row.scenario} / {row.tool} failed: {row.sample.error[-400:]}")
    for note in notes:
        print(textwrap.fill(note, 100, subsequent_indent="  "))

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "rows": [
                        {
                            "scenario": r.scenario,
                            "tool": r.tool,
                            "times": r.sample.times if r.sample else [],
                            "median": r.value(),
                            "per_step_ms": r.per_step(),
                            "target": r.target,
                            "verdict": r.verdict(),
                            "error": r.sample.error if r.sample else "",
                        }
                        for r in rows
                    ],
                    "notes": notes,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
