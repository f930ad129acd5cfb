"""What each tool of bench_run.py runs: drp's inventory and runbooks, and its peers.

The in-process peers are scripts (written to files and run as whole processes, so
each pays its imports like drp does) that print one JSON line ending with
``"commands"``: how many commands exited 0. bench_run.py checks that count against
hosts x steps, so a peer that silently fails to connect is not timed as fast:

- raw paramiko: one connection per host (TCP_NODELAY), one exec channel per command;
- fabric: ``Connection.run`` for 1 host, ``ThreadingGroup.run`` for many, either as
  fabric sets it up or with a TCP_NODELAY socket passed through
  ``connect_kwargs={"sock": ...}`` (fabric hands connect_kwargs to paramiko's
  ``SSHClient.connect``, which takes a connected socket);
- parallel-ssh (libssh2): ``SSHClient`` for 1 host, ``ParallelSSHClient`` for many.
  parallel-ssh has no known_hosts option and accepts any host key; the script
  checks each session's host key against the benchmark's known_hosts with
  libssh2's own check (``ssh2.knownhost``) after its first command.

ansible-playbook and pyinfra are driven by files written here; their output is parsed
for the same count (``ansible_ok_count``, ``pyinfra_ok_count``).
"""

from __future__ import annotations

import re
from pathlib import Path

from sshd_farm import BENCH_USER, Server

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
    sock = socket.create_connection((address, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if QUICKACK:
        sock = QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        sock.settimeout(30)
    client = paramiko.SSHClient()
    client.load_host_keys(known)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, port=port, username=user, key_filename=key, look_for_keys=False,
                   allow_agent=False, sock=sock, timeout=30, banner_timeout=30,
                   auth_timeout=30)
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
                  "per_command": sorted(r[1] for r in results)[len(results) // 2],
                  "commands": steps * len(results)}))
"""

FABRIC_SCRIPT = r"""
import json, os, socket, sys, time
t0 = time.perf_counter()
from fabric import Connection, ThreadingGroup
t_import = time.perf_counter() - t0
port, user, key, known = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
steps = int(sys.argv[5])
addresses = sys.argv[6:]
NODELAY = os.environ.get("BENCH_NODELAY") == "1"

