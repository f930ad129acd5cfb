"""paramiko is imported without invoke, and invoke still imports normally afterwards."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_the_ssh_transport_does_not_load_invoke() -> None:
    out = _python(
        "import sys, drp.transport.ssh as s, paramiko.config as c\n"
        "print('invoke' in sys.modules, c.invoke is None, s.paramiko.SSHClient.__name__)\n"
        "import invoke\n"  # a later import (fabric) is not affected by the mark
        "print(sys.modules['invoke'] is invoke, hasattr(invoke, 'Context'))"
    )
    assert out.splitlines() == ["False True SSHClient", "True True"]


def test_an_already_loaded_invoke_is_left_to_paramiko() -> None:
    out = _python(
        "import invoke, drp.transport.ssh, paramiko.config as c\nprint(c.invoke is invoke)"
    )
    assert out == "True"
