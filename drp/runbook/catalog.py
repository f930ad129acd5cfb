"""Where runbooks are found: user paths first, then the built-in ones shipped with drp.

Search order: directories in ``DRP_RUNBOOK_PATH`` (``:``-separated), then
``./runbooks`` in the current directory, then drp's built-in runbooks. A name
with a ``/`` or ending in ``.yaml`` is a path.

Built-in runbooks are either proved by a test that runs them for real (``PROVED_BY``:
the lab rehearsal on a QEMU guest, or BIND for DNS) or drafts: ``drp list`` says which.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from drp.errors import Problem, RunbookError

ENV_PATH = "DRP_RUNBOOK_PATH"
_SUMMARY_READ_LIMIT = 1024 * 1024  # as the loader's: a larger file is not a runbook

#: Built-in runbooks run for real by a test (paths from the repository root); any other
#: built-in runbook is a DRAFT. Add a runbook here only once its test passes.
PROVED_BY: dict[str, tuple[str, ...]] = {
    "disk-replace": (
        "tests/lab/test_disk_replace.py",
        "tests/lab/test_disk_failing.py",
        "tests/lab/test_night_replay.py",
    ),
    "raid-rebuild": ("tests/lab/test_raid_rebuild.py",),
    "kernel-rollback": ("tests/lab/test_kernel_rollback.py", "tests/lab/test_night_replay.py"),
    "network-repair": (
        "tests/lab/test_network_repair.py",
        "tests/lab/test_serial_console.py",
        "tests/lab/test_night_replay.py",
    ),
    "dns-failover": ("tests/dns/test_dns_runbooks.py",),
    "dns-failback": ("tests/dns/test_dns_runbooks.py",),
}


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    origin: str  # "user" or "built-in"

    @property
    def proved_by(self) -> tuple[str, ...]:
        """The tests that run this built-in runbook for real (none: a draft, or a user's)."""
        return PROVED_BY.get(self.name, ()) if self.origin == "built-in" else ()

    @property
    def status(self) -> str:
        """``proved by TEST, ...``, ``DRAFT`` (built-in, not proved) or ``''`` (user's)."""
        if self.origin != "built-in":
            return ""
        if self.proved_by:
            return "proved by " + ", ".join(Path(test).name for test in self.proved_by)
        return "DRAFT: not proved"


def read_summary(path: Path) -> str | None:
    """The ``summary:`` a runbook file declares, read without validating the runbook
    (what ``drp list`` prints); None when the file is unreadable, is not a YAML
    mapping or has no text ``summary:``. ``drp validate`` is what checks a runbook."""
    import yaml

    try:
        with path.open("rb") as file:
            raw = file.read(_SUMMARY_READ_LIMIT + 1)
        if len(raw) > _SUMMARY_READ_LIMIT:
            return None
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(raw.decode("utf-8"))
        try:
            data = loader.get_single_data()  # a safe loader, libyaml's when there
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    summary = data.get("summary") if isinstance(data, dict) else None
    return summary.strip() if isinstance(summary, str) and summary.strip() else None


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
