"""Ansible inventories, read by asking Ansible itself.

``-i hosts.ini``, an Ansible YAML inventory (``all:``, groups with ``hosts:`` /
``children:``), an inventory directory (``group_vars/``, ``host_vars/``), an
inventory plugin's config (``plugin:``) or a dynamic inventory script: drp does not
re-implement Ansible's formats. It runs ``ansible-inventory -i PATH --list``
(ansible-core, when installed) and maps what Ansible resolved into drp's own
inventory document, which is then validated and resolved like any other:

- ``ansible_host`` → ``address``, ``ansible_port`` → ``port``, ``ansible_user`` →
  ``user``, ``ansible_ssh_private_key_file`` → ``key``;
- ``ansible_become`` (with ``ansible_become_user``; method sudo) → ``become``;
  a sudo password comes, as for every inventory, from ``-K`` or
  ``$DRP_BECOME_PASSWORD`` (or ``drp_become_password_env``: the variable holding it);
- every host var (group vars and host vars as Ansible merged them) → ``vars``;
- groups with their hosts and children (``all`` is drp's own "every host").

:func:`sniff` tells an Ansible inventory from a drp one before drp's schema would
report ``unknown key 'all'`` or ``invalid YAML``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from drp import yamlsrc
from drp.errors import InputError, InventoryError, Problem

ANSIBLE_INVENTORY = "ansible-inventory"
INSTALL_HINT = (
    "install ansible-core beside drp (pipx inject drp ansible-core, or pip install "
    "ansible-core in drp's virtual environment), or put ansible-inventory on PATH"
)
_TIMEOUT = 120.0  # a dynamic inventory may ask a cloud API
_INI_SECTION = re.compile(r"^\s*\[[^\]\s]+\]\s*(?:[#;].*)?$", re.MULTILINE)
_INI_HOST_VAR = re.compile(r"^\s*\S+\s+\w+=\S", re.MULTILINE)
_GROUP_KEYS = frozenset({"hosts", "children", "vars"})
_DRP_TOP = frozenset({"known_hosts", "ssh_config", "defaults", "vars", "hosts", "groups"})
#: Passwords Ansible may hold: never copied into drp's vars (shown by `drp inventory show`,
#: seen by templates); drp logs in with keys, and sudo's password comes from -K or the env.
_SECRETS = frozenset(
    {
        "ansible_password",
        "ansible_ssh_pass",
        "ansible_ssh_password",
        "ansible_become_password",
        "ansible_become_pass",
        "ansible_sudo_pass",
    }
)
_CONNECTION = {
    "ansible_host": "address",
    "ansible_port": "port",
    "ansible_user": "user",
    "ansible_ssh_private_key_file": "key",
}


def sniff(path: Path) -> yamlsrc.Source | None:
    """None for an Ansible inventory; else the parsed YAML (or the YAML error, raised)."""
    if path.is_dir():
        return None
    if path.suffix.lower() in (".ini", ".cfg") or _is_script(path):
        return None
    try:
        source = yamlsrc.load(path)
    except InputError:
        if _looks_like_ini(path):
            return None
        raise
    if looks_like_ansible(source.data) or (
        isinstance(source.data, str | type(None)) and _looks_like_ini(path)
    ):
        return None
    return source


def looks_like_ansible(data: object) -> bool:
    """An Ansible YAML inventory (``all:``, group mappings) or inventory plugin config."""
    if not isinstance(data, dict):
        return False
    if "all" in data or "plugin" in data:
        return True
    foreign = [key for key in data if key not in _DRP_TOP]
    return bool(foreign) and all(
        value is None or (isinstance(value, dict) and set(value) <= _GROUP_KEYS)
        for key, value in data.items()
        if key in foreign
    )


def _is_script(path: Path) -> bool:
    return (
        path.is_file()
        and os.access(path, os.X_OK)
        and path.suffix.lower()
        not in (
            ".yaml",
            ".yml",
        )
    )


def _looks_like_ini(path: Path) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return bool(_INI_SECTION.search(text) or _INI_HOST_VAR.search(text))


def ansible_source(path: Path) -> tuple[yamlsrc.Source, str]:
    """drp's inventory document for the Ansible inventory at ``path``, and Ansible's JSON."""
    output = _ask_ansible(path)
    try:
        listing = json.loads(output)
    except ValueError as exc:
        raise _problem(path, f"ansible-inventory printed no JSON: {exc}") from None
    if not isinstance(listing, dict):
        raise _problem(path, "ansible-inventory printed no inventory")
    return yamlsrc.Source(str(path), to_drp(listing)), output


def to_drp(listing: dict[str, Any]) -> dict[str, Any]:
    """``ansible-inventory --list`` JSON → drp's inventory document."""
    hostvars: dict[str, dict[str, Any]] = listing.get("_meta", {}).get("hostvars", {})
    groups: dict[str, Any] = {}
    names: dict[str, None] = dict.fromkeys(hostvars)
    for group, body in listing.items():
        if group == "_meta" or not isinstance(body, dict):
            continue
        names.update(dict.fromkeys(body.get("hosts", [])))
        if group == "all":
            continue
        entry: dict[str, Any] = {
            "hosts": list(body.get("hosts", [])),
            "children": [c for c in body.get("children", []) if c != "all"],
        }
        if body.get("vars"):
            entry["vars"] = dict(body["vars"])
        groups[group] = entry
    hosts = {name: _host(name, hostvars.get(name, {})) for name in names}
    return {"hosts": hosts, "groups": groups}


