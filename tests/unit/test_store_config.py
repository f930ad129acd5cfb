"""Where the journal store is (flag, environment, config file), and its password masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from drp.errors import InputError
from drp.journal.store.config import masked, store_url


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DRP_STORE", raising=False)
    monkeypatch.delenv("DRP_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def test_the_flag_wins_over_the_environment_which_wins_over_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert store_url(None) is None  # no store anywhere: local journal only
    config = tmp_path / "xdg" / "drp" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("notifications: []\nstore: postgresql://file/drp\n")
    assert store_url(None) == "postgresql://file/drp"
    monkeypatch.setenv("DRP_STORE", "postgresql://env/drp")
    assert store_url(None) == "postgresql://env/drp"
    assert store_url("postgresql://flag/drp") == "postgresql://flag/drp"


def test_drp_config_names_the_file_and_a_bad_value_is_located(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "team.yaml"
    monkeypatch.setenv("DRP_CONFIG", str(config))
    with pytest.raises(InputError, match=r"team\.yaml"):
        store_url(None)  # named, but missing: said, not ignored
    config.write_text("# the team's settings\nstore: 42\n")
    with pytest.raises(InputError) as caught:
        store_url(None)
    assert f"{config}:2" in str(caught.value) and "store" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://drp:s3cr3t-pw@db.example.net:5432/drp",
        "host=db.example.net user=drp password=s3cr3t-pw dbname=drp",
        "postgresql://drp:s3cr3t-pw@db.example.net:notaport/drp",
    ],
)
def test_the_password_is_masked_in_every_form(url: str) -> None:
    shown = masked(url)
    assert "s3cr3t-pw" not in shown
    assert "********" in shown and "db.example.net" in shown


def test_one_team_file_holds_the_store_and_the_notifications(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from drp.notify.config import settings, team_notify

    config = tmp_path / "team.yaml"
    config.write_text(
        "store: postgresql://db.example.net/drp\n"
        "notify:\n  channels:\n    - {name: pager, command: [page-oncall]}\n"
    )
    monkeypatch.setenv("DRP_CONFIG", str(config))
    env = {"DRP_CONFIG": str(config)}
    assert store_url(None) == "postgresql://db.example.net/drp"
    assert [c.name for c in settings(team_notify(env), None, env).channels] == ["pager"]
