"""Ways to break a lab guest as the night of incident A did.

``interrupt_kernel_upgrade(guest)``
    the newer kernel's package unpacked and never configured (``dpkg --unpack``, as an
    upgrade interrupted by a dying disk leaves it): half-installed, no initramfs.
``break_network(guest, kind)``
    the primary network configuration (ifupdown, eth0) broken: ``wrong-address``,
    ``manual`` (``inet manual``: no address) or ``renamed`` (a stanza for an interface
    that does not exist). The management port (eth1, systemd-networkd) is untouched,
    so the guest is still reachable through it.
``night_of_september_2019(guest)``
    incident A as one event: the primary configuration names an interface that is not
    there (it takes effect at the next boot), the newer kernel's upgrade starts and
    disk1 dies under it (pulled from the bus), then the machine is reset before the
    package is configured. It comes back degraded, half-upgraded, reachable only
    through the management port.

Each returns once the damage is visible; every wait polls against a deadline.
"""

from __future__ import annotations

from drplab.build import INTERFACES, NEW_KERNEL, SPARE_DEB_DIR
from drplab.guest import Guest, LabError
from drplab.util import wait_until

#: The working primary configuration the image ships (kept as the operator's known-good copy).
GOOD_INTERFACES = INTERFACES

#: exit 0 when md0's status line shows a missing member ([U_])
DEGRADED_MD0 = "grep -A1 '^md0 ' /proc/mdstat | grep -Eq '\\[[U_]*_[U_]*\\]'"

BROKEN_INTERFACES = {
    # QEMU's user network forwards the primary port to 10.0.2.15 only
    "wrong-address": "auto eth0\niface eth0 inet static\n    address 10.0.2.99/24\n"
    "    gateway 10.0.2.2\n",
    "manual": "auto eth0\niface eth0 inet manual\n",
    "renamed": "auto ens3\niface ens3 inet dhcp\n",
}


#: Shell that waits (up to 5 min) while a process holds dpkg's frontend lock: a guest
#: just booted may run a timer's dpkg job (seen in CI: "dpkg frontend lock was locked
#: by another process"). dpkg's lock is a POSIX record lock, listed in /proc/locks by
#: the file's inode; neither fuser nor lsof is in the image.
WAIT_FOR_DPKG = (
    "ino=$(stat -c %i /var/lib/dpkg/lock-frontend 2>/dev/null || echo none); n=0; "
    'while grep -q ":$ino " /proc/locks && [ "$n" -lt 300 ]; do sleep 1; n=$((n + 1)); done; '
)


def interrupt_kernel_upgrade(guest: Guest, *, timeout: float = 900.0) -> str:
    """Unpack the newer kernel and stop there; return its release (``uname -r`` form)."""
    script = (
        "set -eu; export DEBIAN_FRONTEND=noninteractive; "
        + WAIT_FOR_DPKG
        + f"dpkg --unpack {SPARE_DEB_DIR}/linux-image-{NEW_KERNEL}_*.deb >/dev/null; "
        f"test -f /boot/vmlinuz-{NEW_KERNEL}; test ! -e /boot/initrd.img-{NEW_KERNEL}; "
        "dpkg --audit | grep -q ."
    )
    guest.ssh(script, check=True, timeout=timeout)
    return NEW_KERNEL


def break_network(guest: Guest, kind: str = "wrong-address", *, timeout: float = 120.0) -> None:
    """Break the primary network (``kind`` in ``BROKEN_INTERFACES``); wait until SSH on it fails.

    A known-good copy of the working configuration is left at
    ``/etc/network/interfaces.drp-good`` (what an operator keeps for network-repair).
    """
    if kind not in BROKEN_INTERFACES:
        raise ValueError(f"unknown break {kind!r}; one of {sorted(BROKEN_INTERFACES)}")
    broken = "auto lo\niface lo inet loopback\n\n" + BROKEN_INTERFACES[kind]
    # ifdown must see the configuration it brought up (a dhcp stanza releases its lease);
    # then the broken one is brought up, as at the next boot.
    guest.ssh(
        "set -e; cp -p /etc/network/interfaces /etc/network/interfaces.drp-good; "
        "systemctl stop networking; cat > /etc/network/interfaces; "
        "systemctl start networking || true",
        input_text=broken,
        check=True,
        mgmt=True,
    )
    wait_until(
        lambda: guest.ssh("true", timeout=15, connect_timeout=5).returncode != 0,
        timeout,
        interval=1.0,
        what="SSH on the primary port to fail",
    )
    if guest.ssh("true", mgmt=True, timeout=30).returncode != 0:
        raise LabError("breaking the primary network broke the management port too")


def night_of_september_2019(guest: Guest, *, disk: str = "disk1", timeout: float = 900.0) -> None:
    """Break ``guest`` as the night of incident A did (see the module's docstring)."""
    broken = "auto lo\niface lo inet loopback\n\n" + BROKEN_INTERFACES["renamed"]
    guest.ssh(
        "set -e; [ -e /etc/network/interfaces.drp-good ] || "
        "cp -p /etc/network/interfaces /etc/network/interfaces.drp-good; "
        "cat > /etc/network/interfaces",
        input_text=broken,
        check=True,
        mgmt=True,
    )
    guest.ssh(
        "rm -f /root/upgrade.rc; export DEBIAN_FRONTEND=noninteractive; nohup sh -c "
        f"'dpkg --unpack {SPARE_DEB_DIR}/linux-image-{NEW_KERNEL}_*.deb; "
        "echo $? > /root/upgrade.rc' >/root/upgrade.log 2>&1 &",
        check=True,
        mgmt=True,
    )
    guest.pull_disk(disk)  # while the package is being unpacked
    wait_until(
        lambda: guest.ssh(DEGRADED_MD0, mgmt=True).returncode == 0,
        300,
        interval=2.0,
        what=f"md0 to lose {disk}",
    )
    wait_until(
        lambda: guest.ssh("cat /root/upgrade.rc", mgmt=True).stdout.strip() != "",
        timeout,
        interval=3.0,
        what="the newer kernel's package to be unpacked",
    )
    rc = guest.ssh("cat /root/upgrade.rc", mgmt=True).stdout.strip()
    if rc != "0":
        log = guest.ssh("cat /root/upgrade.log", mgmt=True).stdout
        raise LabError(f"dpkg --unpack failed (exit {rc}):\n{log}")
    # the reset comes once the unpack is on the disk, so that every replay is the same
    guest.ssh("sync", check=True, mgmt=True)
    guest.power_cycle(timeout=timeout, mgmt=True)
    if guest.ssh("true", timeout=20, connect_timeout=5).returncode == 0:
        raise LabError("the primary network came back after the reset; it should not")
