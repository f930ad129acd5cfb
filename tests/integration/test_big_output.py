"""A step that prints a lot: bounded in memory, capped in the journal, whole in a spill file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration

LINES = 400_000  # seq 1 400000: about 2.7 MB, several times what memory keeps

BOOK = f"""\
name: big-output
targets: all
steps:
  - id: loud
    run: seq 1 {LINES}
    capture:
      everything:
  - id: after
    run: echo "{{{{ captures.everything | length }}}}" > {{{{ vars.dir }}}}/capture-length
"""


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def test_a_big_output_is_capped_in_the_journal_and_whole_in_the_spill_file(lab: Lab) -> None:
    result = lab.run(lab.runbook(BOOK))
    assert result.returncode == 0, combined(result)
    run_id = lab.only_run()
    attempt = lab.of(run_id, "step.attempt", step="loud")[-1]
    stdout = attempt["data"]["stdout"]
    assert len(stdout) < 40_000 and "characters cut" in stdout  # the journal marks the cut
    assert stdout.startswith("1\n2\n3\n") and stdout.endswith(f"{LINES - 1}\n{LINES}\n")
    captured = lab.of(run_id, "step.finished", step="loud")[-1]["data"]["captures"]["everything"]
    assert len(captured) < 20_000 and "characters cut from this capture" in captured
    assert len(lab.journal_file(run_id).read_bytes()) < 200_000

    spilled = Path(attempt["data"]["output_file"])
    assert spilled.parent == lab.state / "runs" / run_id / "output"
    assert stat.S_IMODE(spilled.stat().st_mode) == 0o600
    lines = spilled.read_text().splitlines()
    assert lines == [str(n) for n in range(1, LINES + 1)]  # every line, in order
    # what the run itself used of the capture: the head and tail memory kept, marked
    assert int((lab.root / "capture-length").read_text()) < 600_000
    assert json.dumps(attempt)  # the record is plain JSON
