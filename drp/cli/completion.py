"""Shell completion (typer's own: ``drp --install-completion``) that knows drp's names.

:func:`attach` walks the command tree once and gives each parameter, by what it
names, a completer: runbook names (``drp run <TAB>``), the inventory's hosts and
groups (``-H``, ``-t``, ``-l``, ``drp inventory show``), run ids (``drp resume``,
``drp log show``), incident ids (``--incident``: those the runs started with) and,
after ``--approve``, the ids of the run's manual steps.
A completer never raises and never prints: a broken inventory completes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Completer = Callable[[Any, Any, str], list[Any]]


def attach(command: Any) -> Any:
    """Give the parameters of ``command`` and its sub-commands drp's completers."""
    for param in command.params:
        completer = _COMPLETERS.get(_key(param))
        if completer is not None and getattr(param, "_custom_shell_complete", None) is None:
            param._custom_shell_complete = _quiet(completer)
    for sub in getattr(command, "commands", {}).values():
        attach(sub)
    return command


def _key(param: Any) -> str:
    longest = max(getattr(param, "opts", None) or [param.name or ""], key=len)
    return str(longest).lstrip("-").replace("-", "_")


def _quiet(completer: Completer) -> Completer:
    def complete(ctx: Any, param: Any, incomplete: str) -> list[Any]:
        try:
            return [c for c in completer(ctx, param, incomplete) if str(c).startswith(incomplete)]
        except Exception:  # completion must never break the shell
            return []

    return complete


def _runbooks(ctx: Any, param: Any, incomplete: str) -> list[str]:
    from drp.runbook.catalog import entries

    search = ctx.params.get("search") or ctx.params.get("runbook_path")
    return sorted({entry.name for entry in entries(search)})


def _inventory(ctx: Any) -> Any:
    from drp.cli.common import open_inventory

    chosen = ctx.params.get("inventory")
    return open_inventory(Path(chosen) if chosen else None)


def _hosts(ctx: Any, param: Any, incomplete: str) -> list[str]:
    return list(_inventory(ctx).hosts)


def _hosts_and_groups(ctx: Any, param: Any, incomplete: str) -> list[str]:
    inventory = _inventory(ctx)
    return [*inventory.hosts, *inventory.groups]


def _state_dir(ctx: Any) -> Path:
    from drp.journal.paths import state_dir

    chosen = ctx.params.get("state_dir") or os.environ.get("DRP_STATE_DIR")
    return Path(chosen) if chosen else Path(state_dir(None))


def _run_ids(ctx: Any, param: Any, incomplete: str) -> list[str]:
    runs = _state_dir(ctx) / "runs"
    return sorted((p.name for p in runs.iterdir() if p.is_dir()), reverse=True)


def _incidents(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """``--incident``: the ids the state directory's runs were started with."""
    found = set()
    for run_id in _run_ids(ctx, param, incomplete):
        try:
            found.add(str(_started(ctx, run_id).get("incident") or ""))
        except (OSError, ValueError, AttributeError):
            continue
    return sorted(found - {""})


def _manual_steps(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """``--approve``: the manual steps of the runbook being run, or of the run resumed."""
    from drp.runbook.catalog import locate
    from drp.runbook.loader import load_runbook

    first = ctx.params.get("runbook") or ctx.params.get("run_id") or _first_argument(ctx)
    if "runbook" in ctx.params:
        book = load_runbook(locate(first, list(ctx.params.get("search") or ())))
    else:
        book = load_runbook(Path(_started(ctx, first)["runbook_path"]))
    return [step.id for step in book.steps if step.kind == "manual"]


def _first_argument(ctx: Any) -> str:
    """The command's first positional word, read from the shell's words: click leaves
    ``ctx.params`` empty while an option (``--approve``) still waits for its value."""
    import shlex

    words = shlex.split(os.environ.get("COMP_WORDS") or os.environ.get("_TYPER_COMPLETE_ARGS", ""))
    takes_value = {
        opt for p in ctx.command.params if not getattr(p, "is_flag", True) for opt in p.opts
    }
    rest = words[words.index(ctx.info_name) + 1 :] if ctx.info_name in words else []
    skip = False
    for word in rest:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in takes_value
        else:
            return word
    return ""


def _started(ctx: Any, run_id: str) -> dict[str, Any]:
    import json

    journal = _state_dir(ctx) / "runs" / run_id / "events.jsonl"
    with journal.open() as handle:
        first = json.loads(handle.readline())
    data: dict[str, Any] = first.get("data", {})
    return data


_COMPLETERS: dict[str, Completer] = {
    "runbook": _runbooks,
    "host": _hosts,
    "hosts": _hosts,
    "targets": _hosts_and_groups,
    "limit": _hosts_and_groups,
    "pattern": _hosts_and_groups,
    "run_id": _run_ids,
    "run": _run_ids,
    "runs": _run_ids,
    "approve": _manual_steps,
    "incident": _incidents,
}

__all__ = ["attach"]
