"""``put`` over real SSH: atomic install, mode, backup, idempotence, rollback, no symlink games."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration

BOOK = """\
name: put-demo
targets: all
params:
  motd: {type: string, default: hello}
  fail: {type: bool, default: false}
steps:
  - id: config
    put:
      dest: "{{ vars.dir }}/etc/app.conf"
      content: "motd={{ params.motd }}\\nhost={{ host.name }}\\n"
      template: true
      mode: "0640"
  - id: boom
    run: "test {{ params.fail }} = false"
    on_failure: rollback
"""


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def test_put_installs_backs_up_is_idempotent_and_rolls_back(lab: Lab) -> None:
    book = lab.runbook(BOOK)
    conf = lab.root / "etc" / "app.conf"
    first = lab.run(book)
    assert first.returncode == 0, combined(first)
    assert conf.read_text() == "motd=hello\nhost=h1\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640

    again = lab.run(book, "--new")
    assert again.returncode == 0, combined(again)
    assert "already up to date" in again.stdout
    assert not list(conf.parent.glob("app.conf.drp-bak-*"))  # nothing replaced, nothing saved

    changed = lab.run(book, "--new", "-p", "motd=bye", "-p", "fail=true")
    assert changed.returncode == 1, combined(changed)
    backups = list(conf.parent.glob("app.conf.drp-bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == "motd=hello\nhost=h1\n"
    assert conf.read_text() == "motd=hello\nhost=h1\n"  # the rollback restored the backup
    assert not list(conf.parent.glob(".drp-*")), "no temporary file left behind"


def test_put_does_not_write_through_a_planted_symlink(lab: Lab) -> None:
    book = lab.runbook(BOOK)
    assert lab.run(book).returncode == 0
    victim = lab.root / "victim"
    victim.write_text("precious\n")
    conf = lab.root / "etc" / "app.conf"
    # a predictable staging name next to the destination would be written through as root
    os.symlink(victim, conf.parent / "app.conf.drp-new")
    result = lab.run(book, "--new", "-p", "motd=changed")
    assert result.returncode == 0, combined(result)
    assert victim.read_text() == "precious\n"
    assert conf.read_text().startswith("motd=changed") and not conf.is_symlink()


def _stagings() -> set[Path]:
    return set(Path("/tmp").glob(".drp-put-*"))


@pytest.mark.parametrize("sensitive", [False, True])
def test_a_directory_destination_is_refused_clearly_and_leaves_nothing(
    lab: Lab, sensitive: bool
) -> None:
    target = lab.root / "etc"
    target.mkdir()
    book = lab.runbook(
        f"""\
        name: put-dir
        targets: all
        steps:
          - id: config
            sensitive: {str(sensitive).lower()}
            put:
              dest: "{{{{ vars.dir }}}}/etc"
              content: "secret-ish\\n"
        """
    )
    before = _stagings()
    result = lab.run(book)
    assert result.returncode == 1, combined(result)
    assert "is a directory: put writes one file" in combined(result)
    assert _stagings() - before == set(), "the staging copy stayed in /tmp"
    assert list(target.iterdir()) == [] and sorted(p.name for p in lab.root.glob("etc*")) == [
        "etc"
    ], "nothing beside the destination"


def test_a_failed_install_removes_its_backup_and_temporaries(lab: Lab) -> None:
    conf = lab.root / "etc" / "app.conf"
    conf.parent.mkdir()
    conf.write_text("old\n")
    book = lab.runbook(
        """\
        name: put-owner
        targets: all
        steps:
          - id: config
            put:
              dest: "{{ vars.dir }}/etc/app.conf"
              content: "new\\n"
              owner: no-such-user-drp
        """
    )
    before = _stagings()
    result = lab.run(book)
    assert result.returncode == 1, combined(result)
    assert conf.read_text() == "old\n"
    assert [p.name for p in conf.parent.iterdir()] == ["app.conf"], "backup or temporaries left"
    assert _stagings() - before == set()
