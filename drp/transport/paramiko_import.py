"""Import paramiko without the 40 ms of ``invoke`` it does not need here, and quiet.

``paramiko.config`` imports ``invoke`` (paramiko's own dependency, which in turn
imports ``unittest.mock``) for one purpose: running the commands of ssh_config
``Match exec`` lines. The transport never parses an ssh_config (the inventory
layer does, in :mod:`drp.inventory.sshconfig`, which imports paramiko's config
module itself, ``invoke`` and all, only when an ssh_config file exists), so
while paramiko is imported here ``invoke`` is marked as unavailable, which
paramiko handles (``Match exec`` would then raise its ImportError). The mark
is removed at once: a later ``import invoke`` (fabric in the benchmarks) works
as usual, and if ``invoke`` is already loaded nothing is hidden. Measured:
``import paramiko`` 105–170 ms → 65–100 ms on our 2-core machines
(docs/performance.md).

Quiet: paramiko reports a failed handshake (no SSH banner, a reset) from its
transport thread through ``logging``, as an ERROR and a traceback. With no handler
configured Python prints those on stderr, in the middle of drp's screen, while
drp reports the same failure itself as one line (an unreachable host, journaled).
A ``NullHandler`` on paramiko's logger stops that; a program embedding drp that
configures logging still receives the records.
"""

from __future__ import annotations

import logging
import sys

_hide = "invoke" not in sys.modules
if _hide:
    sys.modules["invoke"] = None  # type: ignore[assignment]  # "import invoke" raises ImportError
try:
    import paramiko
finally:
    if _hide:
        del sys.modules["invoke"]

logging.getLogger("paramiko").addHandler(logging.NullHandler())

__all__ = ["paramiko"]
