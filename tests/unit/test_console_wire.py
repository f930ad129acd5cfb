"""Reading answers back off a console: markers and chunk frames, against console transcripts.

The transcripts in ``tests/console/transcripts/`` were recorded on consoles
(``record.txt`` says how); the cases below also build the awkward ones a
console produces by hand: echo, CRLF, ANSI sequences, a prompt that changes,
kernel messages in the middle of a marker or a payload, output holding marker
text.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from drp.transport import console_wire as wire

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "console" / "transcripts"
MARKER = "drp0123456789abcdef01234567"
KMSG = b"[  812.345678] e1000e 0000:00:19.0 eth0: NIC Link is Down\r\n"


def frame(data: bytes, index: int = 0, marker: str = MARKER) -> bytes:
    b64 = base64.b64encode(data)
    return f"{marker}:{index}:".encode() + b64 + b":" + wire.sha256_hex(data).encode() + b"\r\n"


def test_the_typed_line_never_holds_the_whole_marker() -> None:
    for line in (
        wire.sync_line(MARKER),
        wire.run_line(MARKER, "/tmp/x/" + "s", None),
        wire.size_line(MARKER, "/tmp/f"),
        wire.chunk_line(MARKER, "/tmp/f", 3, "/tmp/d/chunk"),
        wire.dir_line(MARKER),
    ):
        assert MARKER not in line
    *lines, check = wire.upload_lines(b"x" * 5000, "/tmp/f", MARKER)
    assert all(MARKER not in text for text, _ in [*lines, check])


def test_upload_lines_fit_a_terminal_line_buffer() -> None:
    *lines, check = wire.upload_lines(
        bytes(range(256)) * 100, "/tmp/drp-console.abcdefgh/f", MARKER
    )
    assert max(len(text) for text, _ in [*lines, check]) < 4095
    sent = b"".join(
        base64.b64decode(text.split()[2]) for text, _ in lines[1:]
    )  # printf %s CHUNK >>file
    assert sent == bytes(range(256)) * 100


def test_echoed_line_is_not_taken_for_the_answer() -> None:
    """With echo on, the typed line comes back first: only the shell's answer matches."""
    typed = wire.run_line(MARKER, "/tmp/d/s", None).encode()
    stream = typed + b"\r\n" + f"{MARKER}:done:3\r\n".encode() + b"root@host:~# "
    reader = wire.Reader()
    reader.feed(typed + b"\r\n")
    assert reader.find(wire.done_pattern(MARKER)) is None
    reader.feed(stream[len(typed) + 2 :])
    found = reader.find(wire.done_pattern(MARKER))
    assert found is not None and found.group(1) == b"3"


@pytest.mark.parametrize("cut", [3, len(MARKER) - 4, len(MARKER) + 3])
def test_a_kernel_message_inside_the_status_line(cut: int) -> None:
    line = f"{MARKER}:done:0\r\n".encode()
    reader = wire.Reader()
    reader.feed(b"\x1b[?2004l\r" + line[:cut] + KMSG + line[cut:] + b"\x1b[1;32mroot@h:~# \x1b[0m")
    found = reader.find(wire.done_pattern(MARKER))
    assert found is not None and found.group(1) == b"0"


def test_answers_split_across_reads() -> None:
    line = f"{MARKER}:done:127\r\n".encode()
    reader = wire.Reader()
    for byte in line[:-2]:  # "1", "12" and "127" without their line end are not the status
        reader.feed(bytes([byte]))
        assert reader.find(wire.done_pattern(MARKER)) is None
    reader.feed(line[-2:])
    assert reader.find(wire.done_pattern(MARKER)) is not None


def test_a_stale_marker_is_not_the_answer() -> None:
    reader = wire.Reader()
    reader.feed(b"drp00000000000000000000000a:done:0\r\n")
    assert reader.find(wire.done_pattern(MARKER)) is None


@pytest.mark.parametrize(
    "payload",
    [
        b"plain\n",
        f"{MARKER}:done:0\n{MARKER}:0:aGk=:{'0' * 64}\n".encode(),  # marker text in the output
        b"\x1b[31mred\x1b[0m\r\nCRLF\r\n",
        bytes(range(256)),
        b"",
    ],
)
def test_chunk_frames_give_back_the_exact_bytes(payload: bytes) -> None:
    stream = b"garbage\r\n" + frame(payload, 2) + b"root@h:~# "
    assert wire.parse_chunk(stream, MARKER, 2).data == payload


def test_a_kernel_message_inside_a_payload_is_cut_out() -> None:
    data = bytes(range(256)) * 50
    whole = frame(data, 0)
    for cut in (len(MARKER) + 5, len(whole) // 2, len(whole) - 30):
        damaged = whole[:cut] + KMSG + whole[cut:]
        reader = wire.Reader()
        reader.feed(damaged)
        found = reader.find(wire.chunk_end(MARKER, 0))
        assert found is not None
        assert wire.parse_chunk(found.group(0), MARKER, 0).data == data


def test_a_damaged_chunk_is_refused_not_guessed() -> None:
    data = b"0123456789" * 100
    whole = frame(data, 0)
    mid = len(whole) // 2
    damaged = whole[:mid] + b"XX" + whole[mid + 2 :]  # unknown noise: cannot be told apart
    assert wire.parse_chunk(damaged, MARKER, 0).data is None
    assert wire.parse_chunk(frame(data, 1), MARKER, 0).data is None  # another chunk's frame


def test_the_prompt_may_change_and_the_console_may_chatter() -> None:
    chatter = b"\r\n[root@other /]# \x1b]0;title\x07" + KMSG + b"bash-5.2$ "
    reader = wire.Reader()
    reader.feed(chatter + f"{MARKER}:size: 42\r\n".encode() + chatter)
    found = reader.find(wire.size_pattern(MARKER))
    assert found is not None and found.group(1) == b"42"


def recorded() -> list[Path]:
    return sorted(TRANSCRIPTS.glob("*.json"))


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
def test_recorded_transcripts(path: Path) -> None:
    """Every answer recorded on a console is found again, every chunk decodes to what came."""
    record = json.loads(path.read_text())
    assert record["answers"], "an empty recording proves nothing"
    kernel_lines = 0
    for answer in record["answers"]:
        raw = base64.b64decode(answer["raw"])
        kernel_lines += len(wire.KERNEL_LINE.findall(raw))
        pattern = re.compile(base64.b64decode(answer["pattern"]), re.DOTALL)
        reader = wire.Reader()
        reader.feed(raw)
        found = reader.find(pattern)
        assert found is not None
        assert found.group(0) == base64.b64decode(answer["match"])
        if "chunk" in answer:
            data = wire.parse_chunk(found.group(0), answer["marker"], answer["chunk"]).data
            assert data is not None
            assert wire.sha256_hex(data) == answer["sha256"]
    assert kernel_lines >= record.get("kernel_lines_at_least", 0)
