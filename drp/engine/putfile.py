"""The ``put`` step: upload to a private staging file, then install it on the host.

The content goes by SFTP to a random ``0600`` file in ``/tmp``, then one shell
script (:func:`install_script`) installs it: refuse a directory destination,
keep a backup, set mode and owner, rename into place atomically. Whatever
happens, nothing of a failed attempt stays behind: the staging file, the
temporaries beside the destination and a backup this attempt made are removed
by the script's ``EXIT`` trap (and, when the script could not even run, by a
separate ``rm``).
"""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path

from drp.engine.defaults import backup_path
from drp.engine.hostview import HostView
from drp.engine.outcome import ActionOutcome, check_exit
from drp.engine.plan import PlannedStep
from drp.engine.retry import AttemptFailed
from drp.errors import ConnectError, StepFailed
from drp.runbook.model import PutSpec

#: The exit code of the install script when the destination is a directory.
IS_A_DIRECTORY = 21


def _content(hr: HostView, spec: PutSpec) -> bytes:
    if spec.content is not None:
        text = hr.render(spec.content, shell=False) if spec.template else spec.content
        return text.encode()
    source = Path(hr.shared.plan.runbook.path).parent / (spec.src or "")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise AttemptFailed("exit", f"cannot read {source}: {exc.strerror}") from None
    if not spec.template:
        return data
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise AttemptFailed(
            "exit",
            f"{source} is not UTF-8 ({exc.reason} at byte {exc.start}): "
            "a template must be text (or set template: false to upload it as is)",
        ) from None
    return hr.render(text, shell=False).encode()


def put_file(hr: HostView, ps: PlannedStep, attempt: int) -> ActionOutcome:
    spec = ps.step.put
    assert spec is not None
    data = _content(hr, spec)
    dest = hr.render(spec.dest, shell=False)
    staging = f"/tmp/.drp-put-{secrets.token_hex(6)}"  # noqa: S108 - random name, mode 0600
    try:
        hr.transport.put(data, staging, mode=0o600)
    except ConnectError as exc:
        raise AttemptFailed("connection", f"upload failed: {exc}") from None
    except (StepFailed, OSError) as exc:
        raise AttemptFailed("exit", f"upload failed: {exc}") from None
    script = install_script(spec, dest, staging, hr.shared.options.run_id)
    try:
        result = hr.exec(script, ps=ps, phase="action", attempt=attempt, timeout=ps.timeout)
    except AttemptFailed:  # the script's trap never ran (timeout, lost link): try once more
        _remove(hr, staging)
        raise
    if result.exit_code == IS_A_DIRECTORY:
        raise AttemptFailed(
            "exit",
            f"put: destination {dest} is a directory: put writes one file; "
            f"give the file's full path (e.g. {dest.rstrip('/')}/NAME)",
            result,
        )
    check_exit(ps, result, "install")
    changed = "UNCHANGED" not in result.stdout
    return ActionOutcome(result, f"{dest}: {'written' if changed else 'already up to date'}")


def _remove(hr: HostView, staging: str) -> None:
    try:
        hr.transport.connect()
        hr.transport.run(f"rm -f {shlex.quote(staging)}", timeout=15)
    except (ConnectError, StepFailed, OSError):
        pass  # nothing more to do: the file is 0600 in /tmp


def install_script(spec: PutSpec, dest: str, staging: str, run_id: str) -> str:
    """Shell that installs the uploaded file: backup, mode, owner, then an atomic rename.

    Every intermediate file is made by ``mktemp`` in the destination's directory, so a
    symlink planted at a predictable name cannot redirect a write made as root. The
    ``EXIT`` trap removes the staging file and temporaries always, and the backup too
    when this attempt made it and then failed.
    """
    q_dest, q_tmp = shlex.quote(dest), shlex.quote(staging)
    q_bak = shlex.quote(backup_path(dest, run_id))
    lines = [
        "set -e",
        "new=; old=; made=",
        f'trap \'rc=$?; rm -f {q_tmp} "$new" "$old"; '
        f'if [ "$rc" -ne 0 ] && [ -n "$made" ]; then rm -f {q_bak}; fi\' EXIT',
        f'if [ -d {q_dest} ]; then echo "drp: {dest} is a directory" >&2; '
        f"exit {IS_A_DIRECTORY}; fi",
        f"if [ -f {q_dest} ] && cmp -s {q_tmp} {q_dest}; then echo UNCHANGED; exit 0; fi",
        f'dir="$(dirname {q_dest})"',
        'mkdir -p "$dir"',
    ]
    if spec.backup:
        lines.append(
            f"if [ -e {q_dest} ] && [ ! -e {q_bak} ] && [ ! -L {q_bak} ]; then "
            f'old="$(mktemp "$dir/.drp-bak.XXXXXX")"; cp -p {q_dest} "$old"; '
            f'mv -n "$old" {q_bak} || true; [ -e "$old" ] || made=1; fi'
        )
    lines.append('new="$(mktemp "$dir/.drp-new.XXXXXX")"')
    lines.append(f'cat {q_tmp} > "$new"')
    # without mode/owner, a replaced file keeps its own; a new one gets 0644
    lines.append(f'[ ! -e {q_dest} ] || chown --reference={q_dest} "$new" 2>/dev/null || true')
    if spec.mode:
        lines.append(f'chmod {shlex.quote(spec.mode)} "$new"')
    else:
        lines.append(
            f'if [ -e {q_dest} ]; then chmod --reference={q_dest} "$new"; '
            'else chmod 0644 "$new"; fi'
        )
    if spec.owner or spec.group:
        owner = f"{spec.owner or ''}:{spec.group or ''}".rstrip(":")
        lines.append(f'chown {shlex.quote(owner)} "$new"')
    lines += [f'mv -f "$new" {q_dest}', "new=", "echo WRITTEN"]
    return "(\n" + "\n".join(lines) + "\n)"  # a subshell: its trap is its own
