"""Stand-ins for standard streams, for tests of what drp does when its output breaks."""

from __future__ import annotations

import errno
import os
from io import StringIO


class ClosedPipe(StringIO):
    """A stdout whose reader has gone: every write fails as a closed pipe does (EPIPE,
    ``drp … | head``) or, with ``code=errno.EIO``, as a terminal that hung up does."""

    def __init__(self, code: int = errno.EPIPE) -> None:
        super().__init__()
        self.code = code

    def write(self, text: str) -> int:
        raise OSError(self.code, os.strerror(self.code))
