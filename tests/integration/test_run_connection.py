"""``drp run`` when the link drops mid-step, and across a (simulated) reboot."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

import pytest
from sshd import SshServer, process_gone, refused, restart_sshd, stop_sshd

from integration.support import Lab, alive, new_lab, read_pid, stop, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


# -- 2. dropped connection --------------------------------------------------------------

# The first attempt records its process group (the step's shell) and a child, then
# sleeps until the test cuts the link; every attempt says if that one still runs.
# Before it records anything it pushes more than a pipe holds through stderr: once
# that write returns, sshd has read (and passed on) the PID line drp's wrapper
# printed first, so drp knows which group to kill when the test cuts the link.
DROP = """
name: drop-connection
targets: all
steps:
  - id: slow
    run: |
      echo x >> {{ vars.dir }}/slow-attempts
      n=$(wc -l < {{ vars.dir }}/slow-attempts)
      if [ "$n" -eq 1 ]; then
        head -c 70000 /dev/zero >&2
        echo $$ > {{ vars.dir }}/slow.pid
        sleep 30 & echo $! > {{ vars.dir }}/sleep.pid
        wait
      fi
      for p in $(cat {{ vars.dir }}/slow.pid {{ vars.dir }}/sleep.pid); do
        s=$(ps -o stat= -p "$p"); case "$s" in ""|Z*) ;; *) echo "first attempt runs: $p";; esac
      done
      echo done
    retry: {attempts: 3, delay: 0.2, jitter: false, failures: [connection]}
"""


def test_dropped_connection_kills_the_first_attempt_then_retries(lab: Lab) -> None:
    process = lab.start(
        "run", str(lab.runbook(DROP)), "-i", str(lab.inventory), "--state-dir", str(lab.state),
    )  # fmt: skip
    try:
        group, child = read_pid(lab.root / "slow.pid"), read_pid(lab.root / "sleep.pid")
        assert lab.sshd.kill_sessions() >= 1
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, out + err
    finally:
        stop(process)
    # nobody here kills the first attempt: drp did, before the retry (it would sleep 30 s)
    assert not alive(group) and not alive(child)
    run_id = lab.only_run()
    attempts = [
        e for e in lab.of(run_id, "step.attempt", step="slow") if e["data"]["phase"] == "action"
    ]
    assert [a["outcome"] for a in attempts] == ["failed", "ok"]
    first, second = attempts[0]["data"], attempts[1]["data"]
    assert "connection" in first["error"]
    assert f"process group {group} may still run: drp kills it when it reconnects" in first["error"]
    assert second["stdout"].strip() == "done"  # not "first attempt runs: ..."
    assert second["stderr"].startswith(
        f"drp: killed process group {group} on h1, left running by a lost connection: "
    ), second["stderr"]
    assert lab.outcome(run_id) == "ok"
    assert (lab.root / "slow-attempts").read_text().count("x") == 2


# -- 7. reboot --------------------------------------------------------------------------


class _Events:
    """drp's ``--format json`` lines as they arrive (read by a thread), for polling."""

    def __init__(self, stream: IO[str]) -> None:
        self._items: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                with self._lock:
                    self._items.append(event)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)

    def waiting(self, since: int = 0) -> list[dict[str, Any]]:
        """The reboot step's "waiting for the host to come back" events from index ``since``."""
        return [
            e
            for e in self.all()[since:]
            if e["type"] == "step.progress" and "waiting for the host" in e.get("message", "")
        ]