def connection(address):
    kwargs = {"key_filename": key, "look_for_keys": False, "allow_agent": False,
              "banner_timeout": 30, "auth_timeout": 30}
    if NODELAY:  # fabric passes connect_kwargs to paramiko's SSHClient.connect(sock=...)
        sock = socket.create_connection((address, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kwargs["sock"] = sock
    c = Connection(address, user=user, port=port, connect_kwargs=kwargs, connect_timeout=30)
    c.client.load_host_keys(known)  # fabric's default policy would still accept unknown keys
    return c

commands = 0
if len(addresses) == 1:
    c = connection(addresses[0])
    c0 = time.perf_counter()
    c.open()
    c1 = time.perf_counter()
    for _ in range(steps):
        commands += c.run("true", hide=True, in_stream=False).exited == 0
    c2 = time.perf_counter()
    c.close()
    print(json.dumps({"import": t_import, "connect": c1 - c0, "per_command": (c2 - c1) / steps,
                      "commands": commands}))
else:
    group = ThreadingGroup.from_connections([connection(a) for a in addresses])
    c0 = time.perf_counter()
    for _ in range(steps):
        results = group.run("true", hide=True, in_stream=False)
        commands += sum(r.exited == 0 for r in results.values())
    c1 = time.perf_counter()
    group.close()
    print(json.dumps({"import": t_import, "per_command": (c1 - c0) / steps,
                      "commands": commands}))
"""

PSSH_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from pssh.clients import ParallelSSHClient, SSHClient
from ssh2 import knownhost
t_import = time.perf_counter() - t0
port, user, key, known = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
steps = int(sys.argv[5])
addresses = sys.argv[6:]
options = {"user": user, "port": port, "pkey": key, "allow_agent": False,
           "identity_auth": False, "num_retries": 1, "timeout": 30}

def verify(address, session):
    # parallel-ssh accepts any host key: check it here with libssh2's known_hosts check
    hosts = session.knownhost_init()
    hosts.readfile(known)
    key, _type = session.hostkey()
    mask = (knownhost.LIBSSH2_KNOWNHOST_TYPE_PLAIN | knownhost.LIBSSH2_KNOWNHOST_KEYENC_RAW
            | knownhost.LIBSSH2_KNOWNHOST_KEY_ED25519)
    hosts.checkp(address.encode(), port, key, mask)  # raises unless it matches

commands = 0
if len(addresses) == 1:
    client = SSHClient(addresses[0], **options)
    c1 = time.perf_counter()
    verify(addresses[0], client.session)
    for _ in range(steps):
        out = client.run_command("true")
        for _line in out.stdout:
            pass
        client.wait_finished(out)
        commands += out.exit_code == 0
    c2 = time.perf_counter()
    client.disconnect()
    print(json.dumps({"import": t_import, "per_command": (c2 - c1) / steps,
                      "commands": commands}))
else:
    client = ParallelSSHClient(addresses, pool_size=len(addresses), **options)
    c0 = time.perf_counter()
    for step in range(steps):
        output = client.run_command("true", stop_on_errors=True)
        client.join(output, consume_output=True)
        if step == 0:
            for host_out in output:
                verify(host_out.host, host_out.client.session)
        commands += sum(h.exit_code == 0 for h in output)
    c1 = time.perf_counter()
    print(json.dumps({"import": t_import, "per_command": (c1 - c0) / steps,
                      "commands": commands}))
"""


def lock_dir(server: Server, work: Path, name: str) -> Path:
    """Host ``name``'s drp lock directory: every "host" is this machine, so each needs its
    own, and the work directory's name keeps them apart from other benchmarks' runs."""
    return server.home / "drp-locks" / f"{work.name}-{name}"


def write_drp_files(
    server: Server, work: Path, host_counts: list[int], steps: list[int]
) -> dict[str, Path]:
    """``inventory-N.yaml`` per host count (``inventory.yaml``: the largest) and a runbook
    ``bench-S.yaml`` per step count."""
    import yaml

    files: dict[str, Path] = {}
    for count in sorted(set(host_counts)):
        hosts = {}
        for name, address in server.hosts(count).items():
            hosts[name] = {
                "address": address,
                "port": server.port,
                "user": BENCH_USER,
                "key": str(server.client_key),
                "known_hosts": str(server.known_hosts),
                "vars": {"drp_lock_dir": str(lock_dir(server, work, name))},
            }
        text = yaml.safe_dump({"hosts": hosts}, sort_keys=False)
        files[f"inventory-{count}"] = work / f"inventory-{count}.yaml"
        files[f"inventory-{count}"].write_text(text)
        files["inventory"] = work / "inventory.yaml"
        files["inventory"].write_text(text)
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


def write_ansible_files(
    server: Server, work: Path, host_counts: list[int], steps: list[int]
) -> Path:
    """``hosts-N.ini`` per host count, ``command-S.yml`` / ``raw-S.yml`` per step count."""
    directory = work / "ansible"
    directory.mkdir(exist_ok=True)
    ssh_args = f"-o UserKnownHostsFile={server.known_hosts} -o StrictHostKeyChecking=yes"
    for count in sorted(set(host_counts)):
        lines = ["[bench]"]
        for name, address in server.hosts(count).items():
            lines.append(
                f"{name} ansible_host={address} ansible_port={server.port} "
                f"ansible_user={BENCH_USER} ansible_ssh_private_key_file={server.client_key} "
                f"ansible_ssh_common_args='{ssh_args}' ansible_python_interpreter=/usr/bin/python3"
            )
        (directory / f"hosts-{count}.ini").write_text("\n".join(lines) + "\n")
    for count in sorted(set(steps)):
        for module in ("command", "raw"):
            tasks = "".join(f"    - {module}: /bin/true\n" for _ in range(count))
            (directory / f"{module}-{count}.yml").write_text(
                f"- hosts: bench\n  gather_facts: false\n  tasks:\n{tasks}"
            )
    return directory


def write_pyinfra_files(
    server: Server, work: Path, host_counts: list[int], steps: list[int]
) -> Path:
    """``inventory_N.py`` per host count, ``deploy_S.py`` per step count."""
    directory = work / "pyinfra"
    directory.mkdir(exist_ok=True)
    for count in sorted(set(host_counts)):
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


def ansible_ok_count(output: str) -> int:
    """Tasks that ran fine, from the PLAY RECAP (``h01 : ok=5 changed=5 ...``)."""
    return sum(int(n) for n in re.findall(r"^\S+\s+:\s+ok=(\d+)", output, re.MULTILINE))


def pyinfra_ok_count(output: str) -> int:
    """Operations that succeeded: pyinfra prints ``[host] Success`` per host and operation."""
    return len(re.findall(r"^\s*\[\S+\] Success", output, re.MULTILINE))
