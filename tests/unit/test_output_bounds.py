"""Bounded output in memory (transport) and the spill file (engine)."""

from __future__ import annotations

import stat
from pathlib import Path

from drp.engine.spool import Spool
from drp.transport.capture import Bounded


def test_bounded_keeps_head_and_tail_and_marks_the_cut() -> None:
    kept = Bounded(head=10, tail=10)
    for n in range(1000):
        kept.add(f"{n:04d}\n".encode())
    value = kept.value()
    assert kept.total == 5000 and kept.cut == 4980
    assert value.startswith(b"0000\n0001\n") and value.endswith(b"0998\n0999\n")
    assert b"[drp: 4980 bytes of output cut here" in value
    assert len(value) < 200


def test_bounded_keeps_a_short_output_whole() -> None:
    kept = Bounded(head=10, tail=10)
    kept.add(b"short\n")
    kept.add(b"and more\n")
    assert kept.value() == b"short\nand more\n" and kept.cut == 0


def test_the_spool_writes_a_file_only_once_the_output_is_long(tmp_path: Path) -> None:
    small = Spool(tmp_path / "out", "h1-a-action-1", after=100)
    small("one line")
    assert small.close() is None and not (tmp_path / "out").exists()
    big = Spool(tmp_path / "out", "h1/../a action", after=100)
    lines = [f"line {n}" for n in range(100)]
    for line in lines:
        big(line)
    path = big.close()
    assert path is not None and path.parent == tmp_path / "out"  # no '/' from the name
    assert path.read_text().splitlines() == lines
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
