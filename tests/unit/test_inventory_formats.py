"""Which inventory format a file is (drp's own or Ansible's), and Ansible's listing mapped."""

from __future__ import annotations

from pathlib import Path

import pytest

from drp.errors import InputError
from drp.inventory.ansible import looks_like_ansible, sniff, to_drp


@pytest.mark.parametrize(
    "text",
    [
        "all:\n  hosts:\n    web1:\n",
        "web:\n  hosts:\n    web1: {ansible_host: 10.0.0.1}\ndb:\n  children: {x: {}}\n",
        "plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n",
        "[web]\nweb1 ansible_host=10.0.0.1\n",
        "web1 ansible_host=10.0.0.1 ansible_port=2222\n",  # INI without a section
    ],
)
def test_ansible_inventories_are_told_apart(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    assert sniff(path) is None


@pytest.mark.parametrize(
    "text",
    [
        "hosts:\n  db1: {address: 10.0.0.1}\ngroups:\n  db: {hosts: [db1]}\n",
        "known_hosts: kh\nhost:\n  db1: {address: 10.0.0.1}\n",  # a typo drp reports itself
        "name: book\nsteps:\n  - run: true\n",  # a runbook
    ],
)
def test_drp_files_stay_drps(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    source = sniff(path)
    assert source is not None and isinstance(source.data, dict)


def test_broken_yaml_that_is_not_ini_is_drps_to_report(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  db1: {address: 10.0.0.1\n")
    with pytest.raises(InputError):
        sniff(path)


def test_a_directory_or_a_script_is_ansibles(tmp_path: Path) -> None:
    assert sniff(tmp_path) is None
    script = tmp_path / "ec2.py"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert sniff(script) is None
    assert not looks_like_ansible(["a"])


def test_the_listing_maps_connection_become_groups_and_vars() -> None:
    listing = {
        "_meta": {
            "hostvars": {
                "db1": {
                    "ansible_host": "10.0.0.5",
                    "ansible_port": 2222,
                    "ansible_user": "ops",
                    "ansible_ssh_private_key_file": "~/.ssh/ops",
                    "ansible_become": "yes",
                    "ansible_become_user": "postgres",
                    "role": "db",
                    "ansible_become_password": "hunter2",
                    "ansible_ssh_pass": "hunter3",
                },
                "web1": {"ansible_become": False},
            }
        },
        "all": {"children": ["ungrouped", "prod"]},
        "prod": {"children": ["db"], "hosts": ["web1"]},
        "db": {"hosts": ["db1"]},
        "ungrouped": {"hosts": ["lone"]},
    }
    document = to_drp(listing)
    db1 = document["hosts"]["db1"]
    assert (db1["address"], db1["port"], db1["user"], db1["key"]) == (
        "10.0.0.5",
        2222,
        "ops",
        "~/.ssh/ops",
    )
    assert db1["become"] == {"user": "postgres"}
    assert db1["vars"]["role"] == "db"
    assert "hunter2" not in str(document) and "hunter3" not in str(document)
    assert document["hosts"]["web1"]["become"] is False
    assert "lone" in document["hosts"]  # a host with no vars at all
    assert document["groups"]["prod"] == {"hosts": ["web1"], "children": ["db"]}
    assert "all" not in document["groups"]
