"""Stand-ins for standard streams, for tests of what drp does when its output breaks."""

from __future__ import annotations

from io import StringIO


class ClosedPipe(StringIO):
    """A stdout whose reader has gone (``drp … | head``): every write fails as a closed
    pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")
