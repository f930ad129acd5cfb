"""Benchmark the memory of ``drp run`` for a step that prints a lot (200 MB by default).

Starts a private OpenSSH sshd on loopback (the integration tests' ``tests/sshd.py``,
user root: run as root), runs ``drp run`` on a one-step runbook whose command
prints ``--mb`` megabytes of 100-byte lines, and reports the peak resident set
size of the drp process (``ru_maxrss`` from ``wait4``), its wall time, and the
size of the journal and of the spill file. Target: under 100 MB for 200 MB of
output (docs/performance.md).

    python benchmarks/bench_memory.py [--mb 200] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sshd import start_sshd, stop_sshd

DRP = shutil.which("drp") or "drp"

BOOK = """\
name: loud
targets: all
steps:
  - id: loud
    run: yes {line} | head -c {size}
"""


def _one(directory: Path, inventory: Path, book: Path, n: int) -> tuple[float, float, int, int]:
    """One ``drp run``: peak RSS (MB), seconds, journal bytes, spill bytes."""
    state = directory / f"state-{n}"
    began = time.monotonic()
    process = subprocess.Popen(
        [DRP, "run", str(book), "-i", str(inventory), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    took = time.monotonic() - began
    if os.waitstatus_to_exitcode(status) != 0:
        err = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"drp run failed: {err}")
    process.returncode = 0
    journal = sum(p.stat().st_size for p in state.glob("runs/*/events.jsonl"))
    spilled = sum(p.stat().st_size for p in state.glob("runs/*/output/*"))
    return usage.ru_maxrss / 1024, took, journal, spilled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="megabytes the step prints")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drp-bench-memory-") as tmp:
        directory = Path(tmp)
        server, process = start_sshd(directory / "sshd")
        try:
            inventory = server.write_inventory(
                directory / "inventory.yaml",
                {"h1": "127.0.0.1"},
                {"drp_lock_dir": str(directory / "lock")},  # not the machine's own lock
            )
            book = directory / "loud.yaml"
            line = "x" * 99  # yes adds the newline: 100-byte lines
            book.write_text(BOOK.format(line=line, size=args.mb * 1000 * 1000))
            runs = [_one(directory, inventory, book, n) for n in range(args.reps)]
        finally:
            stop_sshd(process)
    rss = [r[0] for r in runs]
    print(f"drp run, one step printing {args.mb} MB ({args.reps} runs)")
    print(f"  peak RSS   median {statistics.median(rss):.1f} MB  max {max(rss):.1f} MB")
    print(f"  wall time  median {statistics.median(r[1] for r in runs):.1f} s")
    print(f"  journal    {runs[-1][2] / 1e3:.0f} kB   spill file {runs[-1][3] / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
