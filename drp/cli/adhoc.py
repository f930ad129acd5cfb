"""``drp exec PATTERN -- COMMAND``: one ad-hoc command on the matching hosts, in parallel.

For diagnostics during an incident (``drp exec databases -- cat /proc/mdstat``). It is
a run like any other, journaled and reviewable (``drp log show``): the command becomes
a one-step runbook (kept in the state dir, content-addressed, so ``drp log`` and
``drp resume`` find it), run with ``on_failure: continue`` so every host answers, and
without host locks, so it works beside a paused run that holds them. Each host's
output is printed after the run, from the journal.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from drp.cli.common import InventoryOption, StateDirOption
from drp.errors import ExitCode, InputError, Problem
from drp.results import RunStatus


def exec_command(
    pattern: str = typer.Argument(..., help="Hosts: an inventory pattern (db1, databases, 'db*')."),
    command: list[str] = typer.Argument(..., help="The command, after --."),
    become: bool = typer.Option(False, "--become", "-b", help="Run it through sudo."),
    inventory: Path = InventoryOption,
    forks: int = typer.Option(10, "--forks", min=1, max=500, help="Hosts in parallel."),
    operator: str = typer.Option(None, "--operator", help="Who runs this (default user@host)."),
    ask_become_pass: bool = typer.Option(
        False, "--ask-become-pass", "-K", help="Prompt for the sudo password."
    ),
    state: Path = StateDirOption,
) -> None:
    """Run one command on the hosts matching PATTERN, in parallel, journaled as a run.

    Example: drp exec databases -- cat /proc/mdstat
    """
    from drp.cli.common import open_inventory
    from drp.cli.run import (
        Output,
        become_password,
        execute_plan,
        exit_with_status,
        host_passwords,
        known_secrets,
    )
    from drp.engine.options import RunOptions, default_operator
    from drp.engine.plan import build_plan
    from drp.journal import JournalWriter, new_run_id, run_dir, state_dir
    from drp.runbook.loader import load_runbook
    from drp.runbook.params import resolve_params

    text = shlex.join(command) if len(command) > 1 else (command[0] if command else "")
    if not text.strip():
        raise InputError(
            [Problem("", None, None, "COMMAND", "no command", "drp exec db1 -- uptime")]
        )
    folder = state_dir(state)
    book = load_runbook(_adhoc_runbook(folder, pattern, text, become))
    inv = open_inventory(inventory)
    password = become_password(ask_become_pass)
    plan = build_plan(
        book,
        inv,
        resolve_params(book, {}, inv),
        targets=pattern,
        extra_secrets=known_secrets(inv, password),
    )
    run_id = new_run_id(book.name)
    options = RunOptions(
        run_id=run_id,
        operator=operator or default_operator(),
        forks=forks,
        sudo_password=password,
        host_sudo_passwords=host_passwords(inv),
        lock=False,  # diagnostics: beside a paused run that holds the hosts' locks
        command_line=shlex.join(["drp", *sys.argv[1:]]),
    )
    writer = JournalWriter.create(run_dir(folder, run_id), options.operator)
    finished = execute_plan(plan, options, writer, Output("text", quiet=True))
    failed = _print_outputs(run_dir(folder, run_id))
    if failed and finished.result.status is RunStatus.OK:  # on_failure: continue
        raise typer.Exit(int(ExitCode.STEP_FAILED))
    exit_with_status(finished)


def _adhoc_runbook(folder: Path, pattern: str, text: str, become: bool) -> Path:
    """The one-step runbook for ``text`` (the command as written: never a template)."""
    import hashlib

    import yaml

    document = {
        "name": "exec",
        "description": f"drp exec {pattern} -- {text}",
        "targets": pattern,
        "steps": [
            {
                "id": "exec",
                "name": "ad-hoc command",
                "run": "{% raw %}" + text + "{% endraw %}",
                "become": become,
                "on_failure": "continue",
            }
        ],
    }
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if "{% endraw %}" in text:
        raise InputError(
            [Problem("", None, None, "COMMAND", "the command holds '{% endraw %}'", "quote it")]
        )
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    path = folder / "adhoc" / f"exec-{digest}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return path


def _print_outputs(directory: Path) -> list[str]:
    """Each host's output, from the journal, as it finished; the hosts whose command failed."""
    from drp.journal import journal_path, read_journal

    failed: list[str] = []
    records = read_journal(journal_path(directory)).records
    for record in records:
        if record.type != "step.attempt" or record.data.get("phase") != "action":
            continue
        out = str(record.data.get("stdout") or "")
        err = str(record.data.get("stderr") or "")
        typer.echo(f"--- {record.host} (exit {record.exit_code})")
        if out:
            typer.echo(out.rstrip("\n"))
        if err:
            typer.echo(err.rstrip("\n"), err=True)
        if record.exit_code != 0:
            failed.append(str(record.host))
    return failed


def register(app: typer.Typer) -> None:
    app.command("exec")(exec_command)


__all__ = ["register"]
