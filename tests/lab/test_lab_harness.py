"""The lab harness itself: RAID-1 boot through GRUB, the saved boot, disk pull/insert,
link, power.

Each test gets a fresh guest, restored from the image's saved boot (~5 s under TCG;
a boot through GRUB takes about a minute): see ``drplab.saved``.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from drplab import Guest, LabImage, build_image, known_hosts_line
from drplab.util import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]


def mdstat(guest: Guest) -> str:
    return guest.ssh("cat /proc/mdstat", check=True).stdout


def test_image_is_cached(lab_image: LabImage) -> None:
    started = time.monotonic()
    again = build_image()
    assert again.path == lab_image.path
    assert time.monotonic() - started < 10
    assert all(disk.exists() for disk in lab_image.disks)


def test_boots_through_grub_with_root_on_raid1(lab_image: LabImage) -> None:
    with Guest(lab_image, name="lab1", cold=True) as guest:
        assert "boot_to_ssh" in guest.timings and "restore_to_ssh" not in guest.timings
        _check_boot_through_grub(guest)


def test_a_restored_guest_is_its_own_running_copy_of_the_saved_boot(
    lab_guest: Guest, lab_image: LabImage
) -> None:
    guest = lab_guest
    assert "restore_to_ssh" in guest.timings, guest.timings
    # the clock was set on restore (it stopped when the boot was saved)
    guest_now = float(guest.ssh("date +%s.%N", check=True).stdout)
    assert abs(guest_now - time.time()) < 30, guest_now
    # eth0 kept the address the primary port forwards to (test_power_cycle_reboot_and_console:
    # and a new boot of a restored guest gets it again)
    assert "10.0.2.15/24" in guest.ssh("ip -br addr show eth0", check=True).stdout
    _check_boot_through_grub(guest)
    # restored guests share no writable file: what one writes, another does not see
    guest.ssh("echo mine > /root/only-here && sync", check=True)
    with Guest(lab_image, name="lab2") as other:
        assert "restore_to_ssh" in other.timings
        assert other.ssh("test -e /root/only-here").returncode == 1
        other.ssh("echo theirs > /root/theirs && sync", check=True)
    assert guest.ssh("cat /root/only-here", check=True).stdout == "mine\n"
    assert guest.ssh("test -e /root/theirs").returncode == 1


def _check_boot_through_grub(guest: Guest) -> None:
    # Booted by GRUB from the disks (a direct -kernel boot has no BOOT_IMAGE).
    cmdline = guest.ssh("cat /proc/cmdline", check=True).stdout
    assert "BOOT_IMAGE=" in cmdline
    assert f"root=UUID={guest.image.fs_uuid}" in cmdline
    assert guest.ssh("findmnt -no SOURCE /", check=True).stdout.strip() == "/dev/md0"

    detail = guest.ssh("mdadm --detail /dev/md0", check=True).stdout
    assert "Raid Level : raid1" in detail
    assert "Active Devices : 2" in detail
    assert "Working Devices : 2" in detail
    assert "Intent Bitmap : Internal" in detail
    state = next(line for line in detail.splitlines() if "State :" in line)
    # "active" only means writes are in flight (the bitmap is not yet clean): both are healthy
    assert re.search(r"State : (clean|active)\s*$", state), state
    assert "degraded" not in state and "recovering" not in state
    assert "[UU]" in mdstat(guest)

    # The array is known to mdadm.conf (hence to the initramfs) by its UUID.
    conf = guest.ssh("cat /etc/mdadm/mdadm.conf", check=True).stdout
    assert f"UUID={guest.image.md_uuid}" in conf

    # Same layout and GRUB's boot code on both disks, each a member of md0.
    for serial in guest.image.disk_serials:
        dev = f"/dev/disk/by-id/virtio-{serial}"
        out = guest.ssh(
            f"sgdisk -p {dev}; echo MBR $(head -c 512 {dev} | grep -ac GRUB);"
            f" mdadm --examine {dev}-part2",
            check=True,
        ).stdout
        assert "EF02" in out and "FD00" in out
        assert "MBR 1" in out, f"no GRUB boot code on {dev}"
        assert f"Array UUID : {guest.image.md_uuid}" in out


def test_pull_disk_degrades_and_insert_disks(lab_guest: Guest) -> None:
    guest = lab_guest
    pulled = guest.pull_disk("disk1")
    assert not pulled.attached
    # md notices a missing member at the next write.
    guest.ssh("echo rehearsal > /root/after-pull && sync", check=True)

    def degraded() -> bool:
        return "[U_]" in mdstat(guest) or "[_U]" in mdstat(guest)

    wait_until(degraded, 60, what="md0 to show a missing member")
    detail = guest.ssh("mdadm --detail /dev/md0", check=True).stdout
    assert "degraded" in detail

    new = guest.insert_blank_disk("disk2", size="2G", serial="DRPLAB-NEW0")
    wait_until(
        lambda: guest.ssh(f"test -b {new.by_id}").returncode == 0,
        60,
        what=f"{new.by_id} in the guest",
    )
    size = guest.ssh(f"blockdev --getsize64 {new.by_id}", check=True).stdout.strip()
    assert int(size) == 2 * 1024**3
    # A blank disk: no partition table.
    assert guest.ssh(f"sgdisk -p {new.by_id} | grep -c '^ *[0-9]'").stdout.strip() in {"0", ""}

    # The pulled disk can go back in, as the same serial.
    back = guest.insert_disk(pulled.image, "disk1")
    wait_until(
        lambda: guest.ssh(f"test -b {back.by_id}-part2").returncode == 0,
        60,
        what=f"{back.by_id} back in the guest",
    )


def test_power_cycle_reboot_and_console(lab_guest: Guest) -> None:
    guest = lab_guest
    first = guest.boot_id()
    guest.power_cycle(timeout=600)
    second = guest.boot_id()
    assert second != first
    # The serial console is a working out-of-band path.
    guest.console_login()
    guest.console_write("echo console-$((40+2))\r")
    guest.console_expect(r"console-42", timeout=30)
    # A clean reboot, and the array is whole again afterwards.
    third = guest.reboot(timeout=600)
    assert third not in {first, second}
    assert "[UU]" in mdstat(guest)


def _check_with_drp_loader(inventory: Path, guest: Guest) -> None:
    """drp's own inventory loader accepts the lab's entry (when drp is importable)."""
    try:
        from drp.inventory import load_inventory
    except ImportError:
        return
    host = load_inventory(inventory).get("lab1")
    assert host.port == guest.port
    assert str(host.known_hosts) == str(guest.known_hosts)


def test_inventory_known_hosts_and_link(
    lab_guest: Guest, lab_inventory: Path, tmp_path: Path
) -> None:
    guest = lab_guest
    data = yaml.safe_load(lab_inventory.read_text())
    host = data["hosts"]["lab1"]
    assert host["address"] == "127.0.0.1"
    assert host["port"] == guest.port
    assert host["user"] == "root"
    assert Path(host["key"]) == guest.image.ssh_key
    assert host["vars"] == {"lab": True}
    lines = Path(host["known_hosts"]).read_text().splitlines()  # primary and management port
    assert lines == [
        known_hosts_line(guest.image.host_key, guest.port),
        known_hosts_line(guest.image.host_key, guest.mgmt_port),
    ]
    assert lines[0].startswith(f"[127.0.0.1]:{guest.port} ssh-ed25519 ")
    assert guest.ssh("hostname", check=True).stdout.strip() == guest.image.hostname
    _check_with_drp_loader(lab_inventory, guest)

    # A wrong host key is refused (strict checking, nothing auto-accepted).
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    other_key = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(known_hosts_line(other_key, guest.port) + "\n")
    argv = [a.replace(str(guest.known_hosts), str(wrong)) for a in guest.ssh_argv()]
    refused = subprocess.run(
        [*argv, "true"], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode != 0
    assert "host key" in refused.stderr.lower()

    # Pulled network cable: SSH fails; plugged back: SSH returns.
    guest.set_link(False)
    assert guest.ssh("true", timeout=30, connect_timeout=5).returncode != 0
    guest.set_link(True)
    guest.wait_ssh(120)


def test_replaced_disk_boots_alone(lab_guest: Guest) -> None:
    """The lab supports the whole disk swap: a hot-inserted disk, once partitioned,
    resynced and given GRUB, boots the machine with the other disk pulled."""
    guest = lab_guest
    survivor = "/dev/disk/by-id/virtio-" + guest.image.disk_serials[0]
    guest.pull_disk("disk1")
    guest.ssh("echo swap > /root/swap && sync", check=True)
    wait_until(lambda: "[U_]" in mdstat(guest), 60, what="md0 degraded")
    # udev may already have removed the vanished member: either way, none may be left
    guest.ssh("mdadm /dev/md0 --fail detached --remove detached")
    wait_until(
        lambda: "faulty" not in guest.ssh("mdadm --detail /dev/md0", check=True).stdout,
        60,
        what="the pulled member gone from md0",
    )

    new = guest.insert_blank_disk("disk2", size="2G", serial="DRPLAB-NEW0")
    wait_until(lambda: guest.ssh(f"test -b {new.by_id}").returncode == 0, 60, what=new.by_id)
    guest.ssh(
        f"sgdisk -R {new.by_id} {survivor} && sgdisk -G {new.by_id}"
        f" && blockdev --rereadpt {new.by_id}; udevadm settle",
        check=True,
    )
    wait_until(
        lambda: guest.ssh(f"test -b {new.by_id}-part2").returncode == 0, 60, what="new partitions"
    )
    guest.ssh(f"mdadm /dev/md0 --add {new.by_id}-part2", check=True)
    guest.ssh("mdadm --wait /dev/md0; true", timeout=900)
    assert "[UU]" in mdstat(guest)
    # sync as the disk-replace runbook does: grub-install rewrites /boot/grub/i386-pc and
    # the hard reset below drops the page cache (CI once saw the guest silent after it)
    guest.ssh(f"grub-install {new.by_id} && sync", check=True, timeout=300)

    old_boot = guest.boot_id()
    guest.pull_disk("disk0")
    guest.power_cycle(timeout=900)
    assert guest.boot_id() != old_boot
    disks = guest.ssh("ls /dev/disk/by-id/", check=True).stdout.split()
    assert "virtio-DRPLAB-NEW0" in disks
    assert not any(d.startswith("virtio-DRPLAB-DISK") for d in disks)
    assert guest.ssh("cat /root/swap", check=True).stdout.strip() == "swap"
    assert guest.ssh("findmnt -no SOURCE /", check=True).stdout.strip() == "/dev/md0"
