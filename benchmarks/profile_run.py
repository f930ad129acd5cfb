#!/usr/bin/env python3
"""Profile one ``drp`` command in-process, worker threads included.

cProfile only sees the thread that enabled it, and ``drp run`` does its work
in ``drp-host`` worker threads; this wraps ``threading.Thread.run`` so every
thread gets its own profiler, then merges them with the main thread's.

Usage (against a server started by ``bench_run.py --serve``, or any inventory)::

    python benchmarks/profile_run.py -o /tmp/run.prof -- run RUNBOOK -i INV --state-dir D -H h01
    python -m pstats /tmp/run.prof        # or: snakeviz, gprof2dot ...

It prints the top functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("drp-run.prof"))
    parser.add_argument("-n", "--top", type=int, default=35)
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="drp arguments (after --)")
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]

    main_profile = cProfile.Profile()
    start = time.perf_counter()
    main_profile.enable()
    code: object = 0
    try:
        from drp.cli.app import main as drp_main

        drp_main(argv)
    except SystemExit as done:
        code = done.code
    finally:
        main_profile.disable()
    wall = time.perf_counter() - start
    threading.Thread.run = original_run  # type: ignore[method-assign]

    stats = pstats.Stats(main_profile, stream=sys.stderr)
    for profile in profiles:
        stats.add(profile)
    stats.dump_stats(args.output)
    print(f"\nwall {wall:.3f} s, exit {code}, {len(profiles)} threads profiled", file=sys.stderr)
    print(
        "note: the main thread mostly waits on the workers; own time is the useful view",
        file=sys.stderr,
    )
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
