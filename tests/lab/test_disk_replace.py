"""disk-replace proved on the lab guest (incident A: a RAID-1 boot disk dies).

One guest, the whole night: a data file is written, disk1 is pulled and md marks
it faulty at the next write; ``drp run disk-replace`` stops at the manual gate
showing which disk to keep; the datacenter first slots in a used disk (refused
without ``force``), then a blank, larger one; ``drp resume`` rebuilds the mirror and
installs GRUB on it. Finally the *original* disk0 is pulled and the machine
power-cycled: it must boot through GRUB from the new disk alone with the data intact.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from drp_cli import RUNBOOKS, events, run_drp, runs
from drplab import Guest
from drplab.probes import grub_core_embedded
from drplab.util import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

RUNBOOK = RUNBOOKS / "disk-replace.yaml"
DRP_TIMEOUT = 900


def drp(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_drp(*args, state_dir=state_dir, timeout=DRP_TIMEOUT)


def only_run(state_dir: Path) -> str:
    found = runs(state_dir)
    assert len(found) == 1, found
    return found[0]


def md0_status(guest: Guest) -> str:
    """The md0 lines of /proc/mdstat."""
    text = guest.ssh("cat /proc/mdstat", check=True).stdout
    match = re.search(r"^md0 :.*\n.*\n", text, re.MULTILINE)
    assert match, text
    return match.group(0)


def sha256(guest: Guest, path: str) -> str:
    return guest.ssh(f"sha256sum {path}", check=True).stdout.split()[0]


def wait_block(guest: Guest, path: str) -> str:
    """Wait until ``path`` is a block device in the guest; return its kernel name."""
    wait_until(
        lambda: guest.ssh(f"test -b {path}").returncode == 0, 60, what=f"{path} in the guest"
    )
    return guest.ssh(f"readlink -f {path}", check=True).stdout.strip()


def test_disk_replace_then_boot_from_the_new_disk_alone(
    lab_guest: Guest, lab_inventory: Path, tmp_path: Path
) -> None:
    guest = lab_guest
    state = tmp_path / "state"
    inv = str(lab_inventory)
    survivor_serial = guest.image.disk_serials[0]

    guest.ssh("head -c 16M /dev/urandom > /root/precious && sync", check=True)
    checksum = sha256(guest, "/root/precious")

    # The disk dies: gone from the bus; md notices at the next write.
    guest.pull_disk("disk1")
    guest.ssh("echo written-while-degraded > /root/after-pull && sync", check=True)
    wait_until(lambda: "[U_]" in md0_status(guest), 60, what="md0 to lose disk1")

    paused = drp(
        "run", str(RUNBOOK), "-i", inv, "-H", "lab1", "--yes", "-p", "failed=/dev/vdb",
        state_dir=state,
    )  # fmt: skip
    assert paused.returncode == 5, paused.stdout + paused.stderr
    run_id = only_run(state)
    # The operator is told which disk to keep, by serial, at the gate and in the journal.
    keep = [line for line in paused.stdout.splitlines() if "KEEP:" in line]
    assert keep and survivor_serial in keep[0], paused.stdout
    journal = (state / "runs" / run_id / "events.jsonl").read_text()
    assert f"survivor_serial={survivor_serial}" in journal
    assert "datacenter-swap" in journal
    assert "[U_]" in md0_status(guest)
    # Without the parameter the failed disk is found too: its member left /proc/mdstat
    # with the disk, the kernel log still names it.
    found = guest.ssh("/var/lib/drp/md-inspect.sh", check=True).stdout
    assert "failed=/dev/vdb" in found and "arrays=md0" in found, found
    assert "survivor=/dev/vda" in found, found

    # The datacenter first slots in a used disk: refused, nothing written to it.
    used = guest.insert_blank_disk("disk2", size="2G", serial="DRPLAB-USED")
    used_dev = wait_block(guest, used.by_id)
    guest.ssh(
        f"sgdisk -n1:0:+64M -t1:8300 {used_dev} >/dev/null && udevadm settle && "
        f"mkfs.ext4 -q {used_dev}1",
        check=True,
    )
    refused = drp(
        "resume", run_id, "-i", inv, "--approve", "datacenter-swap", "--yes", state_dir=state
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refusing" in refused.stdout + refused.stderr
    assert "force=true" in refused.stdout + refused.stderr
    assert guest.ssh(f"sgdisk -p {used_dev} | grep -c 8300").stdout.strip() == "1"
    guest.pull_disk("disk2")

    # The right disk: blank and larger than the survivor; it may take any name.
    new = guest.insert_blank_disk("disk3", size="2304M", serial="DRPLAB-NEW0")
    new_dev = wait_block(guest, new.by_id)
    done = drp("resume", run_id, "-i", inv, "--yes", state_dir=state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Wait for the resync" in done.stdout
    journaled = events(state, run_id)
    progress = [e for e in journaled if e["type"] == "step.progress" and e["step"] == "wait-resync"]
    assert progress, "the resync progress was not journaled"
    ends = {e["step"]: e["outcome"] for e in journaled if e["type"] == "step.finished"}
    assert ends["new-disk"] == "ok" and ends["verify-clean"] == "ok", ends

    detail = guest.ssh("mdadm --detail /dev/md0", check=True).stdout
    # "active" is clean with writes in flight; degraded / recovering would follow it
    assert re.search(r"^ *State : (clean|active) *$", detail, re.MULTILINE), detail
    assert "Active Devices : 2" in detail, detail
    assert re.search(rf"active sync +{new_dev}2$", detail, re.MULTILINE), detail
    assert "[UU]" in md0_status(guest)
    # New GUIDs on the copied table; GRUB's core image in the new disk's BIOS boot partition.
    guid = "sgdisk -p {} | sed -n 's/^Disk identifier (GUID): //p'"
    guids = [guest.ssh(guid.format(d), check=True).stdout.strip() for d in ("/dev/vda", new_dev)]
    assert len(guids) == 2 and guids[0] != guids[1], guids
    assert grub_core_embedded(guest, new_dev)

    # The acid test: the original disk goes too; the machine must boot from the new one.
    guest.pull_disk("disk0")
    guest.power_cycle(timeout=600)
    assert "BOOT_IMAGE=" in guest.ssh("cat /proc/cmdline", check=True).stdout  # through GRUB
    disks = guest.ssh("lsblk -dnro SERIAL,TYPE | awk '$2 == \"disk\" {print $1}'", check=True)
    assert disks.stdout.split() == ["DRPLAB-NEW0"]
    assert guest.ssh("findmnt -no SOURCE /", check=True).stdout.strip() == "/dev/md0"
    status = md0_status(guest)
    assert "[2/1]" in status, status
    member = re.findall(r"(\w+)\[\d+\]", status)
    assert len(member) == 1
    serial = guest.ssh(f"lsblk -dno SERIAL /dev/$(lsblk -dno PKNAME /dev/{member[0]})").stdout
    assert serial.strip() == "DRPLAB-NEW0"
    assert sha256(guest, "/root/precious") == checksum
    assert guest.ssh("cat /root/after-pull", check=True).stdout.strip() == "written-while-degraded"
