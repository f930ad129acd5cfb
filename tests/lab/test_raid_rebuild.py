"""raid-rebuild proved on the lab guest (incident A, step 4: arrays back after the night).

1. A transient disconnect: disk1 drops off the bus, md fails it at the next write,
   the same disk comes back. ``drp run raid-rebuild`` re-adds it through the
   write-intent bitmap; mdadm.conf and the initramfs are left alone (they know md0).
2. A stale mdadm.conf: a data array created after the initramfs was built, never
   written to mdadm.conf, loses a member for a moment; after a reboot it comes
   back as ``md127 (auto-read-only)``, degraded. raid-rebuild makes it read-write,
   rebuilds it, writes its ARRAY line under its own name and rebuilds the
   initramfs; the next boot names it md1, whole, with the data intact.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from drp_cli import RUNBOOKS, events, run_drp, runs
from drplab import Guest
from drplab.util import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

RUNBOOK = RUNBOOKS / "raid-rebuild.yaml"
DRP_TIMEOUT = 1200


def drp(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_drp(*args, state_dir=state_dir, timeout=DRP_TIMEOUT)


def rebuild(inventory: Path, state_dir: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run raid-rebuild on lab1; return the result and the run id."""
    before = set(runs(state_dir))
    result = drp(
        "run", str(RUNBOOK), "-i", str(inventory), "-H", "lab1", "--yes", state_dir=state_dir
    )
    new = set(runs(state_dir)) - before
    assert len(new) == 1, new
    return result, new.pop()


def outcomes(state_dir: Path, run_id: str) -> dict[str, str]:
    """step -> outcome of its last end record (finished or skipped)."""
    ends = ("step.finished", "step.skipped")
    return {e["step"]: e["outcome"] for e in events(state_dir, run_id) if e["type"] in ends}


def step_output(state_dir: Path, run_id: str, step: str) -> str:
    return "".join(
        e["data"].get("stdout", "")
        for e in events(state_dir, run_id)
        if e["type"] == "step.attempt" and e["step"] == step
    )


def array_status(guest: Guest, md: str) -> str:
    """The /proc/mdstat lines of one array ('' if it is not running)."""
    text = guest.ssh("cat /proc/mdstat", check=True).stdout
    match = re.search(rf"^{md} :.*\n.*\n", text, re.MULTILINE)
    return match.group(0) if match else ""


def assert_clean(guest: Guest, md: str) -> None:
    detail = guest.ssh(f"mdadm --detail /dev/{md}", check=True).stdout
    assert re.search(r"^ *State : (clean|active) *$", detail, re.MULTILINE), detail
    assert "Active Devices : 2" in detail, detail
    assert "[UU]" in array_status(guest, md)


def test_re_add_a_disk_that_came_back(
    lab_guest: Guest, lab_inventory: Path, tmp_path: Path
) -> None:
    guest = lab_guest
    state = tmp_path / "state"
    disk = guest.pull_disk("disk1")
    guest.ssh("head -c 8M /dev/urandom > /root/while-degraded && sync", check=True)
    wait_until(lambda: "[U_]" in array_status(guest, "md0"), 60, what="md0 to lose disk1")
    back = guest.insert_disk(disk.image, "disk1")
    wait_until(
        lambda: guest.ssh(f"test -b {back.by_id}-part2").returncode == 0,
        60,
        what="disk1 back in the guest",
    )
    assert "[U_]" in array_status(guest, "md0")  # nothing re-adds it on its own

    result, run_id = rebuild(lab_inventory, state)
    assert result.returncode == 0, result.stdout + result.stderr
    readd = step_output(state, run_id, "re-add")
    assert re.search(r"/dev/md0: re-added /dev/vd[a-z]2 \(write-intent bitmap", readd), readd
    steps = outcomes(state, run_id)
    assert steps["re-add"] == "ok"
    assert steps["update-mdadm-conf"] == "skipped", steps  # md0 is known: no initramfs rebuild
    assert steps["verify-clean"] == "ok"
    assert_clean(guest, "md0")


DATA = ("DRPLAB-DATA0", "DRPLAB-DATA1")


