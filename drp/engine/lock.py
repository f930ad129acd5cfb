"""The lock on a target host: two runs must not change one host at once.

An atomic rename of a directory on the host (``/var/lib/drp/lock`` unless the host var
``drp_lock_dir`` says otherwise) holding who took it. The same run may take it
again (resume); anyone else is refused with the holder's name. It survives
reboots on purpose: a run paused for a disk swap still owns the host.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from drp.errors import LockedError
from drp.inventory.model import Become, Host
from drp.results import CommandResult

DEFAULT_LOCK_DIR = "/var/lib/drp/lock"
Runner = Callable[[str], CommandResult]


@dataclass(frozen=True)
class Holder:
    run_id: str
    operator: str
    since: str

    def describe(self) -> str:
        return f"run {self.run_id} by {self.operator} since {self.since}"


def lock_become(host: Host, runbook_becomes: bool = False) -> Become | None:
    """Who handles the lock on ``host``: root through sudo when the host (or the runbook)
    uses ``become`` (the lock lives in a directory of root's), else the login itself."""
    if host.become is None and not runbook_becomes:
        return None
    return Become(user="root", password_env=host.become.password_env if host.become else None)


def _acquire_script(lock_dir: str, info: str) -> str:
    """Atomic: the lock appears with its holder file already inside (rename of a full dir).

    Two programs run on the host (``mkdir``, ``mv``); the rest is shell built-ins.
    """
    tmp = posixpath.join(posixpath.dirname(lock_dir), f".lock.{uuid.uuid4().hex[:12]}")
    q_dir, q_tmp, q_info = shlex.quote(lock_dir), shlex.quote(tmp), shlex.quote(info)
    return (
        f"mkdir -p {q_tmp} && printf '%s\\n' {q_info} > {q_tmp}/holder && "
        f"if mv -T {q_tmp} {q_dir} 2>/dev/null; then echo ACQUIRED; "
        f"else rm -rf {q_tmp}; echo HELD; cat {q_dir}/holder 2>/dev/null; fi"
    )


def parse_holder(text: str) -> Holder | None:
    try:
        data = json.loads(text.strip().splitlines()[-1])
        return Holder(str(data["run"]), str(data["operator"]), str(data["since"]))
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def acquire(run: Runner, host: str, lock_dir: str, holder: Holder) -> None:
    """Take the lock (or keep it, when this run holds it); LockedError names any other holder."""
    info = json.dumps({"run": holder.run_id, "operator": holder.operator, "since": holder.since})
    result = run(_acquire_script(lock_dir, info))
    lines = result.stdout.strip().splitlines()
    if result.exit_code != 0 or not lines:
        raise LockedError(
            f"{host}: cannot take the lock {lock_dir}: "
            f"{result.stderr.strip() or 'exit ' + str(result.exit_code)}"
        )
    if lines[0] == "ACQUIRED":
        return
    current = parse_holder("\n".join(lines[1:])) if len(lines) > 1 else None
    if current is not None and current.run_id == holder.run_id:
        return
    who = current.describe() if current else "an unknown holder (no holder file)"
    raise LockedError(
        f"{host} is locked by {who}. If that run is finished or dead, "
        f"run: drp unlock {host} --force"
    )


RELEASED = "RELEASED"


def release_script(lock_dir: str, run_id: str) -> str:
    """Shell that releases the lock if this run holds it and then prints :data:`RELEASED`.

    The holder check is built-in: one program (``rm``) runs on the host.
    """
    q_dir = shlex.quote(lock_dir)
    mine = shlex.quote(json.dumps({"run": run_id})[1:-1])  # '"run": "ID"' as acquire wrote it
    return (
        f"holder=; IFS= read -r holder 2>/dev/null < {q_dir}/holder; "
        f'case "$holder" in *{mine}*) rm -rf {q_dir} && echo {RELEASED};; esac'
    )


def released(stdout: str) -> bool:
    """Whether :func:`release_script` said it released the lock."""
    return RELEASED in stdout.splitlines()


def release(run: Runner, lock_dir: str, run_id: str) -> bool:
    """Release the lock if this run holds it (one command); True when released."""
    return released(run(release_script(lock_dir, run_id)).stdout)


def force_release(run: Runner, host: str, lock_dir: str) -> Holder | None:
    """Remove the lock whoever holds it; returns the previous holder.

    LockedError when the lock is still there afterwards (e.g. no permission).
    """
    q_dir = shlex.quote(lock_dir)
    result = run(
        f"cat {q_dir}/holder 2>/dev/null; rm -rf {q_dir}; "
        f"if [ -e {q_dir} ]; then echo 'drp: the lock is still there' >&2; exit 1; fi"
    )
    if result.exit_code != 0:
        raise LockedError(
            f"{host}: could not remove the lock {lock_dir}: "
            f"{result.stderr.strip() or 'exit ' + str(result.exit_code)}"
        )
    return parse_holder(result.stdout) if result.stdout.strip() else None
