"""Options and loaders shared by the commands: inventory, runbook, params, state dir."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from drp.errors import InventoryError, ParamError, Problem
from drp.journal.incident import ENV_INCIDENT, validate_incident

if TYPE_CHECKING:  # the models import pydantic and Jinja2: loaded when a command needs them
    from collections.abc import Callable

    from rich.console import Console

    from drp.inventory import Host, Inventory
    from drp.results import CommandResult
    from drp.runbook.loader import Runbook
    from drp.runbook.model import Param
    from drp.runbook.params import Origin, Params
    from drp.transport.base import Transport

ENV_INVENTORY = "DRP_INVENTORY"
ENV_PARAM_PREFIX = "DRP_PARAM_"  # DRP_PARAM_TOKEN=... gives param ``token`` (kept out of argv)
DEFAULT_INVENTORY = "inventory.yaml"

InventoryOption = typer.Option(
    None,
    "--inventory",
    "-i",
    envvar=ENV_INVENTORY,
    help=f"Inventory file (default: ./{DEFAULT_INVENTORY}; env {ENV_INVENTORY}).",
)
StateDirOption = typer.Option(
    None,
    "--state-dir",
    envvar="DRP_STATE_DIR",
    help="Where run journals live (default: the user's data dir; env DRP_STATE_DIR).",
)
ParamOption = typer.Option(None, "--param", "-p", help="NAME=VALUE; repeat for several params.")
ParamsFileOption = typer.Option(None, "--params-file", help="YAML mapping of param values.")
RunbookPathOption = typer.Option(
    None, "--runbook-path", help="Extra directory to search for runbooks (repeatable)."
)
IncidentOption = typer.Option(
    None,
    "--incident",
    help=f"Tag the run with this incident id, e.g. 2019-09-disk (env {ENV_INCIDENT}).",
    show_default=False,
)


def incident_given(flag: str | None) -> str | None:
    """The incident id of ``--incident``, else of ``$DRP_INCIDENT`` (set once per shell),
    checked and located at the one it came from; ``None`` when neither is set."""
    if flag is not None:
        return validate_incident(flag, "--incident")
    env = os.environ.get(ENV_INCIDENT)
    return validate_incident(env, f"${ENV_INCIDENT}") if env else None


def listing_console() -> Console:
    """A console for tables that are read and copied: on a terminal, its width; into a pipe
    or a file, no width at all, so nothing (a run id, a resume command) is cut or wrapped."""
    from drp.cli.console import make_console

    wide = None if sys.stdout.isatty() else 1_000_000
    return make_console(soft_wrap=True, width=wide)


def echo_json(data: object) -> None:
    import json

    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def startup_done() -> None:
    """Start-up is over: what exists now lives until the end, so the collector may resume.

    ``main()`` runs with the cyclic garbage collector off. A command that goes
    on for long (a run, a resume) calls this once everything is imported and
    loaded: the objects so far are frozen (later collections skip them) and
    collection resumes for the hours a run may last. A no-op when the collector
    was on (the command runs inside another program, e.g. the tests).
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def inventory_path(value: Path | None) -> Path:
    path = value or Path(DEFAULT_INVENTORY)
    if not path.exists():
        raise InventoryError(
            [
                Problem(
                    str(path),
                    None,
                    None,
                    "",
                    "inventory file not found",
                    "pass --inventory FILE or set DRP_INVENTORY (example: inventory/example.yaml)",
                )
            ]
        )
    return path


def open_inventory(value: Path | None) -> Inventory:
    from drp.inventory import load_inventory

    return load_inventory(inventory_path(value))


def open_runbook(name: str, search: list[str] | None = None) -> Runbook:
    from drp.runbook.catalog import locate
    from drp.runbook.loader import load_runbook

    return load_runbook(locate(name, search))


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("CI")


def _prompt(name: str, param: Param) -> str:
    label = f"{name} ({param.help or param.type.value})"
    return str(typer.prompt(label, hide_input=param.secret))


def gather_params(
    runbook: Runbook,
    assignments: list[str] | None,
    params_file: Path | None,
    inventory: Inventory | None,
    *,
    base: dict[str, Any] | None = None,
) -> Params:
    """Params from (lowest first) ``base``, the environment (``DRP_PARAM_NAME``), a params
    file, ``--param``; prompt when interactive."""
    from drp.runbook.params import parse_assignments, resolve_params

    given: dict[str, Any] = dict(base or {})
    for name in runbook.params:
        from_env = os.environ.get(param_env(name))
        if from_env is not None:
            given[name] = from_env
    origins: dict[str, Origin] = {}
    if params_file is not None:
        from_file, origins = _read_params_file(params_file)
        given.update(from_file)
    assigned = parse_assignments(assignments or [])
    given.update(assigned)
    for name in assigned:  # --param wins: a problem with it is not in the file
        origins.pop(name, None)
    prompt = _prompt if interactive() else None
    return resolve_params(runbook, given, inventory, prompt, origins)


def param_env(name: str) -> str:
    """The environment variable that gives param ``name``: ``DRP_PARAM_`` and its name."""
    return ENV_PARAM_PREFIX + name.upper().replace("-", "_")


def secrets_on_command_line(runbook: Runbook, assignments: list[str] | None) -> list[str]:
    """Warnings for secret params given with ``--param``: ``ps`` and shell history show them."""
    from drp.runbook.params import parse_assignments

    given = parse_assignments(assignments or [])
    return [
        f"secret param {name!r} was given on the command line (--param), where the process "
        "list and the shell history show it: let drp prompt for it, or set "
        f"{param_env(name)} in the environment, or put it in a --params-file"
        for name, param in runbook.params.items()
        if param.secret and name in given
    ]


def _read_params_file(path: Path) -> tuple[dict[str, Any], dict[str, Origin]]:
    """The file's values, and where each is written (for located problems)."""
    from drp import yamlsrc

    source = yamlsrc.load(path)
    if not isinstance(source.data, dict):
        raise ParamError(
            [
                source.problem(
                    (), "a params file is a YAML mapping of NAME: VALUE", "e.g. failed: /dev/sdb"
                )
            ]
        )
    values = {str(k): v for k, v in source.data.items()}
    return values, {name: (source.path, *source.where((name,))) for name in values}


def dump_yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def as_root(
    transport: Transport, target: Host, password: str | None
) -> Callable[[str], CommandResult]:
    """Run commands on ``target`` as its lock is handled: as root through sudo when the
    host uses ``become``, else as the login (``drp unlock``, the host witnesses)."""
    from drp.engine.lock import lock_become
    from drp.transport.command import wrap_become

    root = lock_become(target)

    def on_host(command: str) -> CommandResult:
        line, stdin = command, None
        if root is not None and target.user != root.user:
            line, stdin = wrap_become(command, root, password)
        # one-off commands outside a run: each leaves no finished marker behind
        return transport.run(line, timeout=30, stdin=stdin, last=True)

    return on_host
