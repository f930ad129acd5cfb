"""runbooks/files/dns-zone.sh, the SOA serial tool the DNS runbooks upload.

Run with the system's POSIX ``sh`` and ``awk`` (dash and mawk on Debian), as on
the server. Needs neither named nor sshd, so it is marked ``dns`` only.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.dns]

TOOL = Path(__file__).resolve().parents[2] / "runbooks" / "files" / "dns-zone.sh"

MULTILINE = """\
$TTL 3600
; a comment that says SOA 1 2 3 must not count
@   IN  SOA ns1.example.org. hostmaster.example.org. (
        2024010101 ; serial, YYYYMMDDnn
        3600 900 604800 300 )
    IN  NS  ns1
soa IN  A   192.0.2.9
www IN  A   192.0.2.10 ; 2024010101 here is not the serial
"""

ONE_LINE = "example.org. 300 IN SOA ns1.example.org. host\\.master.example.org. 7 1 2 3 4\n"


def tool(*args: str, today: str = "20260315") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRP_DNS_TODAY": today}
    return subprocess.run(
        ["sh", str(TOOL), *args], capture_output=True, text=True, env=env, check=False
    )


def out(*args: str, today: str = "20260315") -> str:
    result = tool(*args, today=today)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "example.org.zone"
    path.write_text(MULTILINE)
    return path


def test_serial_across_parentheses_and_comments(zone: Path, tmp_path: Path) -> None:
    assert out("serial", str(zone)) == "2024010101"
    one = tmp_path / "one.zone"
    one.write_text(ONE_LINE)
    assert out("serial", str(one)) == "7"


@pytest.mark.parametrize(
    ("current", "today", "expected"),
    [
        ("2024010101", "20260315", "2026031500"),  # an older date: today's first serial
        ("2026031500", "20260315", "2026031501"),  # a second change the same day
        ("2026031541", "20260315", "2026031542"),
        ("2026031599", "20260315", "2026031600"),  # 100 changes in a day: still greater
        ("2099123199", "20260315", "2099123200"),  # already in the future: + 1
        ("7", "20260315", "2026031500"),  # a small counter becomes date-based
        ("4294967294", "20260315", "4294967295"),
    ],
)
def test_next_serial_is_date_based_and_strictly_greater(
    current: str, today: str, expected: str
) -> None:
    assert out("next", current, today=today) == expected


def test_next_serial_refuses_to_wrap() -> None:
    result = tool("next", "4294967295")
    assert result.returncode == 2
    assert "4294967295" in result.stderr


def test_same_ignores_only_the_serial(zone: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.zone"
    other.write_text(MULTILINE.replace("2024010101 ; serial", "2026031502 ; serial"))
    assert tool("same", str(zone), str(other)).returncode == 0
    other.write_text(MULTILINE.replace("192.0.2.10", "198.51.100.10"))
    assert tool("same", str(zone), str(other)).returncode == 1
    assert tool("same", str(zone), str(tmp_path / "missing")).returncode == 1


def test_stage_keeps_every_byte_but_the_serial_and_the_live_file_mode(
    zone: Path, tmp_path: Path
) -> None:
    variant = tmp_path / "variant.zone"
    variant.write_text(MULTILINE.replace("192.0.2.10", "198.51.100.10"))
    zone.chmod(0o640)

    assert out("stage", str(variant), str(zone)) == "serial 2024010101 -> 2026031500"

    staged = Path(f"{zone}.drp-new")
    expected = variant.read_text().replace("2024010101 ; serial", "2026031500 ; serial")
    assert staged.read_text() == expected
    assert "192.0.2.10 ; 2024010101 here" not in staged.read_text()
    assert stat.S_IMODE(staged.stat().st_mode) == 0o640
    assert zone.read_text() == MULTILINE, "the live file is not touched"


def test_stage_goes_above_a_higher_served_serial(zone: Path, tmp_path: Path) -> None:
    variant = tmp_path / "variant.zone"
    variant.write_text(MULTILINE)
    assert out("stage", str(variant), str(zone), "2026031507") == "serial 2024010101 -> 2026031508"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("www IN A 192.0.2.10\n", "cannot find the SOA serial"),
        ("@ IN SOA ns1. host. ( abc 1 2 3 4 )\n", "cannot find the SOA serial"),
    ],
)
def test_errors_are_clear(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.zone"
    bad.write_text(text)
    result = tool("serial", str(bad))
    assert result.returncode == 2
    assert message in result.stderr
    assert tool("stage", str(bad), str(bad)).returncode == 2
    assert not Path(f"{bad}.drp-new").exists()
    assert tool("stage", str(bad), str(bad), "12x").returncode == 2
