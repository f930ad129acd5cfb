"""network-repair proved on the lab guest (incidents A and B: a server back without network).

The guest's primary network (eth0, ifupdown) is what drp and the test reach on the
inventory address; its management port (eth1, systemd-networkd, its own QEMU network)
is the inventory's ``fallback``. One guest for the module:

3. The primary configuration broken (wrong address): ``drp run network-repair`` goes
   through the fallback path, installs the known-good configuration, confirms; the
   test's own SSH login on the primary port works, and the configuration is still the
   known-good one after the confirm window and after the runbook's reboot.
4. A wrong "known-good" configuration: the run fails, and the host restores its previous
   configuration by itself within the window (primary SSH back); also when drp is
   killed right after the apply step.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from drp_cli import (
    RUNBOOKS,
    events,
    journal_has,
    outcomes,
    run_drp,
    run_ids,
    start_drp,
)
from drplab import Guest
from drplab.breaks import BROKEN_INTERFACES, GOOD_INTERFACES, break_network
from drplab.util import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.timeout(2400)]

RUNBOOK = RUNBOOKS / "network-repair.yaml"
CONFIRM_SECONDS = 90


def primary_ok(guest: Guest) -> bool:
    """The test's own SSH login on the primary address."""
    return guest.ssh("true", timeout=20, connect_timeout=5).returncode == 0


def live_config(guest: Guest) -> str:
    return guest.ssh("cat /etc/network/interfaces", check=True, mgmt=True).stdout


def test_repair_through_the_fallback_path(
    module_guest: Guest, module_inventory: Path, tmp_path: Path
) -> None:
    guest = module_guest
    state = tmp_path / "state"
    break_network(guest, "wrong-address")
    assert not primary_ok(guest)
    boot = guest.boot_id(mgmt=True)

    started = time.monotonic()
    result = run_drp(
        "run", str(RUNBOOK), "-i", str(module_inventory), "-H", "lab1", "--yes",
        "-p", f"confirm_within={CONFIRM_SECONDS}s", state_dir=state, timeout=1500,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_ids(state, set())
    connected = [e for e in events(state, run_id) if e["type"] == "host.connected"]
    assert connected and connected[0]["data"]["via_fallback"] is True, connected
    assert connected[0]["data"]["port"] == guest.mgmt_port

    assert primary_ok(guest)
    assert guest.boot_id() != boot  # the runbook's reboot happened
    assert live_config(guest) == GOOD_INTERFACES
    # Past the confirm window (counted from before the run): still the known-good one.
    wait_until(lambda: time.monotonic() - started > CONFIRM_SECONDS + 5, CONFIRM_SECONDS + 10)
    assert live_config(guest) == GOOD_INTERFACES
    assert primary_ok(guest)
    timers = guest.ssh("systemctl list-timers --all --no-pager", check=True).stdout
    assert f"drp-net-revert-{run_id}" not in timers


def _wrong_known_good(guest: Guest) -> str:
    path = "/etc/network/interfaces.wrong"
    guest.ssh(
        f"cat > {path}",
        input_text="auto lo\niface lo inet loopback\n\n" + BROKEN_INTERFACES["wrong-address"],
        check=True,
        mgmt=True,
    )
    return path


def test_a_wrong_known_good_config_is_reverted_by_the_host(
    module_guest: Guest, module_inventory: Path, tmp_path: Path
) -> None:
    guest = module_guest
    state = tmp_path / "state"
    if not primary_ok(guest):  # the first test did not leave it repaired
        guest.ssh("cp /etc/network/interfaces.drp-good /etc/network/interfaces", mgmt=True)
        guest.reboot()
    wrong = _wrong_known_good(guest)
    window = 150  # longer than the operator-side check's retries
    result = run_drp(
        "run", str(RUNBOOK), "-i", str(module_inventory), "-H", "lab1", "--yes",
        "-p", f"known_good={wrong}", "-p", f"confirm_within={window}s",
        "-p", "reboot_check=false", state_dir=state, timeout=900,
    )  # fmt: skip
    applied = time.monotonic()
    assert result.returncode == 1, result.stdout + result.stderr
    run_id = run_ids(state, set())
    ends = outcomes(state, run_id)
    assert ends.get("apply-with-revert") == "ok", ends
    # the host may still reach its gateway (a wrong address on the right network):
    # then the operator's side fails, or (its retries outlasting the window) succeeds
    # against the reverted configuration and the confirmation refuses
    failed = [step for step, outcome in ends.items() if outcome == "failed"]
    assert failed in (["host-reaches-network"], ["operator-reaches-host"], ["confirm"]), ends
    if failed == ["confirm"]:
        assert "refusing to confirm: the automatic revert" in result.stdout + result.stderr

    # The host puts its previous configuration back by itself.
    wait_until(lambda: primary_ok(guest), window + 60, interval=3, what="the host's own revert")
    assert time.monotonic() - applied < window + 60
    assert live_config(guest) == GOOD_INTERFACES


def test_the_revert_survives_a_killed_drp(
    module_guest: Guest, module_inventory: Path, tmp_path: Path
) -> None:
    guest = module_guest
    state = tmp_path / "state"
    wrong = _wrong_known_good(guest)
    window = 60
    proc = start_drp(
        "run", str(RUNBOOK), "-i", str(module_inventory), "-H", "lab1", "--yes",
        "-p", f"known_good={wrong}", "-p", f"confirm_within={window}s",
        "-p", "reboot_check=false", state_dir=state, log=tmp_path / "drp.log",
    )  # fmt: skip
    try:
        wait_until(
            lambda: journal_has(state, "apply-with-revert") or proc.poll() is not None,
            600,
            interval=0.2,
            what="the apply step to finish",
        )
        assert proc.poll() is None, (tmp_path / "drp.log").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    killed = time.monotonic()
    # The wrong configuration goes live, then the host reverts it.
    wait_until(lambda: not primary_ok(guest), 60, interval=1, what="the wrong config to apply")
    assert "10.0.2.99" in live_config(guest)
    wait_until(lambda: primary_ok(guest), window + 60, interval=3, what="the host's own revert")
    assert time.monotonic() - killed < window + 60
    assert live_config(guest) == GOOD_INTERFACES
