"""drplab: a QEMU rehearsal lab for drp runbooks.

Builds (and caches) a Debian bookworm guest whose root file system lives on md
RAID-1 over two virtio disks with GRUB on both, boots it under QEMU, and gives
tests and operators a small API to break it the way real servers break: pull a
disk, insert a blank one, cut the network, power-cycle, use the serial console.
"""

from __future__ import annotations

from drplab.build import BuildConfig, LabImage, build_image
from drplab.config import cache_dir
from drplab.guest import Disk, Guest, IOFault, LabError
from drplab.inventory import known_hosts_line, write_inventory, write_known_hosts

__all__ = [
    "BuildConfig",
    "Disk",
    "Guest",
    "IOFault",
    "LabError",
    "LabImage",
    "build_image",
    "cache_dir",
    "known_hosts_line",
    "write_inventory",
    "write_known_hosts",
]
