#!/usr/bin/env python3
"""Benchmark ``drp run`` over SSH against its own loopback sshd farm, next to its peers.

A benchmark, not a test: it prints tables and never fails on a missed target
(exit 0 unless something could not run at all). One invocation:

1. starts a farm of private OpenSSH ``sshd`` processes (sshd_farm.py) on one free port,
   listening on 127.0.0.1 .. 127.0.0.N (N "hosts", at most 16 per sshd), with fresh
   host/client keys and a known_hosts file, and logs in as the dedicated user
   ``drpbench`` whose login shell is ``/bin/sh`` (see README.md for why not root);
2. writes drp inventories and runbooks of trivial ``run: "true"`` steps, and the
   peers' scripts and files (peers.py);
3. times, as whole processes (fork/exec, imports, connect, journal fsyncs), each
   scenario's tools **round-robin** (a warm-up round, then ``--reps`` rounds; ansible
   and pyinfra join only the first ``--peer-reps`` rounds): 1 host x 20 steps (and 200,
   for the cost of one step on an open connection), N hosts x 5 steps for each N of
   ``--fanout`` (20, 50, 200), start-up (``drp --help``, ``drp list``), and the scaling
   curves (steps on 1 host, hosts at 5 steps: drp against raw paramiko);
4. prints per scenario the machine's load average before and after and the median of
   ``python -c pass`` timed in the same rounds (a load gauge), then the tables:
   scenario, tool, median s, per step ms, ratio vs raw paramiko, target, pass/miss.

Usage::

    python benchmarks/bench_run.py --peers-venv /tmp/peers --json /tmp/bench.json
    python benchmarks/bench_run.py --quick            # every row once, to check it runs

Must run as root (it starts sshd and may create the ``drpbench`` user).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import signal
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import (
    DRP_LIBRARIES,
    FABRIC_SCRIPT,
    PARAMIKO_SCRIPT,
    PSSH_SCRIPT,
    ansible_ok_count,
    lock_dir,
    pyinfra_ok_count,
    write_ansible_files,
    write_drp_files,
    write_pyinfra_files,
)
from sshd_farm import BENCH_USER, Server, _stop, start_sshd, stop_all

# bench_journal.py imports these from here
__all__ = ["BENCH_USER", "Server", "_stop", "machine", "start_sshd"]


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
    """One command to time as a whole process.

    ``expect``: the commands it must report as run (hosts x steps), from its JSON line
    (``json_out``) or from ``count`` applied to its output; a run that reports fewer is
    an error, not a time. ``rounds``: take part in the warm-up and only the first
    ``rounds`` timed rounds (the slow peers)."""

    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    before: Callable[[int], None] | None = None
    json_out: bool = False
    expect: int | None = None
    count: Callable[[str], int] | None = None
    rounds: int | None = None
    sample: Sample = field(default_factory=Sample)

    def once(self, rep: int) -> None:
        """Run once; record the time unless ``rep`` < 0 (the warm-up) or it failed before."""
        if self.sample.error or (self.rounds is not None and rep >= self.rounds):
            return
        if self.before is not None:
            self.before(rep)
        start = time.perf_counter()
        done = subprocess.run(
            self.argv, capture_output=True, env=self.env, cwd=self.cwd, check=False
        )
        elapsed = time.perf_counter() - start
        output = (done.stdout + done.stderr).decode(errors="replace")
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode(errors="replace")[-1500:]
            self.sample.error = f"exit {done.returncode}: {tail}"
            return
        extra: dict[str, float] = {}
        if self.json_out:
            extra = json.loads(done.stdout.decode().strip().splitlines()[-1])
        ran = extra.get("commands") if self.json_out else None
        if self.count is not None:
            ran = self.count(output)
        if self.expect is not None and ran != self.expect:
            self.sample.error = f"ran {ran} commands, expected {self.expect}: {output[-800:]}"
            return
        if rep >= 0:  # the warm-up fills the page cache, the .pyc files, sshd's first fork
            self.sample.times.append(elapsed)
            if self.json_out:
                self.sample.extra.append(extra)


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
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

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
    with contextlib.suppress(PackageNotFoundError):
        versions["parallel-ssh"] = package_version("parallel-ssh")
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
            write_drp_files(server, work, [1, args.hosts], steps)
            print(f"sshd on port {server.port}; files in {work} (Ctrl-C stops)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        finally:
            stop_all(server)


# -- scenarios ----------------------------------------------------------------------------


@dataclass
class Load:
    """The machine's load around one scenario: 1-minute load average before and after,
    and ``python -c pass`` timed in the scenario's own rounds (a gauge of the load)."""

    scenario: str
    before: float
    after: float
    gauge: Sample

    def gauge_ms(self) -> float | None:
        return self.gauge.median * 1000 if self.gauge.times else None


