"""The installed ``drp`` as the lab tests drive it, and its journals read back."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def run_drp(*args: str, state_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``drp ARGS --state-dir STATE_DIR`` as a subprocess; its output is echoed."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run(
        ["drp", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    print(f"$ drp {' '.join(args)}  -> exit {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def runs(state_dir: Path) -> list[str]:
    """The run ids in ``state_dir``."""
    root = state_dir / "runs"
    return [p.name for p in root.iterdir() if p.is_dir()] if root.exists() else []


def events(state_dir: Path, run_id: str) -> list[dict[str, Any]]:
    """Every record of a run's journal."""
    path = state_dir / "runs" / run_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_ids(state_dir: Path, before: set[str]) -> str:
    """The one run id in ``state_dir`` that is not in ``before``."""
    new = set(runs(state_dir)) - before
    assert len(new) == 1, new
    return new.pop()


def outcomes(state_dir: Path, run_id: str) -> dict[str, str]:
    """step -> outcome of its last end record (finished or skipped)."""
    ends = ("step.finished", "step.skipped")
    return {e["step"]: e["outcome"] for e in events(state_dir, run_id) if e["type"] in ends}


def step_output(state_dir: Path, run_id: str, step: str) -> str:
    """Everything a step printed (stdout of all its attempts) as journaled."""
    return "".join(
        e["data"].get("stdout", "")
        for e in events(state_dir, run_id)
        if e["type"] == "step.attempt" and e["step"] == step
    )


def start_drp(*args: str, state_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``drp ARGS --state-dir STATE_DIR`` in the background, output to ``log``."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(
            ["drp", *args, "--state-dir", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def journal_has(state_dir: Path, step: str, kind: str = "step.finished") -> bool:
    """Whether the (only) run in ``state_dir`` journaled ``kind`` for ``step``."""
    for run_id in runs(state_dir):
        path = state_dir / "runs" / run_id / "events.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            if event.get("type") == kind and event.get("step") == step:
                return True
    return False
