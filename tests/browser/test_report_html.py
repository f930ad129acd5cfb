"""The HTML report rendered by real headless Chromium: DOM has the chart, pixels are not blank."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from drp.report import load_run, report
from drp.report.html import COLORS
from drp.report.incident import incident_report, load_incident
from drp.report.incident_sample import DISK, INCIDENT, KERNEL, OTHER, write_incident_sample
from drp.report.sample import SAMPLE_RUN, write_sample

CHROMIUM = Path("/usr/bin/chromium")
# scripts/test (CI) sets DRP_BROWSER_REQUIRED=1: a missing browser fails instead of skipping
REQUIRED = os.environ.get("DRP_BROWSER_REQUIRED") == "1"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not REQUIRED,
        reason="needs /usr/bin/chromium (apt install chromium)",
    ),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the set of distinct pixels of an 8-bit RGB/RGBA PNG (sampled rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and ctype in (2, 6)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colors = bytearray(stride), set()
    for y in range(height):
        ftype, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        if y % 8 == 0:
            colors.update(bytes(line[i : i + 3]) for i in range(0, stride, bpp * 4))
        prev = line
    return width, height, colors


@pytest.fixture
def html_file(tmp_path: Path) -> Path:
    write_sample(tmp_path / "state")
    out = tmp_path / "report.html"
    out.write_text(report(load_run(tmp_path / "state", SAMPLE_RUN), "html"), encoding="utf-8")
    return out


def test_dom_has_timeline_and_rows(html_file: Path, tmp_path: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", html_file.as_uri()).stdout
    assert '<svg id="timeline"' in dom
    assert dom.count('class="bar"') == 8  # the gate: paused in session 1, approved in 2
    assert 'data-step="datacenter-swap"' in dom and 'class="gap"' in dom
    assert dom.count('class="step-row"') == 8
    assert "approved" in dom and "bob@desk" in dom
    assert "<script>alert" not in dom  # journal content stayed text


def test_screenshot_is_not_blank(html_file: Path, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,900", html_file.as_uri())
    data = png.read_bytes()
    assert len(data) > 10_000
    width, height, colors = png_pixels(data)
    assert (width, height) == (1280, 900)
    assert len(colors) > 20  # text, table borders, coloured bars: not one flat colour
    # the timeline's bars were painted: ok (green), changed (blue), failed (red)
    for status in ("ok", "changed", "failed"):
        assert bytes.fromhex(COLORS[status][1:]) in colors, status


@pytest.fixture
def incident_html(tmp_path: Path) -> Path:
    write_incident_sample(tmp_path / "state")
    out = tmp_path / "incident.html"
    out.write_text(incident_report(load_incident(tmp_path / "state", INCIDENT), "html"))
    return out


def test_incident_report_dom_has_one_timeline_of_both_runs(
    incident_html: Path, tmp_path: Path
) -> None:
    dom = chromium(tmp_path, "--dump-dom", incident_html.as_uri()).stdout
    assert dom.count('<svg id="timeline"') == 1
    assert dom.count('class="bar"') == 7  # both runs' steps and the rollback, in one chart
    assert f'data-run="{KERNEL}"' in dom and f'data-run="{DISK}"' in dom
    assert dom.count('class="gap"') == 2  # the day at the gate, the hours nobody worked
    assert "nobody working 1h59m" in dom and "human wait 19h59m" in dom
    assert dom.count('class="run-row"') == 2 and dom.count('class="path"') == 3
    assert OTHER not in dom  # another incident's run


def test_incident_report_screenshot_shows_the_timeline_unbroken(
    incident_html: Path, tmp_path: Path
) -> None:
    png = tmp_path / "incident.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,1100", incident_html.as_uri())
    width, height, colors = png_pixels(png.read_bytes())
    assert (width, height) == (1280, 1100)
    assert len(colors) > 20
    # the chart was painted in view: its bars (ok, failed, rolled back, paused) and its gaps
    for status in ("ok", "failed", "rolled-back", "paused"):
        assert bytes.fromhex(COLORS[status][1:]) in colors, status
    assert bytes.fromhex("fff4d6") in colors  # a collapsed gap's fill
    # no broken layout: the chart fits the page (nothing pushed off to the right)
    dom = chromium(tmp_path, "--dump-dom", incident_html.as_uri()).stdout
    svg_width = float(dom.split('<svg id="timeline"', 1)[1].split('width="', 1)[1].split('"')[0])
    assert svg_width <= width - 2 * 24  # the body's margins
