"""``drp console HOST``: an interactive session on a host's serial console, journaled.

drp logs in (the password from the inventory's ``password_env``, else asked
here), hands the terminal to the operator until Ctrl-], then logs out and waits
for the login prompt. The journal records who, when and for how long: never
what was typed or shown.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import termios
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import typer

from drp.cli.common import InventoryOption, StateDirOption, open_inventory
from drp.engine.events import Event, EventType
from drp.engine.options import default_operator
from drp.errors import InputError
from drp.journal import JournalWriter, new_run_id, run_dir, state_dir


def console(
    host: str = typer.Argument(..., help="Inventory host whose serial console to open."),
    inventory: Path = InventoryOption,
    state: Path = StateDirOption,
    operator: str = typer.Option(None, "--operator", help="Who is at the keyboard (journaled)."),
) -> None:
    """Open an interactive session on HOST's serial console (Ctrl-] ends it).

    drp logs in, gives you the shell, and logs out when you leave. The session
    is journaled (who, when, how long), the keystrokes are not.

    Example: drp console db1 -i inventory/prod.yaml
    """
    from drp.transport.console import ConsoleTransport, console_password

    target = open_inventory(inventory).get(host)
    if target.console is None:
        raise InputError(f"{host} has no console: in the inventory (docs/runbooks.md)")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InputError("drp console needs a terminal")
    password = console_password(target.console)
    if password is None:
        password = str(
            typer.prompt(f"{host} console password for {target.console.user}", hide_input=True)
        )
    who = operator or default_operator()
    run_id = new_run_id("console")
    writer = JournalWriter.create(run_dir(state_dir(state), run_id), who)
    writer.append(
        Event(
            EventType.RUN_STARTED,
            run_id,
            data={
                "runbook": "console",
                "targets": [host],
                "console": target.console.where,
                "command_line": shlex.join(["drp", *sys.argv[1:]]),
            },
        )
    )
    transport = ConsoleTransport(target, password=password)
    began, outcome = time.monotonic(), "failed"
    try:
        info = transport.connect()
        writer.append(
            Event(
                EventType.HOST_CONNECTED,
                run_id,
                host=host,
                data={"address": info.address, "port": 0, "via_console": True},
            )
        )
        typer.echo(f"{host}: serial console {info.address}; Ctrl-] ends the session")
        with _raw(sys.stdin.fileno()):
            transport.attach(sys.stdin.fileno(), sys.stdout.fileno())
        outcome = "ok"
    finally:
        transport.close()
        writer.append(
            Event(
                EventType.RUN_FINISHED,
                run_id,
                outcome=outcome,
                duration=round(time.monotonic() - began, 1),
                data={"hosts": {host: outcome}},
            )
        )
        writer.close()
    typer.echo(f"\n{host}: logged out; session journaled as {run_id}")


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def register(app: typer.Typer) -> None:
    app.command("console")(console)
