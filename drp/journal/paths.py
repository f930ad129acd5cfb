"""Where journals live on disk, and run ids that are safe to use as directory names.

Layout::

    STATE/runs/<run_id>/events.jsonl   the journal (see :mod:`drp.journal.writer`)
    STATE/runs/<run_id>/.lock          the writer's lock file (holder: pid, operator, start)
    STATE/runs/<run_id>/runbook.yaml   the runbook as the run last ran it (resume's diff)
    STATE/runs/<run_id>/output/        long outputs spilled whole (see drp.engine.spool)

``STATE`` is, in order of precedence: the ``--state-dir`` argument, the
``DRP_STATE_DIR`` environment variable, ``platformdirs.user_data_dir("drp")``.

Journals hold hostnames, commands and their output, so they are private to the
user: :func:`make_run_dir` creates ``STATE``, ``runs`` and each run directory
``0700`` and the writer creates its files ``0600``. A directory that already
exists keeps its mode (a state directory may be shared by a group on purpose),
but, as OpenSSH does for ``~/.ssh``, drp refuses one that another user owns
or that every user may write (:func:`check_private`): whoever can write there
could plant a link that makes drp overwrite another file, or forge a journal.
``runs`` and run directories must be real directories, not links, and the
writer opens its files with ``O_NOFOLLOW``.

A run id looks like ``20261121-234112-disk-replace-7f3a``: UTC start time, the
sanitized runbook name and 4 random hex digits. Runs are listed (and ``latest``
chosen) by the time their first record was written, which the id only gives to the
second. Ids are plain file names; anything that does not match the pattern is refused by
:func:`validate_run_id`, so a run id can never escape the state directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from drp.errors import InputError, JournalError

ENV_STATE_DIR = "DRP_STATE_DIR"
RUNS = "runs"
EVENTS = "events.jsonl"
LOCK = ".lock"
MAX_RUN_ID = 80
_NAME_MAX = 40
LATEST = "latest"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
RUN_ID_RE = re.compile(r"\d{8}-\d{6}-[a-z0-9]+(?:-[a-z0-9]+)*-[0-9a-f]{4}")
_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9-]*")


def state_dir(arg: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: ``arg`` > ``$DRP_STATE_DIR`` > the platform's user data dir."""
    if arg is not None and str(arg) != "":
        return Path(arg).expanduser()
    env = os.environ.get(ENV_STATE_DIR, "")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("drp"))


def runs_dir(state: Path) -> Path:
    """The directory holding one sub-directory per run."""
    return state / RUNS


def run_dir(state: Path, run_id: str) -> Path:
    """The directory of one run; ``run_id`` is validated first."""
    return runs_dir(state) / validate_run_id(run_id)


def make_run_dir(run_directory: Path) -> None:
    """Create a run directory, and its ``runs`` and state directories when missing, ``0700``.

    Directories above the state directory are created with the default mode.
    Each of the three is then checked (:func:`check_private`).
    """
    runs = run_directory.parent
    state = runs.parent
    state.parent.mkdir(parents=True, exist_ok=True)
    for directory, follow in ((state, True), (runs, False), (run_directory, False)):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=PRIVATE_DIR)
        _check_dir(directory, follow)  # before anything is made inside it


def check_private(run_directory: Path) -> None:
    """Refuse (JournalError) a state, ``runs`` or run directory that is not safely ours.

    Each must be owned by this user (or root), and not writable by every user;
    ``runs`` and the run directory must not be symbolic links.
    """
    runs = run_directory.parent
    for directory, follow in ((runs.parent, True), (runs, False), (run_directory, False)):
        with contextlib.suppress(FileNotFoundError):
            _check_dir(directory, follow)


