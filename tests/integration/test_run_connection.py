"""``drp run`` when the link drops mid-step, and across a (simulated) reboot."""

from __future__ import annotations

from pathlib import Path

import pytest
from sshd import SshServer

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


def test_reboot_step_waits_for_a_new_boot_id_then_continues(lab: Lab) -> None:
    boot_id = lab.root / "boot_id"
    boot_id.write_text("boot-1\n")
    # "reboot": a new boot id, then every SSH session of this sshd dies (children of
    # the listener), as when a machine goes down; the listener itself stays up.
    reboot = f"echo boot-2 > {boot_id}; for p in $(pgrep -P {lab.sshd.pid}); do kill -9 $p; done"
    lab.write_inventory(
        {
            "h1": {
                "address": "127.0.0.1",
                "reboot_command": reboot,
                "boot_id_command": f"cat {boot_id}",
            }
        }
    )
    logins = lab.sshd.accepted_logins()
    result = lab.run(lab.book("reboot"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert boot_id.read_text().strip() == "boot-2"
    assert (lab.root / "order").read_text().split() == ["before", "after"]
    run_id = lab.only_run()
    finished = lab.of(run_id, "step.finished", step="restart")[-1]
    assert finished["outcome"] == "ok"
    assert "boot id" in finished["message"]
    assert wait_until(lambda: lab.sshd.accepted_logins() >= logins + 2, 5)  # reconnected
