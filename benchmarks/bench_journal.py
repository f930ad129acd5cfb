#!/usr/bin/env python3
"""Benchmark drp's log tools and resume on long journals and many runs.

A benchmark, not a test: it prints a table and never fails on a missed target.
One invocation:

1. starts the benchmark's private sshd (``bench_run.start_sshd``: user ``drpbench``,
   ``/bin/sh``) and runs, for real, ``drp run`` of a runbook of ``--steps`` trivial
   steps followed by a manual gate: the run pauses there (exit 5), its journal
   holding 3 records per step (10,000 steps: 30,009 records, 12 MB);
2. runs a 5-step runbook once and copies that run ``--runs`` times under new run
   ids, each copy's records re-chained under its own id (so every copy verifies);
3. times round-robin, as whole processes (run from the work directory: ``python -m``
   puts the current directory first on the path), for each drp given (``--drp`` and, to
   compare two versions in one run, ``--compare SRC``: a source tree run with
   ``PYTHONPATH``): ``log show RUN``, ``log verify RUN``, ``log list`` over the
   copies (``cold``: the list cache deleted first; ``warm``: the cache that drp
   itself wrote in an unmeasured listing just before), and ``resume RUN --approve
   gate`` (on a fresh copy of the paused run each time: it finishes the run),
   with the peak RSS (``wait4``) and the records a resume appends;
4. prints the wall time and peak RSS of each long ``drp run`` itself and, with
   ``--curve 1000,3000,10000``, a long run of each size (each on a host of its own: a
   paused run keeps its host's lock) and a table of show, verify and resume against
   the journal's size, with each one's cost per record (the slope).

Usage (as root)::

    python benchmarks/bench_journal.py                        # 10,000 steps, 500 runs
    python benchmarks/bench_journal.py --compare /tmp/drp-old --reps 5
    python benchmarks/bench_journal.py --curve 1000,3000,10000 --compare /tmp/drp-old
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_run import BENCH_USER, _stop, machine, start_sshd

from drp.journal.record import GENESIS, dump_line, record_hash


@dataclass
class Tool:
    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass
class Sample:
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    error: str = ""

    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


LAST_CPU = [0.0]  # CPU seconds of the last run_timed: a loaded machine stretches wall time


def run_timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MB, exit code, output tail) of one whole process; its CPU
    seconds (user + system, its reaped children's included) in :data:`LAST_CPU`."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    tail = b""
    for chunk in iter(lambda: process.stdout.read(65536), b""):  # type: ignore[union-attr]
        tail = (tail + chunk)[-2000:]
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    process.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024, process.returncode, tail.decode(errors="replace")


def make_long_run(
    tool: Tool, work: Path, inventory: Path, steps: int, state: Path
) -> tuple[str, float, float]:
    """The run id, wall seconds and peak RSS (MB) of ``drp run`` of ``steps`` steps."""
    import yaml

    book = {
        "name": "long",
        "summary": f"{steps} trivial steps, then a gate",
        "targets": "all",
        "steps": [{"id": f"s{i:05d}", "run": "true"} for i in range(steps)]
        + [{"id": "gate", "manual": "look at it"}],
    }
    path = work / f"long-{steps}.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    print(f"running the {steps}-step run (a few minutes) ...", file=sys.stderr)
    argv = [*tool.argv, "run", str(path), "-i", str(inventory), "--state-dir", str(state)]
    argv += ["--host", f"l{steps}"]  # a host of its own: the paused run keeps its lock
    elapsed, rss, code, tail = run_timed(argv, tool.env, work)
    if code != 5:
        sys.exit(f"the long run did not pause at its gate: {tail!r}")
    return only_run(state), elapsed, rss


def only_run(state: Path) -> str:
    (run,) = [p.name for p in (state / "runs").iterdir() if p.is_dir()]
    return run


def make_many_runs(tool: Tool, work: Path, inventory: Path, count: int, state: Path) -> None:
    import yaml

    book = {
        "name": "short",
        "targets": "all",
        "steps": [{"id": f"s{i}", "run": "true"} for i in range(5)],
    }
    path = work / "short.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    seed = work / "seed-state"
    argv = [*tool.argv, "run", str(path), "-i", str(inventory), "--state-dir", str(seed)]
    argv += ["--host", "h02"]
    subprocess.run(argv, env=tool.env, cwd=work, capture_output=True, check=True)
    original = only_run(seed)
    lines = (seed / "runs" / original / "events.jsonl").read_text().splitlines()
    (state / "runs").mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state, 0o700)
    import json

    for n in range(count):
        run_id = f"{original[:15]}-short-{n:04x}"
        directory = state / "runs" / run_id
        directory.mkdir(mode=0o700)
        prev, out = GENESIS, []
        for line in lines:
            record = json.loads(line)
            record["run"], record["prev"] = run_id, prev
            record.pop("hash")
            record["hash"] = prev = record_hash(record)
            out.append(dump_line(record) + "\n")
        events = directory / "events.jsonl"
        events.write_text("".join(out))
        os.chmod(events, 0o600)


@dataclass
class Long:
    """A paused long run: its state directory, id, records, and a pristine copy."""

    state: Path
    run: str
    records: int
    seconds: float
    rss_mb: float
    paused: Path

    def fresh(self, _tool: Tool | None = None) -> None:
        shutil.rmtree(self.state)
        shutil.copytree(self.paused, self.state)

    def lines(self) -> int:
        return sum(1 for _ in (self.state / "runs" / self.run / "events.jsonl").open("rb"))


def make_long(tool: Tool, work: Path, inventory: Path, steps: int) -> Long:
    state = work / f"long-{steps}-state"
    run, seconds, rss = make_long_run(tool, work, inventory, steps, state)
    records = sum(1 for _ in (state / "runs" / run / "events.jsonl").open("rb"))
    paused = work / f"long-{steps}-paused"
    shutil.copytree(state, paused)
    return Long(state, run, records, seconds, rss, paused)


def print_curve(
    longs: dict[int, Long],
    scenarios: list[tuple[str, list[str], Callable[[Tool], None] | None]],
    samples: dict[tuple[str, str], Sample],
    tools: list[Tool],
) -> None:
    """Each command's median against the journal's size, and its cost per record (the
    slope between the smallest and the largest journal)."""
    small, big = min(longs), max(longs)
    sizes = " | ".join(f"{longs[n].records} records" for n in longs)
    print(f"\n| command | drp | {sizes} | µs per record (slope) |")
    print("|---|---|" + "---|" * len(longs) + "---|")
    for command in ("log show", "log verify", "resume"):
        for tool in tools:
            medians: dict[int, float | None] = {}
            for n, long in longs.items():
                name = next(
                    s[0]
                    for s in scenarios
                    if s[0].startswith(command)
                    and (f"({long.records} records)" in s[0] or f"after {n} " in s[0])
                )
                medians[n] = samples[(name, tool.name)].median()
            cells = " | ".join(f"{m:.3f} s" if m is not None else "error" for m in medians.values())
            low, high = medians[small], medians[big]
            slope = (
                f"{(high - low) / (longs[big].records - longs[small].records) * 1e6:.1f}"
                if low is not None and high is not None
                else ""
            )
            print(f"| {command} | {tool.name} | {cells} | {slope} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000, help="steps of the long run")
    parser.add_argument("--runs", type=int, default=500, help="runs for log list")
    parser.add_argument("--reps", type=int, default=3, help="timed rounds (after 1 warm-up)")
    parser.add_argument("--compare", type=Path, help="another drp source tree, timed alongside")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--curve",
        help="comma-separated step counts (e.g. 1000,3000,10000): a long run of each, "
        "log show/verify and resume timed on each (default: --steps only)",
    )
    args = parser.parse_args()
    sizes = [int(x) for x in args.curve.split(",")] if args.curve else [args.steps]
    # kill (SIGTERM) stops like Ctrl-C: the finally block stops the private sshd
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark starts sshd and logs in as the drpbench user")

    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    here = Path(__file__).resolve().parent.parent
    tools = [Tool("drp", [sys.executable, "-m", "drp"], {**env, "PYTHONPATH": str(here)})]
    if args.compare:
        compare_env = {**env, "PYTHONPATH": str(args.compare.resolve())}
        tools.append(Tool(f"drp at {args.compare}", [sys.executable, "-m", "drp"], compare_env))

    work = Path(tempfile.mkdtemp(prefix="drpbench-journal-"))
    os.chmod(work, 0o755)
    server = start_sshd(work / "sshd", 1)
    try:
        inventory = work / "inventory.yaml"
        hosts = ["h02", *(f"l{n}" for n in sizes)]  # a paused long run keeps its host's lock
        address, port = server.addresses[0], server.port
        inventory.write_text(
            "hosts:\n"
            + "".join(
                f"  {name}: {{address: {address}, port: {port}, user: {BENCH_USER}, "
                f"key: {server.client_key}, known_hosts: {server.known_hosts}, "
                f"vars: {{drp_lock_dir: {server.home}/drp-locks/{work.name}-{name}}}}}\n"
                for name in hosts
            )
        )
        many_state = work / "many-state"
        longs = {n: make_long(tools[0], work, inventory, n) for n in sizes}
        make_many_runs(tools[0], work, inventory, args.runs, many_state)

        def no_cache(_tool: Tool) -> None:
            (many_state / "list-cache.json").unlink(missing_ok=True)

        def own_cache(tool: Tool) -> None:  # the cache this drp keeps (if it keeps one)
            no_cache(tool)
            argv = [*tool.argv, "log", "list", "--state-dir", str(many_state)]
            subprocess.run(argv, env=tool.env, cwd=work, capture_output=True, check=True)

        many_s = ["--state-dir", str(many_state)]
        scenarios: list[tuple[str, list[str], Callable[[Tool], None] | None]] = []
        for n, long in longs.items():
            long_s = ["--state-dir", str(long.state)]
            scenarios += [
                (f"log show ({long.records} records)", ["log", "show", long.run, *long_s], None),
                (
                    f"log verify ({long.records} records)",
                    ["log", "verify", long.run, *long_s],
                    None,
                ),
                (
                    f"resume after {n} done steps",
                    ["resume", long.run, "--approve", "gate", "-i", str(inventory), *long_s],
                    long.fresh,
                ),
            ]
        scenarios += [
            (f"log list ({args.runs} runs, cold)", ["log", "list", *many_s], no_cache),
            (f"log list ({args.runs} runs, warm)", ["log", "list", *many_s], own_cache),
        ]
        samples = {(s[0], t.name): Sample() for s in scenarios for t in tools}
        appended: dict[tuple[str, str], int] = {}
        for rep in range(-1, args.reps):
            for long in longs.values():
                long.fresh()  # show and verify read the paused run, not one a resume finished
            for name, argv, before in scenarios:
                for tool in tools:
                    sample = samples[(name, tool.name)]
                    if sample.error:
                        continue
                    if before is not None:
                        before(tool)
                    elapsed, rss, code, tail = run_timed([*tool.argv, *argv], tool.env, work)
                    if code != 0:
                        sample.error = f"exit {code}: {tail[-300:]}"
                    elif rep >= 0:
                        sample.times.append(elapsed)
                        sample.cpu.append(LAST_CPU[0])
                        sample.rss_mb.append(rss)
                    if name.startswith("resume") and code == 0:
                        long = longs[int(name.split()[2])]
                        appended[(name, tool.name)] = long.lines() - long.records
        print("\n" + ", ".join(f"{k}: {v}" for k, v in machine().items()) + "\n")
        for n, long in longs.items():
            print(
                f"drp run of {n} steps ({long.records} records): {long.seconds:.1f} s, "
                f"peak RSS {long.rss_mb:.0f} MB"
            )
        print("\n| scenario | drp | median s | min s | median CPU s | peak RSS MB | |")
        print("|---|---|---|---|---|---|---|")
        for name, _argv, _before in scenarios:
            for tool in tools:
                s = samples[(name, tool.name)]
                if s.error:
                    print(f"| {name} | {tool.name} | error | | | | {s.error!r} |")
                    continue
                note = (
                    f"appended {appended.get((name, tool.name))} records"
                    if "resume" in name
                    else ""
                )
                print(
                    f"| {name} | {tool.name} | {s.median():.3f} | {min(s.times):.3f} "
                    f"| {statistics.median(s.cpu):.3f} | {max(s.rss_mb):.0f} | {note} |"
                )
        if len(longs) > 1:
            print_curve(longs, scenarios, samples, tools)
    finally:
        for process in server.processes:
            _stop(process)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        for name in ["h02", *(f"l{n}" for n in sizes)]:  # the paused runs' locks, the short runs'
            shutil.rmtree(server.home / "drp-locks" / f"{work.name}-{name}", ignore_errors=True)


if __name__ == "__main__":
    main()
