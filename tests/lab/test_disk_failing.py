"""disk-replace with a *failing* disk: real I/O errors (QEMU blkdebug), the disk still present.

disk1 returns EIO on writes to one data sector and to its md member's bad-block log,
disk0 (the survivor) on the first read of another sector. md marks disk1's member
faulty at the next write to that data sector while /dev/vdb stays on the bus: a single
bad sector alone md would only record in the member's bad-block log (and keep it in
sync); a disk that cannot record it either is failed.

1. The survivor has logged a read error: disk-replace refuses before changing anything.
2. Once the survivor is trusted again, the gate names the serial of the disk to pull
   (found from the faulty member, without ``failed=``) and of the one to keep.
3. After the swap the run installs GRUB on the new disk, and the test finds GRUB's core
   image in the new disk's BIOS boot partition (not only boot code in its MBR, which
   ``sgdisk --replicate`` copies from the survivor).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from drp_cli import RUNBOOKS, outcomes, run_drp, run_ids
from drplab import Guest, IOFault, LabImage
from drplab.probes import grub_core_embedded
from drplab.util import wait_until

pytestmark = [
    pytest.mark.lab,
    pytest.mark.timeout(1800),
]

RUNBOOK = RUNBOOKS / "disk-replace.yaml"
#: Near the end of each 2 GiB disk, inside md0's data area, in a block the system leaves alone.
WRITE_FAULT = 4186112  # on disk1 (vdb)
READ_FAULT = 4188160  # on disk0 (vda), the survivor
#: The image's layout (checked by the test): partition 2 at sector 4096, md's superblock
#: 8 sectors into it, the bad-block log 16 sectors past the superblock.
PART_START, SUPER_OFFSET, BBL_OFFSET = 4096, 8, 16
BBL_FAULT = PART_START + SUPER_OFFSET + BBL_OFFSET  # on disk1: md cannot record the error


@pytest.fixture(scope="module")
def failing(lab_image: LabImage) -> Iterator[Guest]:
    faults = {
        "disk0": (IOFault("read", READ_FAULT, once=True),),
        "disk1": (IOFault("write", WRITE_FAULT), IOFault("write", BBL_FAULT)),
    }
    guest = Guest(lab_image, name="lab1", faults=faults)
    try:
        guest.start()
        yield guest
    finally:
        guest.stop()


def md0(guest: Guest) -> str:
    text = guest.ssh("cat /proc/mdstat", check=True).stdout
    match = re.search(r"^md0 :.*\n.*\n", text, re.MULTILINE)
    assert match, text
    return match.group(0)


def sectors(examine: str, key: str) -> int:
    """A sector count from ``mdadm --examine``: ``Data Offset : 4096 sectors``."""
    match = re.search(rf"^ *{key} : .*?(\d+) sectors", examine, re.MULTILINE)
    assert match, f"no {key} in:\n{examine}"
    return int(match.group(1))


def test_failing_disk_refused_then_named_then_replaced(failing: Guest, tmp_path: Path) -> None:
    guest = failing
    inv = str(guest.write_inventory(tmp_path / "inventory.yaml"))
    state = tmp_path / "state"

    # The md0 sector over disk1's bad one, rewritten with its own content: md gets EIO
    # from vdb, cannot record it in vdb2's bad-block log and fails the member; the disk
    # stays on the bus.
    examine = guest.ssh("mdadm --examine /dev/vdb2", check=True).stdout
    start = int(guest.ssh("cat /sys/block/vdb/vdb2/start", check=True).stdout)
    layout = (start, sectors(examine, "Super Offset"), sectors(examine, "Bad Block Log"))
    assert layout == (PART_START, SUPER_OFFSET, BBL_OFFSET), f"image layout changed:\n{examine}"
    sector = WRITE_FAULT - start - sectors(examine, "Data Offset")
    assert 0 < sector < int(guest.ssh("blockdev --getsz /dev/md0", check=True).stdout)
    guest.ssh(
        f"dd if=/dev/md0 of=/dev/md0 bs=512 skip={sector} seek={sector} count=8 "
        "iflag=direct oflag=direct conv=notrunc status=none; sync",
        timeout=120,
    )
    wait_until(lambda: "(F)" in md0(guest), 60, what="md to fail vdb2")
    assert guest.ssh("test -b /dev/vdb").returncode == 0  # failing, not gone
    # The survivor returns a read error too; the kernel logs it.
    bad = guest.ssh(f"dd if=/dev/vda of=/dev/null bs=512 skip={READ_FAULT} count=1 iflag=direct")
    assert bad.returncode != 0, bad.stdout + bad.stderr
    assert "I/O error, dev vda" in guest.ssh("dmesg", check=True).stdout

    before: set[str] = set()
    refused = run_drp(
        "run", str(RUNBOOK), "-i", inv, "-H", "lab1", "--yes", state_dir=state, timeout=900
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    out = refused.stdout + refused.stderr
    assert "refusing: the kernel logged I/O errors on /dev/vda" in out, out
    first = run_ids(state, before)
    assert outcomes(state, first)["survivor-healthy"] == "failed"
    assert "fail-and-remove" not in outcomes(state, first)
    assert "vdb2[1](F)" in md0(guest)  # nothing was changed

    # The operator has the survivor checked and trusts it again (the log is cleared).
    guest.ssh("dmesg -C", check=True)
    paused = run_drp(
        "run", str(RUNBOOK), "-i", inv, "-H", "lab1", "--yes", state_dir=state, timeout=900
    )
    assert paused.returncode == 5, paused.stdout + paused.stderr
    run_id = run_ids(state, {first})
    pull = [line for line in paused.stdout.splitlines() if "PULL:" in line]
    keep = [line for line in paused.stdout.splitlines() if "KEEP:" in line]
    assert pull and "/dev/vdb" in pull[0] and "DRPLAB-DISK1" in pull[0], paused.stdout
    assert keep and "DRPLAB-DISK0" in keep[0], paused.stdout
    assert "vdb2" not in md0(guest)  # failed and removed

    # The swap: the failing disk out, a blank one in; then the rebuild.
    guest.pull_disk("disk1")
    new = guest.insert_blank_disk("disk2", size="2G", serial="DRPLAB-NEW0")
    wait_until(lambda: guest.ssh(f"test -b {new.by_id}").returncode == 0, 60, what="new disk")
    new_dev = guest.ssh(f"readlink -f {new.by_id}", check=True).stdout.strip()
    assert not grub_core_embedded(guest, new_dev)
    done = run_drp(
        "resume", run_id, "-i", inv, "--approve", "datacenter-swap", "--yes",
        state_dir=state, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcomes(state, run_id)["install-bootloader"] == "ok"
    assert "[UU]" in md0(guest)
    assert grub_core_embedded(guest, new_dev)