class _Outage(threading.Thread):
    """The host side of a reboot: down until drp has been refused ``refusals`` times, then up.

    The inventory's reboot command kills the sshd listener and every session.
    This watcher polls until that happened and the port refuses connections,
    keeps it down while drp's reboot step reports it is still waiting (each
    "waiting" event follows a connection attempt that failed, so
    ``refusals + 1`` of them after the listener died mean at least
    ``refusals`` refused attempts), then writes a new boot id and starts sshd
    again on the same port with the same host key.
    """

    def __init__(self, sshd: SshServer, boot_id: Path, events: _Events, refusals: int) -> None:
        super().__init__(daemon=True)
        self.sshd, self.boot_id, self.events, self.refusals = sshd, boot_id, events, refusals
        self.saw_refused = False
        self.waited = 0  # "waiting" events seen while the host was down
        self.restarted: tuple[SshServer, subprocess.Popen[bytes]] | None = None
        self.up_at_event = -1  # how many events drp had printed when the host came back
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            assert wait_until(lambda: process_gone(self.sshd.pid), 30), "the reboot never ran"
            down_at = len(self.events.all())
            self.saw_refused = wait_until(lambda: refused("127.0.0.1", self.sshd.port), 10)
            assert wait_until(lambda: len(self.events.waiting(down_at)) >= self.refusals + 2, 60), (
                "drp stopped trying"
            )
            self.waited = len(self.events.waiting(down_at))
            self.boot_id.write_text("boot-2\n")
            self.up_at_event = len(self.events.all())
            self.restarted = restart_sshd(self.sshd)
        except BaseException as exc:
            self.error = exc


def test_reboot_waits_while_the_host_is_down_then_continues(
    tmp_path: Path, sshd_fresh: SshServer
) -> None:
    sshd = sshd_fresh
    lab = new_lab(tmp_path, sshd)
    boot_id = lab.root / "boot_id"
    boot_id.write_text("boot-1\n")
    # "reboot": the listener and every session die, so nothing answers on the port;
    # the watcher brings sshd back (same port and host key) with a new boot id.
    # Every session means every sshd process under the listener: killing its children
    # alone left each connection's post-auth process (a grandchild) alive, and drp,
    # reconnected before the kill, went on over a session that had lived through the
    # "reboot" (CI, under load). Only sshd's own: a login shell killed half-way can
    # leave this machine's shell start-up files a stale lock (pyenv's) behind.
    reboot = (
        f"ps -e -o pid= -o ppid= -o comm= | awk -v root={sshd.pid} "
        "'{parent[$1] = $2; name[$1] = $3} END { for (p in parent) { q = p;"
        " while (q != root && q in parent && q > 1) q = parent[q];"
        ' if (q == root && name[p] == "sshd") print p } }\' | xargs kill -9'
    )
    lab.write_inventory(
        {
            "h1": {
                "address": "127.0.0.1",
                "reboot_command": reboot,
                "boot_id_command": f"cat {boot_id}",
            }
        }
    )
    book = lab.book("reboot")
    args = ["run", str(book), "-i", str(lab.inventory), "--state-dir", str(lab.state)]
    with (lab.root / "stderr").open("w") as errors:
        process = subprocess.Popen(
            lab.args(*args, "--format", "json"),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=lab.env(),
            stdin=subprocess.DEVNULL,
            cwd=lab.root,
            start_new_session=True,
        )
    assert process.stdout is not None
    events = _Events(process.stdout)
    outage = _Outage(sshd, boot_id, events, refusals=3)
    outage.start()
    try:
        returncode = process.wait(90)
        outage.join(30)
    finally:
        stop(process)
        if outage.restarted is not None:
            stop_sshd(outage.restarted[1])
    assert outage.error is None, outage.error
    assert returncode == 0, (lab.root / "stderr").read_text()
    assert outage.saw_refused  # the host really was unreachable
    assert outage.waited >= 5  # drp kept trying while it was: at least 3 attempts refused
    # the boot id changed, and drp says how long the host was away
    finished = lab.of(lab.only_run(), "step.finished", step="restart")[-1]
    assert finished["outcome"] == "ok"
    match = re.search(r"boot id boot-1→boot-2, back after (\d+)s", finished["message"])
    assert match, finished["message"]
    assert int(match.group(1)) >= 3
    # the next step ran on the host that came back, through the restarted sshd
    assert (lab.root / "order").read_text().split() == ["before", "after"]
    later = events.all()[outage.up_at_event :]
    assert any(e["type"] == "step.started" and e.get("step") == "after" for e in later)
    assert outage.restarted is not None
    assert wait_until(lambda: _logins_since_restart(sshd.log) >= 1, 30)  # sshd logs late under load


def _logins_since_restart(log: Path) -> int:
    """Logins sshd accepted after the last time it started listening."""
    text = log.read_text(errors="replace")
    return text.rsplit("Server listening on", 1)[-1].count("Accepted publickey")
