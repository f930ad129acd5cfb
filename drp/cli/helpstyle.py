"""How ``--help`` names option values: words an operator reads, never Python types.

typer 0.29 shows each option's annotation (``--dry-run <bool>``, ``--host
<list[str]>``). :func:`tidy` walks the command tree once, before it runs, and gives
every option a metavar: none for a flag, a word for a value (``--host HOST``,
``--param NAME=VALUE``, ``--inventory FILE``); choices keep their list.
"""

from __future__ import annotations

from typing import Any

# typer vendors click (typer._click, not a public API): commands and parameters are
# read by their attributes, the same in click and in typer's copy.

#: Metavars that say more than the option's name.
_WORDS = {
    "param": "NAME=VALUE",
    "params_file": "FILE",
    "inventory": "FILE",
    "state_dir": "DIR",
    "runbook_path": "DIR",
    "forks": "N",
    "serial": "N|N%",
    "max_fail": "PERCENT",
    "output": "FILE",
    "expect": "FINGERPRINT",
    "approve": "STEP",
    "targets": "PATTERN",
    "limit": "PATTERN",
    "operator": "NAME",
    "format": "FORMAT",
}


def tidy(command: Any) -> Any:
    """Give every parameter of ``command`` and its sub-commands a plain metavar."""
    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument":
            param.display_type_rich = _no_type  # its name says it (runbook, run_id)
        else:
            param.metavar = _metavar(param)
    made = command.get_help_option

    def help_option(ctx: Any) -> Any:  # made anew for each context
        option = made(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
    return command


def _no_type(ctx: Any) -> None:
    return None


def _metavar(param: Any) -> str | None:
    if param.metavar is not None:
        return str(param.metavar)
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""  # a flag takes no value
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices:
        return "|".join(str(choice) for choice in choices)
    longest = max(getattr(param, "opts", None) or [param.name or "value"], key=len)
    name: str = longest.lstrip("-").replace("-", "_")
    return _WORDS.get(name, name.upper())


__all__ = ["tidy"]
