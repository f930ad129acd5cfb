"""Read-only checks of a lab guest that tests make on their own (not trusting a runbook).

``grub_core_embedded(guest, disk)``
    whether ``grub-install`` really wrote GRUB's core image onto ``disk``: the bytes in
    its BIOS boot partition (GPT) or after its MBR equal ``/boot/grub/i386-pc/core.img``
    past the two sectors grub-bios-setup patches when it embeds the image. The MBR's 440
    bytes of boot code prove nothing (``sgdisk --replicate`` copies them).
"""

from __future__ import annotations

from drplab.guest import Guest

BIOS_BOOT_GUID = "21686148-6449-6E6F-744E-656564454649"

_CHECK = (
    "set -eu; disk={disk}; core=/boot/grub/i386-pc/core.img; ss=$(blockdev --getss $disk); "
    "start=$(sfdisk -d $disk | grep -i 'type={guid}' "
    "| sed -nE 's/.*start= *([0-9]+).*/\\1/p' | head -n1); [ -n \"$start\" ] || start=1; "
    "size=$(stat -c %s $core); "
    'cmp -n $((size - 1024)) -i "1024:$((start * ss + 1024))" $core $disk'
)


def grub_core_embedded(guest: Guest, disk: str) -> bool:
    """Whether GRUB's current core image is embedded on ``disk`` (a /dev path)."""
    result = guest.ssh(_CHECK.format(disk=disk, guid=BIOS_BOOT_GUID), timeout=60)
    return result.returncode == 0
