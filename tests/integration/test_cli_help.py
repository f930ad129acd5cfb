"""``drp … --help`` through the installed CLI: plain value names, never Python types or
``%%``, and every option says what it is for."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest
import typer

from drp.cli.app import app
from drp.cli.helpstyle import tidy
from integration.support import DRP

pytestmark = pytest.mark.integration

PYTHON_TYPE = re.compile(r"<(bool|str|int|float|path|list\[[^\]]*\]|[a-z]+ range)>")


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(tidy(typer.main.get_command(app)))


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "drp")
def test_help_names_values_in_words(path: tuple[str, ...]) -> None:
    shown = subprocess.run(
        [DRP, *path, "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert shown.returncode == 0, shown.stderr
    assert not PYTHON_TYPE.search(shown.stdout), PYTHON_TYPE.search(shown.stdout)
    assert "%%" not in shown.stdout


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "drp")
def test_every_option_has_a_help_line(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    silent = [
        "/".join(param.opts)
        for param in command.params
        if getattr(param, "param_type_name", "") == "option" and not (param.help or "").strip()
    ]
    assert silent == []
