"""``drp new NAME``: a runbook skeleton that validates, to start from.

It holds one example of each common step kind (run with a capture and a guard,
put, wait, manual, a destructive step that asks first, reboot), each commented,
and a ``# yaml-language-server: $schema=…`` line naming the runbook schema written
beside it (``drp schema``), so editors complete and check keys as you type.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from drp.cli.authoring import schema_document
from drp.errors import InputError, Problem

SCHEMA_FILE = "drp-runbook.schema.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

SKELETON = """\
# yaml-language-server: $schema=./{schema}
# {name}: describe what this runbook repairs, and when to use it.
# Check it with `drp validate {path}`, rehearse it with `drp plan {name} -H HOST`.
name: {name}
description: |
  What it does, in a few lines an operator reads at 3 a.m.
targets: CHANGE-ME  # a host, group or pattern from the inventory: never 'all' by default
params:
  service:
    type: string
    required: true
    pattern: '^[a-z0-9@._-]+$'
    help: the systemd unit to repair
defaults:
  become: true  # through sudo
  timeout: 5m
steps:
  # run: a shell command on each target; params are shell-quoted for you
  - id: inspect
    name: Record the unit's state
    run: systemctl is-active {{{{ params.service }}}} || true
    capture: {{state: stdout}}

  # put: upload a file (src: a file beside the runbook, or content: inline)
  - id: drop-in
    name: Raise the restart limit
    put:
      content: |
        [Unit]
        StartLimitBurst=10
      dest: /etc/systemd/system/{{{{ params.service }}}}.d/drp.conf
      mode: '0644'

  # a destructive step: it asks first (a dry run never runs it)
  - id: restart
    name: Restart the unit
    run: systemctl daemon-reload && systemctl restart {{{{ params.service }}}}
    confirm: Restart {{{{ params.service }}}} on {{{{ host.name }}}}?
    unless: test {{{{ captures.state }}}} = active  # drp quotes values itself

  # wait: poll until a condition holds
  - id: healthy
    name: Wait for the unit to be active
    wait:
      command: systemctl is-active {{{{ params.service }}}}
      until: {{exit: 0}}
      interval: 5s
      timeout: 2m

  # manual: a person does something; the run pauses until `drp resume --approve`
  - id: check-dashboard
    name: A human checks the service from outside
    manual: Open the dashboard and confirm {{{{ params.service }}}} answers.

  # reboot: reboot and wait until the host is back (a new boot id)
  - id: reboot
    name: Reboot to prove the fix survives
    reboot: {{timeout: 10m}}
"""


def new(
    name: str = typer.Argument(..., help="Runbook name: lowercase letters, digits, '-', '_'."),
    directory: Path = typer.Option(
        Path("runbooks"), "--dir", "-d", help="Where to write NAME.yaml (made if missing)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing NAME.yaml."),
) -> None:
    """Write a runbook skeleton that validates: one example of each common step kind,
    and the schema reference editors use.

    Example: drp new nginx-restart && drp validate runbooks/nginx-restart.yaml
    """
    from drp.runbook.loader import load_runbook

    if not _NAME.match(name):
        raise InputError(
            [
                Problem(
                    "", None, None, "NAME", f"invalid runbook name {name!r}", "e.g. nginx-restart"
                )
            ]
        )
    path = directory / f"{name}.yaml"
    if path.exists() and not force:
        raise InputError(
            [Problem(str(path), None, None, "", "already exists", "pass --force to overwrite")]
        )
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(SKELETON.format(name=name, path=path, schema=SCHEMA_FILE))
    schema = directory / SCHEMA_FILE
    if not schema.exists():
        schema.write_text(json.dumps(schema_document(), indent=2) + "\n")
    load_runbook(path)  # the skeleton validates, or this is a bug worth hearing about
    typer.echo(f"wrote {path} (schema: {schema}); next: drp validate {path}")


def register(app: typer.Typer) -> None:
    app.command("new")(new)


__all__ = ["new", "register"]
