"""Helpers shared by the ``drp run`` / ``drp resume`` integration tests (no tests here).

Each test gets a :class:`Lab`: a working directory with an inventory pointing at
the session sshd (host lock in the test's own directory), a state dir, and
helpers to write runbooks, run the installed ``drp`` CLI and read the journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sshd import SshServer, process_gone

DRP = shutil.which("drp") or "drp"
RUNBOOKS = Path(__file__).parent / "runbooks"
RUN_TIMEOUT = 60.0
HOSTS = {"h1": "127.0.0.1"}


def wait_until(predicate: Callable[[], object], seconds: float = 15.0) -> bool:
    """Poll ``predicate`` until it is truthy or the deadline passes (no fixed sleeps)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def read_pid(path: Path, seconds: float = 15.0) -> int:
    assert wait_until(lambda: path.exists() and path.read_text().strip().isdigit(), seconds), (
        f"no pid in {path}"
    )
    return int(path.read_text().strip())


def alive(pid: int) -> bool:
    return not process_gone(pid)


@dataclass
class Lab:
    """One test's world: directory, inventory, state dir, and the drp CLI."""

    root: Path
    sshd: SshServer
    inventory: Path
    state: Path

    # -- files ---------------------------------------------------------------------
    @staticmethod
    def book(name: str) -> Path:
        """A runbook fixture from ``tests/integration/runbooks``."""
        return RUNBOOKS / f"{name}.yaml"

    def runbook(self, text: str, name: str = "book.yaml") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def write_inventory(self, hosts: dict[str, Any], **extra: Any) -> Path:
        """Inventory where each host is an address string or a dict of extra settings."""
        import yaml

        entry = {
            "port": self.sshd.port,
            "user": "root",
            "key": str(self.sshd.client_key),
            "known_hosts": str(self.sshd.known_hosts),
        }
        document: dict[str, Any] = {"vars": {"dir": str(self.root)}}
        document["hosts"] = {}
        for name, spec in hosts.items():
            host = {"address": spec, **entry} if isinstance(spec, str) else {**entry, **spec}
            # every loopback "host" is this machine: give each its own lock directory
            host["vars"] = {"drp_lock_dir": str(self.root / f"lock-{name}"), **host.get("vars", {})}
            document["hosts"][name] = host
        document.update(extra)
        self.inventory.write_text(yaml.safe_dump(document, sort_keys=False))
        return self.inventory

    # -- the CLI -------------------------------------------------------------------
    def args(self, *args: str) -> list[str]:
        return [DRP, *args]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CI", None)
        env["DRP_STATE_DIR"] = str(self.state)
        env["DRP_INVENTORY"] = str(self.inventory)
        env["COLUMNS"] = "200"
        env["NO_COLOR"] = "1"
        return env

    def drp(
        self, *args: str, timeout: float = RUN_TIMEOUT, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the installed ``drp`` (stdin not a terminal: non-interactive); ``env``
        overrides the lab's environment (HOME for ~/.ssh, SSH_AUTH_SOCK)."""
        return run_drp(self.root, *args, timeout=timeout, env={**self.env(), **(env or {})})

    def run(
        self, book: Path, *args: str, timeout: float = RUN_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return self.drp(
            "run",
            str(book),
            "-i",
            str(self.inventory),
            "--state-dir",
            str(self.state),
            *args,
            timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``drp ARGS`` in the background (its own process group)."""
        return subprocess.Popen(
            self.args(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            start_new_session=True,
        )

    # -- the journal ---------------------------------------------------------------
    def run_ids(self) -> list[str]:
        runs = self.state / "runs"
        return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []

    def only_run(self) -> str:
        ids = [r for r in self.run_ids() if "unlock" not in r]
        assert len(ids) == 1, ids
        return ids[0]

    def journal_file(self, run_id: str) -> Path:
        return self.state / "runs" / run_id / "events.jsonl"

    def events(self, run_id: str) -> list[dict[str, Any]]:
        lines = self.journal_file(run_id).read_text().splitlines()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def of(self, run_id: str, type_: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events(run_id)
            if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())
        ]

    def outcome(self, run_id: str) -> str | None:
        finished = self.of(run_id, "run.finished")
        return finished[-1]["outcome"] if finished else None


def kill_recorded(pid_file: Path) -> None:
    """Kill the process whose PID a test's remote command left in ``pid_file`` (cleanup)."""
    if pid_file.exists() and pid_file.read_text().strip().isdigit():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def stop(process: subprocess.Popen[str]) -> None:
    """Kill a background drp (test cleanup) and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def new_lab(tmp_path: Path, sshd: SshServer, hosts: dict[str, Any] | None = None) -> Lab:
    """A Lab in ``tmp_path`` (each test module declares its own ``lab`` fixture with it)."""
    lab = Lab(tmp_path, sshd, tmp_path / "inventory.yaml", tmp_path / "state")
    lab.write_inventory(hosts or HOSTS)
    return lab


def run_drp(
    cwd: Path, *args: str, timeout: float = RUN_TIMEOUT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed ``drp`` in ``cwd``, non-interactive; ``env`` defaults to a plain one
    (wide, no colour, journals in ``cwd``)."""
    plain = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "DRP_STATE_DIR": str(cwd)}
    return subprocess.run(
        [DRP, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=plain if env is None else env,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def combined(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr
