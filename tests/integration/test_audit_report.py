"""The report tells what happened: a kill -9, a resume, a rollback, notes; in md, json and html.

One run, three sessions: ``drp run`` killed with SIGKILL during step two (in doubt),
``drp resume --retry-in-doubt`` that runs two again and fails at three, rolling back
three, two and one (done in session 1), and ``drp log note``. The HTML report is
rendered by headless Chromium: its DOM and its painted bars are checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser.test_report_html import CHROMIUM, REQUIRED, chromium, png_pixels
from sshd import SshServer

from drp.report.html import COLORS
from integration.support import Lab, combined, kill_recorded, new_lab, read_pid

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("DRP_SIGN_KEY", "none")
    lab = new_lab(tmp_path, sshd)
    yield lab
    kill_recorded(tmp_path / "nap.pid")  # never leave a remote sleep behind


@pytest.fixture
def story(lab: Lab) -> str:
    """The run: killed, resumed (in-doubt step run again, rollback), noted."""
    book = lab.book("audit-story")
    process = lab.start("run", str(book), "-i", str(lab.inventory), "--state-dir", str(lab.state))
    pid = read_pid(lab.root / "nap.pid")
    os.killpg(process.pid, signal.SIGKILL)  # kill -9: no run.finished, step two in doubt
    process.wait(10)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    run_id = lab.only_run()
    (lab.root / "nap-short").touch()
    resumed = lab.drp("resume", run_id, "--retry-in-doubt")
    assert resumed.returncode == 1, combined(resumed)  # three failed, all rolled back
    assert "done earlier" in resumed.stdout  # the console summary: one was done in session 1
    order = (lab.root / "order").read_text().split()
    assert order == ["do-one", "do-two", "do-three", "undo-three", "undo-two", "undo-one"]
    note = lab.drp("log", "note", run_id, "--summary", "rolled back: disk three refused")
    assert note.returncode == 0, combined(note)
    return run_id


def test_the_markdown_and_json_reports_tell_every_session_rollback_and_decision(
    lab: Lab, story: str
) -> None:
    md = lab.drp("log", "report", story).stdout
    assert "session 1 (run)" in md and "ended without run.finished" in md  # the kill -9
    assert "session 2 (resume)" in md and "ended failed" in md
    assert "in doubt: started in session 1, no end recorded" in md
    assert "in doubt: run again (--retry-in-doubt)" in md
    for step in ("one", "two", "three"):
        assert f"rollback of {step}" in md
    assert "| 1 | h1 | one | ok, rolled back in session 2 |" in md  # done in session 1
    assert "| 1 | h1 | two | in doubt (no end recorded) |" in md
    assert "| 2 | h1 | two | ok, rolled back in session 2 |" in md
    assert "skipped" not in md  # nothing was skipped: one was done, by session 1
    assert "**Summary**: rolled back: disk three refused" in md
    assert "OS user " in md  # the facts beside the --operator label
    data = json.loads(lab.drp("log", "report", story, "--format", "json").stdout)
    assert [s["outcome"] for s in data["sessions"]] == [
        "without run.finished (killed, crashed or still running)",
        "failed",
        "note",
    ]
    assert [r["step"] for r in data["rollbacks"]] == ["three", "two", "one"]
    assert all(r["outcome"] == "rolled-back" for r in data["rollbacks"])
    assert data["started"].endswith("Z") and "T" in data["started"]
    show = lab.drp("log", "show", story).stdout
    assert "rolled back in session 2" in show and "skipped" not in show


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists() and not REQUIRED, reason="needs /usr/bin/chromium")
def test_the_html_report_shows_them_in_chromium_with_their_bars(
    lab: Lab, story: str, tmp_path: Path
) -> None:
    html = tmp_path / "report.html"
    made = lab.drp("log", "report", story, "--format", "html", "--output", str(html))
    assert made.returncode == 0, combined(made)
    dom = chromium(tmp_path, "--dump-dom", html.as_uri()).stdout
    bars = dom.count('class="bar"')
    assert bars == 7  # one, two (in doubt), two again, three, and three rollbacks
    assert dom.count('data-kind="rollback"') == 3
    assert dom.count('data-outcome="rolled-back"') == 3
    assert 'data-step="two" data-kind="run" data-session="1" data-outcome="in doubt"' in dom
    assert 'data-step="one" data-kind="run" data-session="1" data-outcome="ok"' in dom
    assert "ended without run.finished" in dom and "run again (--retry-in-doubt)" in dom
    assert "rolled back: disk three refused" in dom
    png = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,1400", html.as_uri())
    _, _, colors = png_pixels(png.read_bytes())
    for outcome in ("ok", "failed", "rolled-back"):  # the bars were painted
        assert bytes.fromhex(COLORS[outcome][1:]) in colors, outcome
