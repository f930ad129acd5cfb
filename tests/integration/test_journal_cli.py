"""The journal after damage: a torn tail is survivable, an edited record is detected."""

from __future__ import annotations

from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def test_torn_journal_tail_warns_then_resume_and_verify_work(lab: Lab) -> None:
    assert lab.run(lab.book("gate")).returncode == 5
    run_id = lab.only_run()
    path = lab.journal_file(run_id)
    content = path.read_bytes()
    last_start = content.rstrip(b"\n").rfind(b"\n") + 1
    cut = last_start + (len(content) - last_start) // 2
    # the process "died" mid-line, writing one more record: a record already written and
    # witnessed (the index holds the session's head) cannot be torn, only cut
    path.write_bytes(content + content[last_start:cut])

    shown = lab.drp("log", "show", run_id)
    assert shown.returncode == 0, combined(shown)
    assert "warning" in combined(shown).lower()
    assert "swap-disk" in shown.stdout

    resumed = lab.drp("resume", run_id, "--approve", "swap-disk")
    assert resumed.returncode == 0, combined(resumed)
    assert "torn" in resumed.stderr
    assert (lab.root / "order").read_text().split() == ["prepared", "finished"]

    verify = lab.drp("log", "verify", run_id)
    assert verify.returncode == 0, combined(verify)
    assert list(path.parent.glob("events.jsonl.torn-*"))


def test_editing_one_byte_of_a_past_record_fails_verify(lab: Lab) -> None:
    assert lab.run(lab.book("hello")).returncode == 0
    run_id = lab.only_run()
    assert lab.drp("log", "verify", run_id).returncode == 0
    path = lab.journal_file(run_id)
    lines = path.read_bytes().split(b"\n")
    target = next(i for i, line in enumerate(lines) if b'"type":"step.finished"' in line)
    assert b'"outcome":"ok"' in lines[target]
    lines[target] = lines[target].replace(b'"outcome":"ok"', b'"outcome":"ko"', 1)
    path.write_bytes(b"\n".join(lines))

    verify = lab.drp("log", "verify", run_id)
    assert verify.returncode == 6, combined(verify)
    assert f"line {target + 1}" in combined(verify)


def test_editing_one_byte_of_the_last_record_fails_verify_and_resume(lab: Lab) -> None:
    assert lab.run(lab.book("gate")).returncode == 5
    run_id = lab.only_run()
    path = lab.journal_file(run_id)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and b'"type":"run.finished"' in lines[-2]
    number = len(lines) - 1
    lines[-2] = lines[-2].replace(b'"outcome":"paused"', b'"outcome":"passed"', 1)
    edited = b"\n".join(lines)  # the edited last line keeps its newline: not a torn write
    path.write_bytes(edited)

    verify = lab.drp("log", "verify", run_id)
    assert verify.returncode == 6, combined(verify)
    assert f"line {number}" in combined(verify) and "edited" in combined(verify)

    resumed = lab.drp("resume", run_id, "--approve", "swap-disk")
    assert resumed.returncode == 6, combined(resumed)
    assert "damaged" in resumed.stderr and f"line {number}" in resumed.stderr
    assert path.read_bytes() == edited  # left as evidence, nothing moved aside
    assert not list(path.parent.glob("events.jsonl.torn-*"))
    assert (lab.root / "order").read_text().split() == ["prepared"]


def test_journal_cut_at_a_line_boundary_is_caught_by_the_index_witness(lab: Lab) -> None:
    assert lab.run(lab.book("hello")).returncode == 0
    run_id = lab.only_run()
    verify = lab.drp("log", "verify", run_id)
    assert verify.returncode == 0 and "unfinished" not in combined(verify)
    path = lab.journal_file(run_id)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # run.finished removed, whole line

    verify = lab.drp("log", "verify", run_id)
    assert verify.returncode == 6, combined(verify)  # the chain alone cannot tell; the index can
    assert "unfinished" in verify.stdout and "index witness" in verify.stdout
    assert "cut from the end" in verify.stdout


def test_drp_run_keeps_its_journal_private(lab: Lab) -> None:
    assert not lab.state.exists()
    assert lab.run(lab.book("hello")).returncode == 0
    run_id = lab.only_run()
    path = lab.journal_file(run_id)
    for directory in (lab.state, path.parent.parent, path.parent):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    for file in path.parent.iterdir():
        assert file.stat().st_mode & 0o777 == 0o600, file
