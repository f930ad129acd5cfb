"""kernel-rollback proved on the lab guest (incident A, step 4: an interrupted kernel update).

One guest for both tests (the second reuses the first's repaired kernel):

1. The newer kernel's upgrade is interrupted at ``dpkg --unpack`` (half-installed, no
   initramfs). ``drp run kernel-rollback`` repairs it, boots once into the good kernel,
   makes it the default and holds the bad package; a power cycle boots the good one.
2. A run stopped (drp killed) right after its reboot step, then a power cycle: the
   machine boots the *default* entry. grub-reboot alone is not one-shot on md RAID
   (GRUB cannot clear next_entry there), so without the runbook's one-shot unit the
   machine would boot the once-entry for ever.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from drp_cli import (
    RUNBOOKS,
    journal_has,
    outcomes,
    run_drp,
    run_ids,
    runs,
    start_drp,
    step_output,
)
from drplab import Guest
from drplab.breaks import interrupt_kernel_upgrade
from drplab.build import GOOD_KERNEL, NEW_KERNEL
from drplab.util import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.timeout(2400)]

RUNBOOK = RUNBOOKS / "kernel-rollback.yaml"
BAD_PACKAGE = f"linux-image-{NEW_KERNEL}"


def grubenv(guest: Guest) -> dict[str, str]:
    out = guest.ssh("grub-editenv /boot/grub/grubenv list", check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def uname(guest: Guest) -> str:
    return guest.ssh("uname -r", check=True).stdout.strip()


def test_rollback_repairs_the_upgrade_and_the_good_kernel_stays(
    module_guest: Guest, module_inventory: Path, tmp_path: Path
) -> None:
    guest = module_guest
    state = tmp_path / "state"
    assert uname(guest) == GOOD_KERNEL
    interrupt_kernel_upgrade(guest)
    assert guest.ssh("dpkg --audit", check=True).stdout.strip()

    result = run_drp(
        "run", str(RUNBOOK), "-i", str(module_inventory), "-H", "lab1", "--yes",
        state_dir=state, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_ids(state, set())
    ends = outcomes(state, run_id)
    assert ends["repair-packages"] == "ok", ends
    assert "dpkg --configure -a" in step_output(state, run_id, "repair-packages")
    chosen = step_output(state, run_id, "choose-kernel")
    assert f"good={GOOD_KERNEL}" in chosen and f"bad={NEW_KERNEL}" in chosen, chosen

    # The test's own checks, on the machine.
    assert uname(guest) == GOOD_KERNEL
    assert guest.ssh("dpkg --audit", check=True).stdout.strip() == ""
    assert guest.ssh(f"test -s /boot/initrd.img-{NEW_KERNEL}").returncode == 0
    assert BAD_PACKAGE in guest.ssh("apt-mark showhold", check=True).stdout.split()
    env = grubenv(guest)
    assert "next_entry" not in env, env
    assert f"gnulinux-{GOOD_KERNEL}-advanced-" in env.get("saved_entry", ""), env

    guest.power_cycle(timeout=900)
    assert uname(guest) == GOOD_KERNEL
    assert "next_entry" not in grubenv(guest)


def _make_bad_kernel_the_default(guest: Guest) -> None:
    """Undo the first test's choice (or repair the upgrade if it did not run)."""
    installed = guest.ssh(f"dpkg-query -W -f '${{Status}}' {BAD_PACKAGE}").stdout
    if not installed.endswith(" ok installed"):  # "hold ok installed" once held
        interrupt_kernel_upgrade(guest)
        guest.ssh("dpkg --configure -a", check=True, timeout=1800)
    guest.ssh(
        "set -e; rm -f /etc/default/grub.d/drp-kernel-rollback.cfg; "
        f"apt-mark unhold {BAD_PACKAGE}; "
        "grub-editenv /boot/grub/grubenv unset saved_entry next_entry; update-grub 2>&1",
        check=True,
        timeout=900,
    )
    # GRUB_DEFAULT=0: the first entry boots the newest kernel
    first = guest.ssh("grep -m1 -E '^\\s+linux\\s' /boot/grub/grub.cfg", check=True).stdout
    assert NEW_KERNEL in first, first


def test_a_run_stopped_after_its_reboot_leaves_the_default_entry(
    module_guest: Guest, module_inventory: Path, tmp_path: Path
) -> None:
    guest = module_guest
    state = tmp_path / "state"
    _make_bad_kernel_the_default(guest)

    proc = start_drp(
        "run", str(RUNBOOK), "-i", str(module_inventory), "-H", "lab1", "--yes",
        "-p", f"good_kernel={GOOD_KERNEL}", state_dir=state, log=tmp_path / "drp.log",
    )  # fmt: skip
    try:
        wait_until(
            lambda: journal_has(state, "reboot") or proc.poll() is not None,
            1500,
            interval=0.2,
            what="kernel-rollback's reboot step to finish",
        )
        assert proc.poll() is None, (tmp_path / "drp.log").read_text()
        proc.send_signal(signal.SIGKILL)  # the operator's laptop dies
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    print((tmp_path / "drp.log").read_text())
    (run_id,) = runs(state)
    assert "make-default" not in outcomes(state, run_id)
    assert uname(guest) == GOOD_KERNEL  # the once-entry was booted

    guest.power_cycle(timeout=900)
    # The default entry (the newest kernel), not a sticky once-entry.
    assert uname(guest) == NEW_KERNEL
    assert "next_entry" not in grubenv(guest)
    # The killed run's host lock stays, as it should: the operator removes it.
    unlocked = run_drp(
        "unlock", "lab1", "-i", str(module_inventory), "--force", state_dir=state, timeout=300
    )
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr


def test_rollback_refuses_a_kernel_that_is_not_installed(
    module_guest: Guest, module_inventory: Path, tmp_path: Path
) -> None:
    result = run_drp(
        "run", str(RUNBOOK), "-i", str(module_inventory), "-H", "lab1", "--yes",
        "-p", "good_kernel=5.10.0-99-amd64", state_dir=tmp_path / "state", timeout=900,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "refusing: kernel 5.10.0-99-amd64 is not installed" in out, out
    assert "boot-once" not in outcomes(tmp_path / "state", runs(tmp_path / "state")[0])