def _host(name: str, hostvars: dict[str, Any]) -> dict[str, Any]:
    host: dict[str, Any] = {}
    for var, key in _CONNECTION.items():
        if hostvars.get(var) not in (None, ""):
            host[key] = hostvars[var]
    if "address" in host:
        host["address"] = str(host["address"])
    become = _become(hostvars)
    if become is not None:
        host["become"] = become
    host["vars"] = {k: v for k, v in hostvars.items() if k not in _SECRETS}
    return host


def _become(hostvars: dict[str, Any]) -> Any:
    flag = hostvars.get("ansible_become")
    if flag is None:
        return None
    if not _truthy(flag):
        return False
    spec: dict[str, Any] = {"user": str(hostvars.get("ansible_become_user") or "root")}
    method = hostvars.get("ansible_become_method")
    if method is not None:
        spec["method"] = method  # drp's schema says which methods it takes
    password_env = hostvars.get("drp_become_password_env")
    if password_env:
        spec["password_env"] = str(password_env)
    return spec


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "true", "on", "y", "t")
    return bool(value)


def _ask_ansible(path: Path) -> str:
    program = _find_program(path)
    env = {
        **os.environ,
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",  # a file no plugin reads is an error
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "PYTHONWARNINGS": "ignore",
    }
    try:
        done = subprocess.run(
            [program, "-i", str(path), "--list"],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _problem(path, f"ansible-inventory gave no answer in {_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise _problem(path, f"cannot run {program}: {exc.strerror or exc}", INSTALL_HINT) from None
    if done.returncode != 0:
        raise _problem(
            path,
            f"Ansible cannot read this inventory: {_last_error(done.stderr)}",
            f"check it with: ansible-inventory -i {path} --list",
        )
    return done.stdout


def _find_program(path: Path) -> str:
    """``$DRP_ANSIBLE_INVENTORY``, else ``ansible-inventory`` on PATH, else beside drp's
    own Python (its venv, or pipx inject)."""
    chosen = os.environ.get("DRP_ANSIBLE_INVENTORY")
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise _problem(path, f"DRP_ANSIBLE_INVENTORY={chosen}: no such program", INSTALL_HINT)
        return found
    found = shutil.which(ANSIBLE_INVENTORY)
    beside = Path(sys.executable).parent / ANSIBLE_INVENTORY
    if found is None and beside.is_file():
        found = str(beside)
    if found is None:
        raise _problem(
            path, "an Ansible inventory, and ansible-inventory is not installed", INSTALL_HINT
        )
    return found


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Failed" in line]
    return " ".join((errors or lines or ["no message"])[-3:])[:600]


def _problem(path: Path, message: str, hint: str = "") -> InventoryError:
    return InventoryError([Problem(str(path), None, None, "", message, hint)])


__all__ = ["ansible_source", "looks_like_ansible", "sniff", "to_drp"]
