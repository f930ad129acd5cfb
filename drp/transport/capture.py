"""Bounded output: what a transport keeps of a command's stdout and stderr in memory.

A command may print gigabytes; drp keeps the first :data:`KEEP_HEAD` and the
last :data:`KEEP_TAIL` bytes of each stream and counts the rest, which is cut
from the middle with a visible mark. Memory stays bounded whatever the command
prints. (The engine spills the whole stdout to a file in the run directory as
it streams, see :mod:`drp.engine.spool`.)
"""

from __future__ import annotations

KEEP_HEAD = 256 * 1024
KEEP_TAIL = 256 * 1024


def cut_mark(cut: int) -> bytes:
    """The line that stands for ``cut`` bytes not kept, between head and tail."""
    return f"\n… [drp: {cut} bytes of output cut here, not kept in memory] …\n".encode()


class Bounded:
    """An output stream's head and tail, and how many bytes it had in all."""

    def __init__(self, head: int = KEEP_HEAD, tail: int = KEEP_TAIL) -> None:
        self._head_max, self._tail_max = head, tail
        self.head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_max - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            if len(self._tail) > 2 * self._tail_max:  # trimmed now and then: amortised
                del self._tail[: -self._tail_max]

    def replace_head(self, head: bytes) -> None:
        """Drop what drp's wrapper wrote first (the PID line): ``head`` is what stays."""
        self.total -= len(self.head) - len(head)
        self.head[:] = head

    @property
    def cut(self) -> int:
        """Bytes of the stream that are not kept."""
        return max(0, self.total - len(self.head) - min(len(self._tail), self._tail_max))

    def value(self) -> bytes:
        tail = bytes(self._tail[-self._tail_max :]) if self._tail else b""
        cut = self.cut
        return bytes(self.head) + (cut_mark(cut) if cut else b"") + tail
