"""No secret in any process's arguments, on the host or on the controller.

A step that uses a secret param runs long enough to be seen; meanwhile every
``/proc/*/cmdline`` of this machine (the loopback sshd is the host, and drp
runs here too) is scanned for the secret. A secret given with ``-p`` is
warned about: ``ps`` and the shell history show it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab, stop, wait_until

pytestmark = pytest.mark.integration

BOOK = """\
name: secret-sleeper
targets: all
params:
  token: {secret: true, required: true}
steps:
  - id: use
    run: |
      echo {{ params.token }} > /dev/null
      touch {{ vars.dir }}/use-started
      while [ ! -e {{ vars.dir }}/use-go ]; do sleep 0.1; done
  - id: here
    local: |
      echo {{ params.token }} > /dev/null
      touch {{ vars.dir }}/here-started
      while [ ! -e {{ vars.dir }}/here-go ]; do sleep 0.1; done
"""


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Iterator[Lab]:
    lab = new_lab(tmp_path, sshd)
    yield lab
    for name in ("use-go", "here-go"):
        (tmp_path / name).touch()  # the loops end


def _argv_holding(secret: str) -> list[str]:
    """Every process whose arguments hold ``secret``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes()
        except OSError:
            continue
        if secret.encode() in args:
            shown = args.replace(bytes(1), b" ")[:200]
            found.append(f"{cmdline.parent.name}: {shown!r}")
    return found


def test_a_secret_param_is_in_no_process_arguments(lab: Lab) -> None:
    secret = f"S3cr3t-{secrets.token_hex(8)}"
    book = lab.runbook(BOOK)
    params = lab.root / "params.yaml"
    params.write_text(f"token: {secret}\n")
    process = lab.start(
        "run", str(book), "-i", str(lab.inventory), "--state-dir", str(lab.state),
        "--params-file", str(params),
    )  # fmt: skip
    try:
        for step in ("use", "here"):  # on the host (ssh), then on the controller (local)
            started = lab.root / f"{step}-started"
            assert wait_until(started.exists, 30), f"step {step} never started"
            assert _argv_holding(secret) == []
            (lab.root / f"{step}-go").touch()
        out, err = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 0, out + err


def test_a_secret_param_given_with_p_is_warned_about(lab: Lab) -> None:
    book = lab.runbook(BOOK.replace("while", "true ||"))
    result = lab.run(book, "-p", "token=abc", "--dry-run")
    assert result.returncode == 0, combined(result)
    assert "secret param 'token' was given on the command line" in result.stderr
    assert "DRP_PARAM_TOKEN" in result.stderr and "--params-file" in result.stderr
    assert "abc" not in result.stderr
