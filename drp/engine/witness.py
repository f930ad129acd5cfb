"""The witness a session leaves on a host: the journal's chain head, written through the transport.

At the end of its part of a session, a host gets one line appended to
``/var/lib/drp/witness/<run id>`` (next to the host lock: the directory of
``drp_lock_dir``, as root through sudo when the host uses ``become``)::

    {"run": "<id>", "seq": 41, "hash": "<sha256 of record 41>", "ts": "…Z"}

The journal's owner cannot quietly rewrite it alone: a journal cut below that
head, or rewritten, no longer holds record 41 with that hash. The write is
journaled (``witness.written``); a failure says so and never stops the run.
:func:`read_witness` reads the lines back for ``drp log verify --hosts``.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import time
from collections.abc import Callable

from drp.engine.events import EventType
from drp.engine.hostview import HostView
from drp.engine.lock import DEFAULT_LOCK_DIR, lock_become
from drp.errors import DrpError
from drp.inventory import Host
from drp.results import CommandResult


def witness_path(host: Host, run_id: str) -> str:
    """Where ``host`` keeps the witness of ``run_id``."""
    lock_dir = str(host.vars.get("drp_lock_dir", DEFAULT_LOCK_DIR))
    return posixpath.join(posixpath.dirname(lock_dir.rstrip("/")), "witness", run_id)


WITNESSED = "drp-witness:ok"


def leave_witness(hr: HostView, then: str = "") -> str | None:
    """Append the current chain head to the host's witness file, and journal it.

    ``then``: shell run after the witness in the same command, as the same user (the
    host lock's release, which saves a round trip at the end of every host's session).
    Returns the command's output, or ``None`` when it could not run (nor ``then``).
    """
    head = hr.shared.options.chain_head
    if head is None:
        return None
    seq, digest = head()
    run_id = hr.shared.options.run_id
    path = witness_path(hr.host, run_id)
    line = json.dumps(
        {"run": run_id, "seq": seq, "hash": digest, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )
    q_path, q_dir = shlex.quote(path), shlex.quote(posixpath.dirname(path))
    command = (
        f"if {{ [ -d {q_dir} ] || mkdir -p {q_dir}; }} && "  # mkdir once per host, not per run
        f"printf '%s\\n' {shlex.quote(line)} >> {q_path}; then echo {WITNESSED}; fi"
    ) + (f"\n{then}" if then else "")
    data = {"path": path, "seq": seq, "hash": digest}
    root = lock_become(hr.host, hr.shared.plan.runbook.defaults.become)  # as the lock
    try:
        result = hr.exec(command, ps=None, phase="witness", record=False, become=root, last=True)
    except DrpError as exc:  # the witness never stops the run: the journal says it failed
        hr.emit(EventType.WITNESS_WRITTEN, outcome="failed", message=str(exc), data=data)
        return None
    ok = WITNESSED in result.stdout.splitlines()
    said = "" if ok else (result.stderr.strip() or f"exit {result.exit_code}")
    hr.emit(EventType.WITNESS_WRITTEN, outcome="ok" if ok else "failed", message=said, data=data)
    return result.stdout


def read_witness(run: Callable[[str], CommandResult], path: str) -> list[tuple[int, str]]:
    """The (seq, hash) heads in a host's witness file (empty when there is none)."""
    result = run(f"cat {shlex.quote(path)} 2>/dev/null || true")
    heads: list[tuple[int, str]] = []
    for line in result.stdout.splitlines():
        try:
            item = json.loads(line)
            heads.append((int(item["seq"]), str(item["hash"])))
        except (ValueError, KeyError, TypeError):
            continue
    return heads
