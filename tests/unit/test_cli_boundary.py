"""The CLI's error boundary: an unexpected exception is one line on stderr, exit 70, and a
private traceback file in the state dir that never holds local variables."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from streams import ClosedPipe

import drp.cli.app as cli


def test_an_internal_error_is_one_line_and_a_private_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(**_: object) -> None:
        password = "s3cr3t-local"  # a local variable: never written anywhere
        raise RuntimeError("boom " + str(len(password)))

    monkeypatch.setattr(cli, "app", broken)
    state = tmp_path / "state"
    with pytest.raises(SystemExit) as ended:
        cli.main(["log", "list", "--state-dir", str(state)])
    assert ended.value.code == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: boom 12" in err
    log = state / "drp-debug.log"
    assert str(log) in err
    text = log.read_text()
    assert "Traceback" in text and "RuntimeError: boom 12" in text
    assert "s3cr3t-local" not in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_the_traceback_file_is_never_written_through_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "app", broken)
    target = tmp_path / "not-yours"
    target.write_text("precious\n")
    (tmp_path / "drp-debug.log").symlink_to(target)
    with pytest.raises(SystemExit):
        cli.main([f"--state-dir={tmp_path}", "log", "list"])
    assert target.read_text() == "precious\n"


def test_a_flood_of_problems_fits_one_screen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = "".join(f"  - {{id: s{i}, run: 'true', tmeout: 5s}}\n" for i in range(60))
    book = tmp_path / "flood.yaml"
    book.write_text(f"name: flood\nsteps:\n{steps}")
    with pytest.raises(SystemExit) as ended:
        cli.main(["validate", str(book)])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 60 problems found\n")
    assert err.count("unknown key 'tmeout'") == cli.MAX_SHOWN
    assert "…and 10 more (fix these first)" in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # click words these messages; what is asserted is that the culprit is named
        (["run", "--bogus"], "--bogus"),
        (["run"], "runbook"),
        (["run", "disk-replace", "--forks", "many"], "--forks"),
        (["resume", "--bogus"], "--bogus"),
    ],
)
def test_a_bad_command_line_is_a_usage_error_never_an_internal_one(
    argv: list[str],
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # typer raises the ClickException of its own copy of click, whether or not click
    # itself is installed: the boundary must know that class, not click's
    monkeypatch.setenv("DRP_STATE_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert said in err.partition("Error")[2] and "drp" in err.partition("Error")[0]
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "drp-debug.log").exists()


@pytest.mark.parametrize("argv", [["schema"], ["log", "list"]])  # typer.echo; rich
def test_a_closed_stdout_ends_a_command_quietly_never_as_an_internal_error(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRP_STATE_DIR", str(tmp_path))
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    monkeypatch.setattr("sys.stderr", err := io.StringIO())
    with pytest.raises(SystemExit) as ended:
        cli.main(argv)  # `drp schema | head`: the reader has what it wanted
    assert ended.value.code == 0
    assert err.getvalue() == ""
    assert not (tmp_path / "drp-debug.log").exists()
