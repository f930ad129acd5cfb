"""How much of a command's output the journal keeps, and the spill file that keeps it all.

The transport keeps only the head and tail of an output in memory
(:mod:`drp.transport.capture`) and the journal keeps even less (:func:`clip`:
``MAX_STORED_OUTPUT`` per stream, ``MAX_STORED_CAPTURE`` per capture). So that nothing is lost,
a :class:`Spool` receives each stdout line (secrets masked) and, once the output
outgrows what memory keeps, writes it all to ``RUN_DIR/output/HOST-STEP-PHASE-N.out``
(``0600``, created exclusively, never through a link). The journal's
``step.attempt`` names that file. A ``sensitive`` step's output is never spilled.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from drp.transport.base import OutputCallback
from drp.transport.capture import KEEP_HEAD, KEEP_TAIL

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

MAX_STORED_OUTPUT = 32 * 1024  # per stream (stdout, stderr) of one step.attempt record
MAX_STORED_CAPTURE = 16 * 1024  # per captured value in step.finished
SENSITIVE = "<sensitive>"  # what the journal stores instead of a sensitive step's captures
CAPTURE_CUT = "characters cut from this capture] …"  # a journaled capture that is not whole


def clip(text: str, limit: int = MAX_STORED_OUTPUT, what: str = "") -> str:
    """Keep journal records bounded: the head and tail of very long output, and a mark."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut{what}] …\n{text[-half:]}"


class Spool:
    """An ``on_output`` callback that writes the lines to a file once there are many."""

    def __init__(self, directory: Path, name: str, after: int = KEEP_HEAD + KEEP_TAIL) -> None:
        self._directory = directory
        self._name = _UNSAFE.sub("_", name)
        self._after = after
        self._lines: list[str] = []
        self._size = 0
        self._file: TextIO | None = None
        self.path: Path | None = None

    def __call__(self, line: str) -> None:
        if self._file is not None:
            self._file.write(line + "\n")
            return
        self._lines.append(line)
        self._size += len(line) + 1
        if self._size > self._after:
            self._file = self._open()
            self._file.writelines(f"{kept}\n" for kept in self._lines)
            self._lines = []

    def _open(self) -> TextIO:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for n in range(1000):
            path = self._directory / (f"{self._name}.out" if n == 0 else f"{self._name}.{n}.out")
            try:
                fd = os.open(path, flags, 0o600)
            except FileExistsError:
                continue
            self.path = path
            return os.fdopen(fd, "w", encoding="utf-8", errors="replace")
        raise FileExistsError(f"{self._directory}: no free name for {self._name}")

    def close(self) -> Path | None:
        """Finish the file; its path, or None when the output stayed small."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lines = []
        return self.path


def tee_to(
    spool: Spool | None, redact: Callable[[str], str], then: OutputCallback | None
) -> OutputCallback | None:
    """The ``on_output`` that spools each line (secrets masked) and passes it on."""
    if spool is None:
        return then

    def tee(line: str) -> None:
        spool(redact(line))
        if then is not None:
            then(line)

    return tee


def closed_spool(spool: Spool | None) -> Path | None:
    return spool.close() if spool is not None else None