def _check_dir(directory: Path, follow: bool) -> None:
    st = os.stat(directory) if follow else os.lstat(directory)
    hint = f"drp keeps journals there; chmod 700 {directory}, or use another --state-dir"
    if stat.S_ISLNK(st.st_mode):
        raise JournalError(f"{directory} is a symbolic link: drp does not follow links there")
    if not stat.S_ISDIR(st.st_mode):
        raise JournalError(f"{directory} is not a directory")
    if st.st_uid not in (os.geteuid(), 0):
        raise JournalError(
            f"unsafe state directory: {directory} is owned by another user "
            f"(uid {st.st_uid}); {hint}"
        )
    if st.st_mode & stat.S_IWOTH:
        raise JournalError(
            f"unsafe state directory: {directory} is writable by every user "
            f"(mode {stat.S_IMODE(st.st_mode):o}); {hint}"
        )


def journal_path(run_directory: Path) -> Path:
    """The ``events.jsonl`` file of a run directory."""
    return run_directory / EVENTS


def sanitize_name(runbook: str) -> str:
    """A runbook name reduced to ``[a-z0-9-]``, at most 40 characters (``run`` if empty)."""
    base = Path(runbook).name
    for suffix in (".yaml", ".yml"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    text = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    text = text[:_NAME_MAX].strip("-")
    return text or "run"


def new_run_id(runbook: str, now: datetime | None = None) -> str:
    """A fresh run id such as ``20261121-234112-disk-replace-7f3a`` (UTC, sortable)."""
    when = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    stamp = when.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{sanitize_name(runbook)}-{secrets.token_hex(2)}"


def validate_run_id(text: str) -> str:
    """Return ``text`` if it is a well-formed run id; raise :class:`InputError` otherwise."""
    if not isinstance(text, str) or not text:
        raise InputError("run id is empty")
    if len(text) > MAX_RUN_ID:
        raise InputError(f"run id is too long ({len(text)} characters, at most {MAX_RUN_ID})")
    if not RUN_ID_RE.fullmatch(text):
        raise InputError(
            f"invalid run id {text!r}: expected e.g. 20261121-234112-disk-replace-7f3a "
            "(see 'drp log list')"
        )
    return text


def started_at(run_directory: Path) -> str:
    """When a run started, as its first record says (``2026-11-21T23:41:12.123456Z``).

    Read from the first line only; a journal without one falls back to the second
    its id names. Stored timestamps have one fixed format, so they sort as text.
    """
    try:
        with (run_directory / EVENTS).open("rb") as handle:
            stamp = json.loads(handle.readline(65536)).get("ts")
        if isinstance(stamp, str) and _TS_RE.fullmatch(stamp):
            return stamp
    except (OSError, ValueError, AttributeError):
        pass
    i = run_directory.name
    return f"{i[0:4]}-{i[4:6]}-{i[6:8]}T{i[9:11]}:{i[11:13]}:{i[13:15]}.000000Z"


def list_run_ids(state: Path) -> list[str]:
    """Ids of every run directory under ``state`` holding a journal, oldest first.

    Ordered by the time each run started (its first record, to the microsecond), not
    by the id's text: two runs started in the same second keep their real order.
    """
    root = runs_dir(state)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if RUN_ID_RE.fullmatch(p.name) and (p / EVENTS).is_file()]
    return [p.name for p in sorted(found, key=lambda p: (started_at(p), p.name))]


def resolve_run(state: Path, text: str) -> str:
    """The run id that ``text`` names: a full id, a unique prefix, or ``latest``."""
    ids = list_run_ids(state)
    if text == LATEST:
        if not ids:
            raise InputError(f"no runs in {runs_dir(state)}")
        return ids[-1]
    if RUN_ID_RE.fullmatch(text) and len(text) <= MAX_RUN_ID:
        if text in ids:
            return text
        raise InputError(f"no run {text!r} in {runs_dir(state)} (see 'drp log list')")
    if not text or len(text) > MAX_RUN_ID or not _PREFIX_RE.fullmatch(text):
        validate_run_id(text)  # raises with the right message
    matches = [i for i in ids if i.startswith(text)]
    if not matches:
        raise InputError(f"no run matches {text!r} in {runs_dir(state)} (see 'drp log list')")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (" …" if len(matches) > 5 else "")
        raise InputError(f"run prefix {text!r} is ambiguous: {shown}")
    return matches[0]