@dataclass
class Tool:
    """A row to be: a label, the job that times it, its target (a ratio to raw paramiko)."""

    label: str
    job: Job
    target: float | None = None


@dataclass
class Bench:
    args: argparse.Namespace
    server: Server
    work: Path
    files: dict[str, Path]
    drp: list[str]
    other: list[str] | None
    ansible: str | None
    pyinfra: str | None
    loads: list[Load] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    #: (hosts, steps) -> raw paramiko's and drp's samples, for the curves
    points: dict[tuple[int, int], tuple[Sample, Sample]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.py = sys.executable
        self.scripts = self.work / "scripts"
        self.scripts.mkdir(exist_ok=True)
        for name, text in (
            ("raw_paramiko.py", PARAMIKO_SCRIPT),
            ("fabric_run.py", FABRIC_SCRIPT),
            ("pssh_run.py", PSSH_SCRIPT),  # not pssh.py: it would shadow the package
        ):
            (self.scripts / name).write_text(text)
        server = self.server
        self.common = [str(server.port), BENCH_USER, str(server.client_key)]
        self.common.append(str(server.known_hosts))
        # An installed drp has its bytecode (pip compiles it), like paramiko and the
        # rest of site-packages. A source checkout under PYTHONDONTWRITEBYTECODE=1 would
        # compile every drp module on every run (~50 ms); the warm-up writes the cache.
        self.env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.state = self.work / "state"
        self.adir = self.ydir = self.work

    # the jobs

    def script(self, name: str, steps: int, hosts: int, env: dict[str, str] | None = None) -> Job:
        addresses = self.server.addresses[:hosts]
        argv = [self.py, str(self.scripts / name), *self.common, str(steps), *addresses]
        full_env = {**os.environ, **env} if env else None
        return Job(argv, env=full_env, json_out=True, expect=steps * hosts)

    def raw(self, steps: int, hosts: int, env: dict[str, str] | None = None) -> Job:
        return self.script("raw_paramiko.py", steps, hosts, env)

    def fabric(self, steps: int, hosts: int, *, nodelay: bool = False) -> Job:
        return self.script(
            "fabric_run.py", steps, hosts, {"BENCH_NODELAY": "1"} if nodelay else None
        )

    def pssh(self, steps: int, hosts: int) -> Job:
        return self.script("pssh_run.py", steps, hosts)

    def drp_run(self, steps: int, hosts: int, command: list[str] | None = None) -> Job:
        def fresh_state(_rep: int) -> None:
            # a fresh state dir each time: `drp run` scans earlier runs for unfinished ones
            shutil.rmtree(self.state, ignore_errors=True)

        argv = [
            *(command or self.drp), "run", str(self.files[f"runbook-{steps}"]),
            "-i", str(self.files[f"inventory-{hosts}"]),
            "--state-dir", str(self.state), "--forks", str(min(hosts, 500)),
        ]  # fmt: skip
        return Job(argv, env=self.env, before=fresh_state)

    def ansible_jobs(self, steps: int, hosts: int) -> list[Tool]:
        if not self.ansible:
            return []
        env = {
            **os.environ,
            "ANSIBLE_HOME": str(self.work / "ah"),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "ah" / "tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.work / "cp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
        }
        return [
            Tool(
                f"ansible-playbook {module} -f {min(hosts, 200)}",
                Job(
                    [
                        self.ansible, "-i", str(self.adir / f"hosts-{hosts}.ini"),
                        "-f", str(min(hosts, 200)), str(self.adir / f"{module}-{steps}.yml"),
                    ],
                    env=env, cwd=self.adir, expect=steps * hosts, count=ansible_ok_count,
                    rounds=self.args.peer_reps,
                ),
            )
            for module in ("command", "raw")
        ]  # fmt: skip

    def pyinfra_jobs(self, steps: int, hosts: int) -> list[Tool]:
        if not self.pyinfra:
            return []
        argv = [
            self.pyinfra, "-y", "--parallel", str(hosts),
            str(self.ydir / f"inventory_{hosts}.py"), str(self.ydir / f"deploy_{steps}.py"),
        ]  # fmt: skip
        env = {**os.environ, "PYINFRA_PROGRESS": "off"}
        job = Job(
            argv, env=env, cwd=self.ydir, expect=steps * hosts, count=pyinfra_ok_count,
            rounds=self.args.peer_reps,
        )  # fmt: skip
        return [Tool(f"pyinfra server.shell --parallel {hosts}", job)]

    # running a scenario

    def scenario(self, name: str, tools: list[Tool], *, big: bool = False) -> None:
        """Time ``tools`` round-robin with the load gauge; results stay in the jobs.
        ``big``: more than 20 hosts, timed in ``--big-reps`` rounds (a round of 200
        hosts takes ~1.5 min on 2 cores)."""
        gauge = Job([self.py, "-c", "pass"])
        jobs = [gauge, *(t.job for t in tools)]
        before = os.getloadavg()[0]
        reps = min(self.args.reps, self.args.big_reps) if big else self.args.reps
        for rep in range(-1, reps):
            label = "warm-up" if rep < 0 else f"round {rep + 1}/{reps}"
            print(f"  {name}: {label}", file=sys.stderr, flush=True)
            for job in jobs:
                job.once(rep)
        self.loads.append(Load(name, before, os.getloadavg()[0], gauge.sample))

    def add_rows(self, name: str, steps: int, tools: list[Tool]) -> None:
        """Rows for ``tools``; the first is raw paramiko, the baseline of the rest."""
        base = tools[0].job.sample
        baseline = base.median if base.times else None
        for tool in tools:
            target = f"<= {tool.target}x" if tool.target else ""
            self.rows.append(
                Row(name, tool.label, tool.job.sample, steps, baseline=baseline,
                    target=target, target_value=tool.target)
            )  # fmt: skip


def split_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def marginal(xs: list[int], values: list[float | None]) -> list[str]:
    """ms per added unit between consecutive points ("" for the first)."""
    out = [""]
    for i in range(1, len(xs)):
        a, b = values[i - 1], values[i]
        out.append("" if a is None or b is None else f"{(b - a) * 1000 / (xs[i] - xs[i - 1]):.2f}")
    return out


def curve_table(unit: str, xs: list[int], points: list[tuple[Sample, Sample]]) -> list[str]:
    raw = [r.median if r.times else None for r, _ in points]
    drp = [d.median if d.times else None for _, d in points]
    raw_m, drp_m = marginal(xs, raw), marginal(xs, drp)
    lines = [
        f"| {unit} | raw paramiko s | drp s | drp / raw | raw ms per added {unit[:-1]}"
        f" | drp ms per added {unit[:-1]} |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, x in enumerate(xs):
        r, d = raw[i], drp[i]
        ratio = f"{d / r:.2f}x" if r and d else "-"
        lines.append(
            f"| {x} | {f'{r:.3f}' if r else '-'} | {f'{d:.3f}' if d else '-'} | {ratio}"
            f" | {raw_m[i]} | {drp_m[i]} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="timed rounds (after 1 warm-up)")
    parser.add_argument(
        "--peer-reps", type=int, default=2,
        help="rounds ansible and pyinfra join (the first N of --reps, and the warm-up)",
    )  # fmt: skip
    parser.add_argument(
        "--big-reps", type=int, default=3, help="timed rounds of scenarios over 20 hosts"
    )
    parser.add_argument("--quick", action="store_true", help="--reps 1 --peer-reps 1")
    parser.add_argument("--steps", type=int, default=20, help="steps for the 1-host scenario")
    parser.add_argument(
        "--fanout", default="20,50,200", help="host counts of the fan-out scenarios"
    )
    parser.add_argument("--hosts", type=int, default=20, help="hosts for --serve")
    parser.add_argument("--host-steps", type=int, default=5, help="steps per host in the fan-out")
    parser.add_argument("--long-steps", type=int, default=200, help="steps of the long 1-host run")
    parser.add_argument(
        "--peer-max-hosts", type=int, default=20,
        help="largest fan-out ansible and pyinfra take part in (they fork per host)",
    )  # fmt: skip
    parser.add_argument(
        "--curves", action=argparse.BooleanOptionalAction, default=True,
        help="the scaling curves, drp against raw paramiko (default: on)",
    )  # fmt: skip
    parser.add_argument("--curve-steps", default="1,5,20,50,200", help="steps on 1 host")
    parser.add_argument("--curve-hosts", default="1,5,20,50,200", help="hosts at --host-steps")
    parser.add_argument("--drp", help="drp command (default: the console script beside python)")
    parser.add_argument(
        "--compare-drp",
        help="a second drp command (another version), timed in the same rounds as the first",
    )
    parser.add_argument(
        "--peers-venv", type=Path, help="venv with ansible-playbook and pyinfra (/tmp/peers)"
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
    if args.quick:
        args.reps, args.peer_reps = 1, 1
    # kill (SIGTERM) stops like Ctrl-C: the finally blocks stop the private sshd processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark starts sshd and logs in as the drpbench user")
    if args.serve:
        serve(args)
        return

    started = time.monotonic()
    info = machine()
    drp = drp_command(args.drp)
    other = args.compare_drp.split() if args.compare_drp else None
    venv_bin = args.peers_venv / "bin" if args.peers_venv else None
    ansible = pyinfra = None
    if not args.no_peers:
        ansible = find_tool(
            args.ansible_playbook or (str(venv_bin / "ansible-playbook") if venv_bin else None),
            "ansible-playbook",
        )
        pyinfra = find_tool(
            args.pyinfra or (str(venv_bin / "pyinfra") if venv_bin else None), "pyinfra"
        )
    has_pssh = importlib.util.find_spec("pssh") is not None
    n1, nlong, hs = args.steps, args.long_steps, args.host_steps
    fanouts = split_ints(args.fanout)
    curve_steps = split_ints(args.curve_steps) if args.curves else []
    curve_hosts = split_ints(args.curve_hosts) if args.curves else []
    host_counts = sorted({1, *fanouts, *curve_hosts})
    step_counts = sorted({n1, nlong, hs, *curve_steps})
    peer_hosts = [1, *(n for n in fanouts if n <= args.peer_max_hosts)]

    with workdir(args.keep) as work:
        print(f"starting {host_counts[-1]} sshd hosts ...", file=sys.stderr)
        server = start_sshd(work / "sshd", host_counts[-1])
        try:
            files = write_drp_files(server, work, host_counts, step_counts)
            bench = Bench(args, server, work, files, drp, other, ansible, pyinfra)
            if ansible:
                bench.adir = write_ansible_files(server, work, peer_hosts, [n1, hs])
            if pyinfra:
                bench.ydir = write_pyinfra_files(server, work, peer_hosts, [n1, hs])
            run_all(bench, n1, nlong, hs, fanouts, has_pssh)
            curves = run_curves(bench, curve_steps, curve_hosts, hs) if args.curves else {}
        finally:
            stop_all(server)
            for name in server.hosts(host_counts[-1]):
                shutil.rmtree(lock_dir(server, work, name), ignore_errors=True)

    report(bench, info, curves, has_pssh, time.monotonic() - started)


def run_all(bench: Bench, n1: int, nlong: int, hs: int, fanouts: list[int], has_pssh: bool) -> None:
    """The 1-host, fan-out and start-up scenarios, each round-robin."""
    other = bench.other
    shown_other = " ".join(other) if other else ""
    qenv = {"BENCH_QUICKACK": "1"}
    floor_env = {"BENCH_PRELOAD": DRP_LIBRARIES}

    # 1 host: the long runs ride with the short ones, as drp's per-step figure is the
    # difference of the two
    name = f"1 host x {n1} steps"
    tools = [
        Tool("raw paramiko (TCP_NODELAY)", bench.raw(n1, 1)),
        Tool("raw paramiko (+ TCP_QUICKACK)", bench.raw(n1, 1, qenv)),
        Tool("raw paramiko after drp's libraries", bench.raw(n1, 1, floor_env)),
        Tool("drp run", bench.drp_run(n1, 1), 1.25),
        *([Tool(f"drp run ({shown_other})", bench.drp_run(n1, 1, other))] if other else []),
        Tool("fabric Connection.run", bench.fabric(n1, 1)),
        Tool("fabric Connection.run + TCP_NODELAY", bench.fabric(n1, 1, nodelay=True)),
        *([Tool("parallel-ssh SSHClient", bench.pssh(n1, 1))] if has_pssh else []),
        *bench.ansible_jobs(n1, 1),
        *bench.pyinfra_jobs(n1, 1),
    ]
    long_raw = bench.raw(nlong, 1)
    long_drp = bench.drp_run(nlong, 1)
    long_other = bench.drp_run(nlong, 1, other) if other else None
    print(f"{name} (and {nlong} steps) ...", file=sys.stderr)
    extra = [Tool("", j) for j in (long_raw, long_drp, long_other) if j is not None]
    bench.scenario(name, tools + extra)
    bench.add_rows(name, n1, tools)
    bench.points[(1, n1)] = (tools[0].job.sample, tools[3].job.sample)
    bench.points[(1, nlong)] = (long_raw.sample, long_drp.sample)

    lname = f"1 host x {nlong} steps"
    raw_ms = (
        statistics.median(e["per_command"] for e in long_raw.sample.extra) * 1000
        if long_raw.sample.extra
        else None
    )

    def step_ms(short: Sample, long: Sample) -> float | None:
        if short.times and long.times:
            return (long.median - short.median) * 1000 / (nlong - n1)
        return None

    bench.rows.append(
        Row(lname, "raw paramiko (TCP_NODELAY)", long_raw.sample, nlong, per_step_ms=raw_ms,
            baseline=raw_ms)
    )  # fmt: skip
    bench.rows.append(
        Row(lname, "drp run", long_drp.sample, nlong,
            per_step_ms=step_ms(tools[3].job.sample, long_drp.sample), baseline=raw_ms,
            target="<= 1.4x", target_value=1.4)
    )  # fmt: skip
    if long_other is not None:
        bench.rows.append(
            Row(lname, f"drp run ({shown_other})", long_other.sample, nlong,
                per_step_ms=step_ms(tools[4].job.sample, long_other.sample), baseline=raw_ms)
        )  # fmt: skip

    for hosts in fanouts:
        name = f"{hosts} hosts x {hs} steps"
        target = 1.25 if hosts <= 20 else 1.3
        peers = hosts <= bench.args.peer_max_hosts
        tools = [
            Tool("raw paramiko pool", bench.raw(hs, hosts)),
            *(
                [
                    Tool("raw paramiko pool (+ TCP_QUICKACK)", bench.raw(hs, hosts, qenv)),
                    Tool(
                        "raw paramiko pool after drp's libraries", bench.raw(hs, hosts, floor_env)
                    ),
                ]
                if hosts <= 20
                else []
            ),
            Tool(f"drp run --forks {min(hosts, 500)}", bench.drp_run(hs, hosts), target),
            *(
                [Tool(f"drp run --forks {hosts} ({shown_other})", bench.drp_run(hs, hosts, other))]
                if other
                else []
            ),
            Tool("fabric ThreadingGroup", bench.fabric(hs, hosts)),
            Tool("fabric ThreadingGroup + TCP_NODELAY", bench.fabric(hs, hosts, nodelay=True)),
            *([Tool("parallel-ssh ParallelSSHClient", bench.pssh(hs, hosts))] if has_pssh else []),
            *(bench.ansible_jobs(hs, hosts) if peers else []),
            *(bench.pyinfra_jobs(hs, hosts) if peers else []),
        ]
        print(f"{name} ...", file=sys.stderr)
        bench.scenario(name, tools, big=hosts > 20)
        bench.add_rows(name, hs, tools)
        drp_tool = next(t for t in tools if t.label.startswith("drp run"))
        bench.points[(hosts, hs)] = (tools[0].job.sample, drp_tool.job.sample)

    # start-up: `drp list` lists the built-in runbooks (drp/ ships them) plus what
    # DRP_RUNBOOK_PATH names, reading each file's summary
    py, drp = bench.py, bench.drp
    libs = ", ".join(DRP_LIBRARIES.split(","))
    env = bench.env
    tools = [
        Tool("python -c 'import paramiko'", Job([py, "-c", "import paramiko"])),
        Tool("python -c 'import paramiko' + drp's libraries",
             Job([py, "-c", f"import paramiko, {libs}"])),
        Tool("drp --help", Job([*drp, "--help"], env=env), 1.3),
        Tool("drp --version", Job([*drp, "--version"], env=env)),
        Tool("drp list", Job([*drp, "list"], env=env), 1.3),
        *(
            [Tool(f"drp --help ({shown_other})", Job([*other, "--help"], env=env)),
             Tool(f"drp list ({shown_other})", Job([*other, "list"], env=env))]
            if other else []
        ),
    ]  # fmt: skip
    print("start-up ...", file=sys.stderr)
    bench.scenario("startup", tools)
    bench.add_rows("startup", 0, tools)


def run_curves(
    bench: Bench, curve_steps: list[int], curve_hosts: list[int], hs: int
) -> dict[str, Any]:
    """The points not measured yet, each its own round-robin of raw paramiko and drp."""
    wanted = [(1, s) for s in curve_steps] + [(h, hs) for h in curve_hosts]
    for hosts, steps in wanted:
        if (hosts, steps) in bench.points:
            continue
        raw, drp = bench.raw(steps, hosts), bench.drp_run(steps, hosts)
        name = f"curve: {hosts} hosts x {steps} steps"
        print(f"{name} ...", file=sys.stderr)
        bench.scenario(name, [Tool("raw", raw), Tool("drp", drp)], big=hosts > 20)
        bench.points[(hosts, steps)] = (raw.sample, drp.sample)
    return {
        "steps": [(s, bench.points[(1, s)]) for s in curve_steps],
        "hosts": [(h, bench.points[(h, hs)]) for h in curve_hosts],
    }


def report(
    bench: Bench, info: dict[str, str], curves: dict[str, Any], has_pssh: bool, wall: float
) -> None:
    args = bench.args
    print()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        f"drp command: {' '.join(bench.drp)}; reps {args.reps} (+1 warm-up; over 20 hosts"
        f" {min(args.reps, args.big_reps)}), ansible/pyinfra in the first {args.peer_reps};"
        f" wall time {wall:.0f} s"
    )
    print()
    print("| scenario | load avg before | after | python -c pass ms (median) |")
    print("|---|---:|---:|---:|")
    for load in bench.loads:
        gauge = load.gauge_ms()
        shown = f"{gauge:.1f}" if gauge is not None else "-"
        print(f"| {load.scenario} | {load.before:.2f} | {load.after:.2f} | {shown} |")
    print()
    print(render(bench.rows))
    tables: dict[str, list[str]] = {}
    if curves:
        hs = args.host_steps
        tables["steps"] = curve_table("steps", [x for x, _ in curves["steps"]],
                                      [p for _, p in curves["steps"]])  # fmt: skip
        tables["hosts"] = curve_table("hosts", [x for x, _ in curves["hosts"]],
                                      [p for _, p in curves["hosts"]])  # fmt: skip
        print()
        print("Steps on 1 host (whole runs; the marginal cost is per added step):")
        print("\n".join(tables["steps"]))
        print()
        print(f"Hosts at {hs} steps each (whole runs; the marginal cost is per added host):")
        print("\n".join(tables["hosts"]))
    print()
    notes = []
    if not has_pssh:
        notes.append("parallel-ssh not installed (pip install parallel-ssh): its rows are left out")
    if not bench.ansible and not args.no_peers:
        notes.append("ansible-playbook not found (--peers-venv DIR or --ansible-playbook PATH)")
    if not bench.pyinfra and not args.no_peers:
        notes.append("pyinfra not found (--peers-venv DIR or --pyinfra PATH)")
    for scenario in dict.fromkeys(r.scenario for r in bench.rows):
        rows = [r for r in bench.rows if r.scenario == scenario]
        mine = next((r for r in rows if r.tool.startswith("drp run")), None)
        peers = [
            r for r in rows
            if r.value() is not None and not r.tool.startswith(("drp", "raw", "python"))
        ]  # fmt: skip
        if mine is None or mine.value() is None or not peers:
            continue
        best = min(peers, key=lambda r: r.value() or 0.0)
        ahead = "ahead of" if (mine.value() or 0.0) < (best.value() or 0.0) else "BEHIND"
        notes.append(
            f"{scenario}: drp {mine.value():.3f} s is {ahead} the fastest peer,"
            f" {best.tool} {best.value():.3f} s"
        )
    for row in bench.rows:
        if row.sample and row.sample.error:
            notes.append(f"{row.scenario} / {row.tool} failed: {row.sample.error[-400:]}")
    for note in notes:
        print(textwrap.fill(note, 100, subsequent_indent="  "))

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "wall_s": wall,
                    "reps": args.reps,
                    "peer_reps": args.peer_reps,
                    "big_reps": min(args.reps, args.big_reps),
                    "loads": [
                        {
                            "scenario": load.scenario,
                            "loadavg_before": load.before,
                            "loadavg_after": load.after,
                            "python_pass_ms": load.gauge_ms(),
                        }
                        for load in bench.loads
                    ],
                    "rows": [
                        {
                            "scenario": r.scenario,
                            "tool": r.tool,
                            "times": r.sample.times if r.sample else [],
                            "median": r.value(),
                            "per_step_ms": r.per_step(),
                            "ratio": r.ratio(),
                            "target": r.target,
                            "verdict": r.verdict(),
                            "error": r.sample.error if r.sample else "",
                        }
                        for r in bench.rows
                    ],
                    "curves": {
                        kind: [
                            {
                                "x": x,
                                "raw_median": raw.median if raw.times else None,
                                "drp_median": drp.median if drp.times else None,
                                "raw_times": raw.times,
                                "drp_times": drp.times,
                            }
                            for x, (raw, drp) in points
                        ]
                        for kind, points in curves.items()
                    },
                    "curve_tables": tables,
                    "notes": notes,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
