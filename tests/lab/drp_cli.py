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
