"""Against a real sshd: ``drp resume`` never writes through a link planted in the state
directory, and refuses a state directory others can write (issue 16, class 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


@pytest.mark.parametrize("planted", [".lock", "events.jsonl"])
def test_resume_refuses_a_planted_link_and_leaves_its_target_alone(lab: Lab, planted: str) -> None:
    paused = lab.run(lab.book("gate"))
    assert paused.returncode == 5, combined(paused)
    run_id = lab.only_run()
    victim = lab.root / "victim"
    link = lab.state / "runs" / run_id / planted
    victim.write_bytes(link.read_bytes() if planted == "events.jsonl" else b"precious\n")
    before = victim.read_bytes()
    link.unlink()
    link.symlink_to(victim)
    resumed = lab.drp("resume", run_id, "--approve", "swap-disk")
    assert resumed.returncode == 6, combined(resumed)
    assert "is a symbolic link" in combined(resumed)
    assert victim.read_bytes() == before
    assert "finished" not in (lab.root / "order").read_text()


def test_a_world_writable_state_dir_is_refused_before_any_host(lab: Lab) -> None:
    lab.state.mkdir(mode=0o700)
    lab.state.chmod(0o777)
    result = lab.run(lab.book("gate"))
    assert result.returncode == 6, combined(result)
    assert "writable by every user" in combined(result)
    assert not (lab.root / "order").exists()