def test_md127_auto_read_only_after_a_reboot_with_a_stale_mdadm_conf(
    lab_guest: Guest, lab_inventory: Path, tmp_path: Path
) -> None:
    guest = lab_guest
    state = tmp_path / "state"
    # A data array made after the initramfs was built; mdadm.conf never heard of it.
    for index, serial in enumerate(DATA):
        guest.insert_blank_disk(f"data{index}", size="256M", serial=serial)
    parts = [f"/dev/disk/by-id/virtio-{serial}" for serial in DATA]
    wait_until(
        lambda: guest.ssh(" && ".join(f"test -b {p}" for p in parts)).returncode == 0,
        60,
        what="the data disks",
    )
    guest.ssh(
        "set -e; "
        + "; ".join(f"sgdisk -n1:0:0 -t1:FD00 {p} >/dev/null" for p in parts)
        + "; udevadm settle; "
        "mdadm --create /dev/md1 --run --level=1 --raid-devices=2 --metadata=1.2 "
        f"--bitmap=internal --assume-clean {parts[0]}-part1 {parts[1]}-part1; "
        "mkfs.ext4 -q /dev/md1; mkdir -p /srv/data; mount /dev/md1 /srv/data; "
        "head -c 4M /dev/urandom > /srv/data/before; umount /srv/data",
        check=True,
    )
    uuid = guest.ssh("mdadm --detail /dev/md1 | awk '/ UUID :/ {print $3}'", check=True)
    uuid_text = uuid.stdout.strip()
    assert uuid_text and uuid_text not in guest.ssh("cat /etc/mdadm/mdadm.conf").stdout

    # One member drops off the bus for a moment, a write lands on the other, it comes back.
    disk = guest.pull_disk("data1")
    guest.ssh(
        "mount /dev/md1 /srv/data && head -c 4M /dev/urandom > /srv/data/after "
        "&& sync && umount /srv/data",
        check=True,
    )
    wait_until(lambda: "[U_]" in array_status(guest, "md1"), 60, what="md1 to lose data1")
    back = guest.insert_disk(disk.image, "data1")
    wait_until(
        lambda: guest.ssh(f"test -b {back.by_id}-part1").returncode == 0,
        60,
        what="data1 back in the guest",
    )
    guest.ssh("mount /dev/md1 /srv/data", check=True)
    checksums = guest.ssh("cd /srv/data && sha256sum before after", check=True).stdout
    guest.ssh("umount /srv/data", check=True)

    guest.reboot(timeout=600)
    status = array_status(guest, "md127")
    assert "auto-read-only" in status and "[U_]" in status, status
    assert not array_status(guest, "md1")

    result, run_id = rebuild(lab_inventory, state)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = outcomes(state, run_id)
    assert steps["read-write"] == "ok", steps
    assert "/dev/md127 is now read-write" in step_output(state, run_id, "read-write")
    assert steps["update-mdadm-conf"] == "ok", steps
    conf_out = step_output(state, run_id, "update-mdadm-conf")
    assert "added ARRAY /dev/md1 " in conf_out, conf_out
    assert "rebuilding" in conf_out, conf_out
    status = array_status(guest, "md127")
    assert "read-only" not in status, status
    assert_clean(guest, "md127")
    conf = guest.ssh("grep ^ARRAY /etc/mdadm/mdadm.conf", check=True).stdout
    assert re.search(rf"^ARRAY /dev/md1 .*UUID={uuid_text}", conf, re.MULTILINE), conf
    assert "spares=" not in conf

    # The next boot knows it by its name, whole, data intact.
    guest.reboot(timeout=600)
    assert not array_status(guest, "md127")
    assert_clean(guest, "md1")
    guest.ssh("mount /dev/md1 /srv/data", check=True)
    assert guest.ssh("cd /srv/data && sha256sum before after", check=True).stdout == checksums

    # Nothing left to do: every guard holds, no second initramfs rebuild.
    again, again_id = rebuild(lab_inventory, state)
    assert again.returncode == 0, again.stdout + again.stderr
    steps = outcomes(state, again_id)
    for step in ("assemble", "read-write", "re-add", "update-mdadm-conf"):
        assert steps[step] == "skipped", steps
