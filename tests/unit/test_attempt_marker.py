"""The attempt marker the SSH wrapper leaves, run by a real ``/bin/sh`` on this machine.

The wrapper is what every step costs on the host, so after the first command of a
run it must use shell built-ins only; the session's last command sweeps.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from drp.transport.attempts import NO_MARK, bootstrap, frame, new_end, parse_probe, probe_command

RUN = "run-marker-test"


def _wrapped(home: Path, script: str, token: str, *, path: str, last: bool = False) -> str:
    end = new_end()
    line = bootstrap(RUN, token, "s action 1", None, end, last=last)
    done = subprocess.run(
        ["/bin/sh", "-c", line],
        input=frame(script, end).encode(),
        capture_output=True,
        env={"HOME": str(home), "PATH": path},
        check=False,
        timeout=30,
    )
    assert NO_MARK.encode() not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def test_after_the_first_command_the_marker_costs_no_program(tmp_path: Path) -> None:
    markers = tmp_path / ".drp" / "attempts" / RUN
    _wrapped(tmp_path, "true", "first", path=os.defpath)  # makes the directory
    assert oct(markers.stat().st_mode & 0o777) == "0o700"
    # no program can start now: the marker is still written, read and emptied
    seen = _wrapped(
        tmp_path, 'IFS= read -r l < "$__drp_m"; printf "%s\\n" "$l"', "second", path="/nonexistent"
    )
    pid, user, label = seen.strip().split("\t")
    assert pid.isdigit() and (user, label) == ("-", "s action 1")
    assert (markers / "second").read_bytes() == b""  # emptied as the command ended


def test_the_last_command_removes_the_sessions_marker(tmp_path: Path) -> None:
    markers = tmp_path / ".drp" / "attempts" / RUN
    for _ in range(3):  # one session: its commands reuse one marker
        _wrapped(tmp_path, "true", "mine", path=os.defpath)
    assert [p.name for p in markers.iterdir()] == ["mine"]
    _wrapped(tmp_path, "true", "mine", path=os.defpath, last=True)
    assert not markers.exists()  # nothing of the run is left in ~/.drp/attempts
    _wrapped(tmp_path, "true", "other", path=os.defpath)  # a session still going on
    (markers / "kept").write_text("999999999\t-\tx action 1\n")  # an attempt that may run
    _wrapped(tmp_path, "true", "mine", path=os.defpath, last=True)
    assert sorted(p.name for p in markers.iterdir()) == ["kept", "other"]
    # what resume's probe makes of them: group 999999999 does not exist, "other" ended
    probe = subprocess.run(
        ["/bin/sh", "-c", probe_command(RUN)],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": os.defpath},
        check=True,
    )
    assert parse_probe(probe.stdout) == [] and not markers.exists()


def test_a_marker_directory_removed_under_a_command_keeps_its_exit_status(
    tmp_path: Path,
) -> None:
    # another session of the same login (same run, same user: hosts that are one
    # machine) removed the directory: the command's own exit status still comes back
    end = new_end()
    line = bootstrap(RUN, "mine", "s action 1", None, end)
    done = subprocess.run(
        ["/bin/sh", "-c", line],
        input=frame('rm -rf "$__drp_d"; exit 5', end).encode(),
        capture_output=True,
        env={"HOME": str(tmp_path), "PATH": os.defpath},
        check=False,
        timeout=30,
    )
    assert done.returncode == 5 and b"cannot create" not in done.stderr, done.stderr
