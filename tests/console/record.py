"""Record a console transcript for tests/unit/test_console_wire.py.

Runs a few commands through :class:`ConsoleTransport` and writes, for every
answer drp waited for, the raw console output it was found in, the pattern and
the match (and for chunk frames the marker, index and checksum) as JSON::

    # the fake console, kernel messages injected mid-stream:
    FAKE_KMSG=1 python tests/console/record.py tests/console/transcripts/fake-kmsg.json
    # a real console (the lab guest's QEMU serial socket), root password drplab:
    python tests/console/record.py OUT.json unix:/tmp/drplab-…/console.sock drplab
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from drp.inventory.model import Console, Host
from drp.transport import console_wire as wire
from drp.transport.console import ConsoleTransport

ANSWERS: list[dict[str, Any]] = []
_CHUNK = re.compile(rb"^(drp[0-9a-f]{24}):(\d+):.*:([0-9a-f]{64})[\r\n]$", re.DOTALL)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class RecordingReader(wire.Reader):
    def find(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        raw = self.pending
        found = super().find(pattern)
        if found is not None:
            entry: dict[str, Any] = {
                "pattern": _b64(pattern.pattern),
                "raw": _b64(raw),
                "match": _b64(found.group(0)),
            }
            chunk = _CHUNK.match(found.group(0))
            if chunk is not None:
                entry |= {
                    "marker": chunk.group(1).decode(),
                    "chunk": int(chunk.group(2)),
                    "sha256": chunk.group(3).decode(),
                }
            ANSWERS.append(entry)
        return found


def main() -> None:
    out = Path(sys.argv[1])
    if len(sys.argv) > 2:
        console = Console(socket=sys.argv[2], user="root")
        password = sys.argv[3]
    else:
        here = Path(__file__).with_name("fake_console.py")
        os.environ.setdefault("FAKE_USER", "ops")
        os.environ.setdefault("FAKE_PASSWORD", "s3cret")
        console = Console(command=f"{sys.executable} {here}", user="ops")
        password = os.environ["FAKE_PASSWORD"]
    wire.Reader = RecordingReader  # type: ignore[misc]
    transport = ConsoleTransport(Host("rec", "rec", console=console), password=password)
    try:
        transport.run("echo hello; echo oops >&2; exit 3")
        transport.run("printf '%s\\n' 'drp0123456789abcdef01234567:done:0' '\\033[31mred\\033[0m'")
        transport.run("yes 'a line of output' | head -c 150000", timeout=300)
        transport.put(bytes(range(256)) * 40, "/tmp/drp-record.bin")
        transport.run("rm -f /tmp/drp-record.bin")
    finally:
        transport.close()
    kernel = sum(len(wire.KERNEL_LINE.findall(base64.b64decode(a["raw"]))) for a in ANSWERS)
    out.write_text(json.dumps({"answers": ANSWERS, "kernel_lines_at_least": kernel}, indent=0))
    print(f"{out}: {len(ANSWERS)} answers, {kernel} kernel message lines")


if __name__ == "__main__":
    main()
