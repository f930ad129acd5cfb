"""What a step does where its runbook says nothing; the plan shows it, the actions use it.

The reboot and boot-id commands a reboot step falls back to (after the step's
own and the host's), how long one poll of a wait may take, and where a ``put``
keeps the file it replaced. Both :mod:`drp.engine.plan` (to show them) and the actions (to use
them) import this module, which imports nothing of the engine.
"""

from __future__ import annotations

DEFAULT_BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
DEFAULT_REBOOT = "systemctl reboot || /sbin/reboot"
BOOT_ID_TIMEOUT = 15.0  # reading the boot id, when the step sets no timeout


def poll_limit(step_timeout: float | None, interval: float) -> float:
    """How long one poll of a wait may take: the step's timeout, else 4 intervals (≥ 30 s).

    Never beyond the wait's own deadline (the caller caps it with what is left).
    """
    return step_timeout or max(30.0, interval * 4)


def backup_path(dest: str, run_id: str) -> str:
    """Where a ``put`` with ``backup: true`` keeps the file it replaced (rollback restores it)."""
    return f"{dest}.drp-bak-{run_id}"
