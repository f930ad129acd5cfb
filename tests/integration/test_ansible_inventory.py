"""Ansible inventories through the installed ``drp``, read by ansible-inventory, run against
the real sshd: INI and YAML with group_vars/ and host_vars/, children groups, a dynamic
inventory script, and a clear error when Ansible is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("ansible-inventory") is None, reason="ansible-core is a [test] extra"
    ),
]

BOOK = """
name: whoami
targets: all
steps:
  - id: who
    run: >-
      echo {{ host.name }} {{ host.vars.role }} {{ host.vars.bay | default('-') }}
      > {{ vars_dir }}/who-{{ host.name }}
  - id: root
    become: true
    run: id -un > {{ vars_dir }}/become-{{ host.name }}
"""


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def _home(lab: Lab) -> Path:
    """A HOME whose ~/.ssh/known_hosts knows the sshd (Ansible inventories name none)."""
    home = lab.root / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    shutil.copy(lab.sshd.known_hosts, home / ".ssh" / "known_hosts")
    return home


def _group_and_host_vars(inventory_dir: Path, lab: Lab) -> None:
    (inventory_dir / "group_vars").mkdir(parents=True, exist_ok=True)
    (inventory_dir / "host_vars").mkdir(exist_ok=True)
    (inventory_dir / "group_vars" / "prod.yml").write_text(
        textwrap.dedent(f"""\
        ansible_user: root
        ansible_port: {lab.sshd.port}
        ansible_ssh_private_key_file: {lab.sshd.client_key}
        role: prod
        """)
    )
    for name in ("web1", "db1"):
        (inventory_dir / "host_vars" / f"{name}.yml").write_text(
            f"drp_lock_dir: {lab.root / ('lock-' + name)}\n"
        )
    (inventory_dir / "host_vars" / "db1.yml").write_text(
        f"drp_lock_dir: {lab.root / 'lock-db1'}\nbay: 2\nansible_become: true\n"
    )


def _drp(
    lab: Lab, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return lab.drp(*args, timeout=120, env={"HOME": str(_home(lab)), **(env or {})})


def _run(lab: Lab, inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    book = lab.runbook(BOOK.replace("{{ vars_dir }}", str(lab.root)), "whoami.yaml")
    return _drp(lab, "run", str(book), "-i", str(inventory), "--state-dir", str(lab.state), *extra)


def _assert_ran(lab: Lab) -> None:
    assert (lab.root / "who-web1").read_text() == "web1 prod -\n"
    assert (lab.root / "who-db1").read_text() == "db1 prod 2\n"  # host_vars on group_vars
    assert (lab.root / "become-db1").read_text() == "root\n"  # ansible_become
    assert (lab.root / "become-web1").read_text() == "root\n"


def test_an_ini_inventory_with_group_and_host_vars(lab: Lab) -> None:
    inventory = lab.root / "ansible" / "hosts.ini"
    inventory.parent.mkdir()
    inventory.write_text(
        textwrap.dedent("""\
        # web and db under prod, as Ansible users write it
        [web]
        web1 ansible_host=127.0.0.1

        [db]
        db1 ansible_host=127.0.0.1

        [prod:children]
        web
        db
        """)
    )
    _group_and_host_vars(inventory.parent, lab)
    result = _run(lab, inventory)
    assert result.returncode == 0, combined(result)
    _assert_ran(lab)
    listed = _drp(lab, "inventory", "list", "prod", "-i", str(inventory))
    assert listed.returncode == 0, combined(listed)
    assert "web1" in listed.stdout and "db1" in listed.stdout
    checked = _drp(lab, "validate", str(inventory))
    assert checked.returncode == 0, combined(checked)
    assert "Ansible inventory" in checked.stdout
    db1 = _drp(lab, "inventory", "show", "db1", "-i", str(inventory))
    assert "become:\n    user: root" in db1.stdout  # ansible_become from host_vars/
    web1 = _drp(lab, "inventory", "show", "web1", "-i", str(inventory))
    assert "become: null" in web1.stdout
    assert f"127.0.0.1:{lab.sshd.port}" in web1.stdout  # ansible_port from group_vars/


def test_a_yaml_inventory_with_children_and_vars(lab: Lab) -> None:
    inventory = lab.root / "ansible" / "inventory.yml"
    inventory.parent.mkdir()
    inventory.write_text(
        textwrap.dedent("""\
        all:
          children:
            prod:
              children:
                web:
                  hosts:
                    web1: {ansible_host: 127.0.0.1}
                db:
                  hosts:
                    db1:
                      ansible_host: 127.0.0.1
        """)
    )
    _group_and_host_vars(inventory.parent, lab)
    result = _run(lab, inventory, "-H", "db")  # a child group selects its hosts
    assert result.returncode == 0, combined(result)
    assert (lab.root / "who-db1").read_text() == "db1 prod 2\n"
    assert not (lab.root / "who-web1").exists()
    checked = _drp(lab, "validate", str(inventory))
    assert checked.returncode == 0, combined(checked)
    assert "Ansible inventory" in checked.stdout
    assert "unknown key" not in combined(checked) and "name" not in checked.stderr


def test_a_dynamic_inventory_script(lab: Lab) -> None:
    sshd = lab.sshd
    listing = {
        "prod": {"hosts": ["web1", "db1"], "vars": {"role": "prod"}},
        "_meta": {
            "hostvars": {
                name: {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": sshd.port,
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(sshd.client_key),
                    "ansible_become": name == "db1" or "yes",
                    "drp_lock_dir": str(lab.root / f"lock-{name}"),
                    **({"bay": 2} if name == "db1" else {}),
                }
                for name in ("web1", "db1")
            }
        },
    }
    script = lab.root / "inventory.py"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"print(json.dumps({listing!r}) if '--list' in sys.argv else '{{}}')\n"
    )
    script.chmod(0o755)
    result = _run(lab, script)
    assert result.returncode == 0, combined(result)
    _assert_ran(lab)


def test_without_ansible_the_error_says_what_to_install(lab: Lab) -> None:
    inventory = lab.root / "hosts.ini"
    inventory.write_text("[web]\nweb1 ansible_host=127.0.0.1\n")
    result = _drp(
        lab,
        "inventory",
        "list",
        "-i",
        str(inventory),
        env={"DRP_ANSIBLE_INVENTORY": "no-ansible-here"},
    )
    assert result.returncode == 2, combined(result)
    out = combined(result)
    assert "ansible-core" in out and str(inventory) in out
    assert "invalid YAML" not in out and "Traceback" not in out


def test_a_broken_ansible_inventory_is_told_by_ansible(lab: Lab) -> None:
    inventory = lab.root / "hosts.ini"
    inventory.write_text("[web\nweb1 ansible_host=127.0.0.1\n")
    result = _drp(lab, "inventory", "list", "-i", str(inventory))
    assert result.returncode == 2, combined(result)
    assert "ansible-inventory -i" in combined(result)
    assert "Traceback" not in combined(result)
