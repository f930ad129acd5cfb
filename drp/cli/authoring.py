"""Commands for runbook authors: ``validate``, ``list``, ``show``, ``schema``.

None of them touches the network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from drp.cli.common import RunbookPathOption, echo_json, listing_console, open_runbook
from drp.cli.console import make_console
from drp.cli.run import FormatOption
from drp.errors import ExitCode, InputError, Problem

_INVENTORY_KEYS = frozenset({"hosts", "groups", "known_hosts", "ssh_config"})  # not a runbook's


def _kind(path: Path) -> str:
    """'runbook', 'inventory', 'Ansible inventory' or 'steps' (an include file), judged
    from the top-level keys (an INI file, a directory or a script: Ansible's)."""
    from drp.inventory.ansible import sniff

    try:
        source = sniff(path)
    except InputError:
        return "runbook"  # let the runbook loader report it
    if source is None:
        return "Ansible inventory"
    data = source.data
    if isinstance(data, dict) and set(data) & _INVENTORY_KEYS and "steps" not in data:
        return "inventory"
    if isinstance(data, list) or (isinstance(data, dict) and set(data) == {"steps"}):
        return "steps"  # a runbook that forgot name: is still a runbook, told name: is missing
    return "runbook"


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            out.append(path)
    return out


def validate(
    paths: list[Path] = typer.Argument(None, help="Runbook or inventory files, or directories."),
    search: list[str] = RunbookPathOption,
) -> None:
    """Check runbooks and inventories and report every problem with file:line:column.

    With no PATH, checks every runbook drp can find (see 'drp list').

    Example: drp validate runbooks/ inventory/example.yaml
    """
    from drp.inventory import load_inventory
    from drp.runbook.catalog import entries
    from drp.runbook.loader import load_runbook, load_steps

    console = make_console()
    files = _files(paths) if paths else [e.path for e in entries(search)]
    problems: list[Problem] = []
    for path in files:
        kind = _kind(path) if path.exists() else "runbook"
        try:
            if kind.endswith("inventory"):
                inventory = load_inventory(path)
                kind = f"{kind}, {len(inventory.hosts)} hosts, {len(inventory.groups)} groups"
            elif kind == "steps":
                load_steps(path)
            else:
                load_runbook(path)
        except InputError as error:
            problems += error.problems
            console.print(f"[red]✗[/] {escape(str(path))}: {len(error.problems)} problem(s)")
            continue
        if kind == "steps":
            console.print(
                f"[green]✓[/] {escape(str(path))} (step list; its params, captures "
                "and files are checked where it is included)"
            )
        else:
            console.print(f"[green]✓[/] {escape(str(path))} ({kind})")
    if problems:
        raise InputError(problems)


def reflow(text: str) -> str:
    """Prose written pre-wrapped in YAML, joined into paragraphs the terminal wraps.

    Blank lines part paragraphs; a line that starts with a space, ``-``, ``*`` or
    ``N.`` (a list, an example, a table) keeps its own line, as written.
    """
    out: list[str] = []
    for paragraph in text.strip().split("\n\n"):
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not _kept(line) and not _kept(lines[-1]):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _kept(line: str) -> bool:
    """A list item or an indented line: what follows it starts its own line."""
    return re.match(r"^(\s|[-*] |\d+[.)] )", line) is not None


def list_runbooks(search: list[str] = RunbookPathOption, fmt: str = FormatOption) -> None:
    """List the runbooks drp can find: built-in ones and those on DRP_RUNBOOK_PATH.

    Reads only what it prints (each file's summary:); 'drp validate' checks them.

    Example: drp list --format json
    """
    from drp.runbook.catalog import entries, read_summary

    found = [(entry, read_summary(entry.path)) for entry in entries(search)]
    if fmt == "json":
        echo_json(
            [
                {
                    "name": e.name,
                    "summary": s or "",
                    "origin": e.origin,
                    "status": e.status,
                    "path": str(e.path),
                    "readable": s is not None,
                }
                for e, s in found
            ]
        )
        return
    table = Table("runbook", "summary", "origin", "status", "path")
    for entry, summary in found:
        shown = escape(summary) if summary is not None else "[red]no summary: run drp validate[/]"
        status = escape(entry.status)
        status = f"[yellow]{status}[/]" if entry.status.startswith("DRAFT") else status
        table.add_row(escape(entry.name), shown, entry.origin, status, escape(str(entry.path)))
    listing_console().print(table)


def show(
    runbook: str = typer.Argument(..., help="Runbook name or path."),
    search: list[str] = RunbookPathOption,
) -> None:
    """Describe a runbook: what it does, its params and its steps.

    Example: drp show disk-replace
    """
    from drp.redact import MASK

    console = make_console()
    book = open_runbook(runbook, search)
    console.print(
        f"[bold]{book.name}[/]: {escape(book.summary)}\n[dim]{escape(book.path)}  "
        f"sha256 {book.sha256[:12]}…[/]"
    )
    if book.description:
        console.print(escape(reflow(book.description)))
    if book.params:
        table = Table(
            "param", "type", "required", "default", "help", title="params", title_justify="left"
        )
        for name, param in book.params.items():
            kind = param.type.value + (f" {param.choices}" if param.choices else "")
            kind += " (secret)" if param.secret else ""
            table.add_row(
                name,
                escape(kind),
                "yes" if param.required else "",
                ""
                if param.default is None
                else MASK
                if param.secret
                else escape(str(param.default)),
                escape(param.help),
            )
        console.print(table)
    table = Table("#", "step", "kind", "what", "notes", title="steps", title_justify="left")
    for index, step in enumerate(book.steps, 1):
        notes = ", ".join(
            n
            for n in (
                "destructive" if step.destructive else "",
                "guarded" if step.unless else "",
                f"when {step.when}" if step.when else "",
                "rollback" if step.rollback else "",
            )
            if n
        )
        table.add_row(str(index), step.id, step.kind, escape(step.title), escape(notes))
    console.print(table)


def schema(
    inventory: bool = typer.Option(False, "--inventory", help="The inventory schema instead."),
) -> None:
    """Print the JSON Schema of runbook files (or inventories) for editors.

    Example: drp schema > drp-runbook.schema.json
    """
    typer.echo(json.dumps(schema_document(inventory=inventory), indent=2))


def schema_document(*, inventory: bool = False) -> dict[str, object]:
    """The JSON Schema of runbooks (or inventories), as ``drp schema`` prints it."""
    from drp.inventory.model import InventoryFile
    from drp.runbook.model import RunbookSpec

    model = InventoryFile if inventory else RunbookSpec
    document = model.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "drp inventory" if inventory else "drp runbook"
    return document


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("list")(list_runbooks)
    app.command("show")(show)
    app.command("schema")(schema)


__all__ = ["ExitCode", "register"]
