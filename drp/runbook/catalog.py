"""Where runbooks are found: user paths first, then the built-in ones shipped with drp.

Search order: directories in ``DRP_RUNBOOK_PATH`` (``:``-separated), then
``./runbooks`` in the current directory, then drp's built-in runbooks. A name
with a ``/`` or ending in ``.yaml`` is a path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from drp.errors import Problem, RunbookError

ENV_PATH = "DRP_RUNBOOK_PATH"


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    origin: str  # "user" or "built-in"


def builtin_dir() -> Path:
    """Built-in runbooks: installed as ``drp/builtin_runbooks``, or ``runbooks/`` in a checkout."""
    installed = Path(__file__).resolve().parents[1] / "builtin_runbooks"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "runbooks"


def search_path(extra: list[str] | None = None) -> list[tuple[Path, str]]:
    dirs: list[tuple[Path, str]] = [(Path(p), "user") for p in extra or []]
    dirs += [(Path(p), "user") for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    local = Path.cwd() / "runbooks"
    builtin = builtin_dir()
    if local.is_dir() and local.resolve() != builtin.resolve():
        dirs.append((local, "user"))
    dirs.append((builtin, "built-in"))
    return dirs


def entries(extra: list[str] | None = None) -> list[Entry]:
    """Every runbook on the search path; the first of a name wins."""
    found: dict[str, Entry] = {}
    for directory, origin in search_path(extra):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
            found.setdefault(path.stem, Entry(path.stem, path, origin))
    return sorted(found.values(), key=lambda e: e.name)


def locate(name: str, extra: list[str] | None = None) -> Path:
    """The file of runbook ``name`` (or ``name`` itself when it is a path)."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise RunbookError(
                [Problem(name, None, None, "", "no such runbook file", "check the path")]
            )
        return path
    for entry in entries(extra):
        if entry.name == name:
            return entry.path
    import difflib

    known = [e.name for e in entries(extra)]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "run 'drp list' to see runbooks"
    raise RunbookError([Problem(name, None, None, "", "no runbook of that name", hint)])
