"""A booted guest saved once per image, so that a test restores it instead of booting.

A boot through GRUB takes about a minute under TCG; restoring the saved state takes
about five seconds. :func:`drplab.guest.saved_state` boots one guest the usual way,
waits until systemd has finished booting, and saves it here (QEMU's migration stream
and the two disk overlays as they were at that instant). Each restored guest runs on
new overlays on top of those, so guests never share a writable file.

The saved state is cached next to the image, under a key of everything it depends on:
the image, the QEMU version and accelerator, memory and CPUs, and
:data:`SAVED_VERSION` (bump it when the guest's QEMU devices change: a migration
stream only loads into the same devices). ``DRP_LAB_RESTORE=0`` boots every guest
through GRUB instead.

Every boot *after* the start is a real one (reboot, power cycle, a pulled disk): only
the first boot of a fresh guest is replaced, and :class:`~drplab.guest.Guest` with
``cold=True`` still proves that one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from drplab.build import LabImage
from drplab.config import accel_args, qemu_binary

#: Bumped whenever the QEMU devices of a guest change (see the module's docstring).
SAVED_VERSION = 1
STATE_FILE = "state.gz"


@functools.cache
def _qemu_version() -> str:
    return subprocess.run(
        [qemu_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def state_key(image: LabImage, memory_mib: int, smp: int) -> str:
    """The cache key of the saved boot of ``image`` with this memory and CPU count."""
    parts = [image.key, _qemu_version(), *accel_args(), str(memory_mib), str(smp)]
    parts.append(str(SAVED_VERSION))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SavedState:
    """A saved booted guest: its migration stream and one overlay per disk."""

    path: Path
    disks: dict[str, Path]

    @property
    def stream(self) -> Path:
        """QEMU's migration stream, gzip-compressed."""
        return self.path / STATE_FILE

    def write_meta(self) -> None:
        """Write ``meta.json`` (what :func:`load` reads back)."""
        meta = {"disks": {n: p.name for n, p in self.disks.items()}}
        (self.path / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def directory(image: LabImage, key: str) -> Path:
    """Where the saved boot with ``key`` lives (beside the image it was booted from)."""
    return image.path / f"booted-{key}"


def load(path: Path) -> SavedState | None:
    """The saved state published at ``path``, or None if there is none (or it is torn)."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        disks = {name: path / leaf for name, leaf in meta["disks"].items()}
        state = SavedState(path=path, disks=disks)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not state.stream.is_file() or not all(p.is_file() for p in disks.values()):
        return None
    return state
