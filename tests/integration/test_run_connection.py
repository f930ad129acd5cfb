"""``drp run`` when the link drops mid-step, and across a (simulated) reboot."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, alive, new_lab, read_pid, stop, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


# -- 2. dropped connection --------------------------------------------------------------


def test_dropped_connection_is_retried_after_reconnect(lab: Lab) -> None:
    process = lab.start(
        "run", str(lab.book("drop-connection")), "-i", str(lab.inventory),
        "--state-dir", str(lab.state),
    )  # fmt: skip
    pid = None
    try:
        pid = read_pid(lab.root / "slow.pid")
        assert lab.sshd.kill_sessions() >= 1
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, out + err
    finally:
        stop(process)
        if pid is not None and alive(pid):  # the orphaned first attempt
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    run_id = lab.only_run()
    attempts = [
        e for e in lab.of(run_id, "step.attempt", step="slow") if e["data"]["phase"] == "action"
    ]
    assert [a["outcome"] for a in attempts] == ["failed", "ok"]
    assert "connection" in attempts[0]["data"]["error"]
    assert attempts[1]["data"]["stdout"].strip() == "done"
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
