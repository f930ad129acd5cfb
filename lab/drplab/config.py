"""Locations and knobs of the lab, read from the environment.

``DRP_LAB_CACHE``   cache directory (default ``~/.cache/drp-lab``)
``DRP_LAB_MIRROR``  Debian mirror for debootstrap (default: the first one apt uses)
``DRP_LAB_KVM``     ``1`` to run guests with ``-accel kvm`` (default: TCG)
``DRP_LAB_QEMU``    QEMU binary (default ``qemu-system-x86_64``)
``DRP_LAB_RESTORE`` ``0`` to boot every guest instead of restoring the saved boot
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"


def cache_dir() -> Path:
    """Return the lab cache directory, creating it if needed."""
    env = os.environ.get("DRP_LAB_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "drp-lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def qemu_binary() -> str:
    """Return the QEMU system emulator to run."""
    return os.environ.get("DRP_LAB_QEMU", "qemu-system-x86_64")


def use_kvm() -> bool:
    """Whether guests run under KVM (opt-in; TCG is the measured default)."""
    return os.environ.get("DRP_LAB_KVM", "") in {"1", "true", "yes"}


def restore_enabled() -> bool:
    """Whether fresh guests restore the image's saved boot (``DRP_LAB_RESTORE=0``: never)."""
    return os.environ.get("DRP_LAB_RESTORE", "1") not in {"0", "false", "no"}


def accel_args() -> list[str]:
    """QEMU accelerator and CPU arguments."""
    if use_kvm():
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,tb-size=256", "-cpu", "max"]


def debian_mirror() -> str:
    """The Debian mirror debootstrap uses.

    ``DRP_LAB_MIRROR`` wins; otherwise the first Debian URI found in the host's
    apt sources (so a machine restricted to its configured mirror still works).
    """
    env = os.environ.get("DRP_LAB_MIRROR")
    if env:
        return env
    sources = [Path("/etc/apt/sources.list")]
    src_dir = Path("/etc/apt/sources.list.d")
    if src_dir.is_dir():
        sources += sorted(src_dir.iterdir())
    pattern = re.compile(r"(https?://\S+/debian)/?(\s|$)")
    for src in sources:
        try:
            text = src.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            match = pattern.search(line)
            if match:
                return match.group(1)
    return DEFAULT_MIRROR
