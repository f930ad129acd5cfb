"""Params, inventory and plan: typed values, target selection, rendering without contact."""

from __future__ import annotations

from pathlib import Path

import pytest

from drp.engine.plan import build_plan
from drp.errors import InputError, InventoryError, ParamError
from drp.inventory import load_inventory
from drp.runbook.loader import Runbook, load_runbook
from drp.runbook.params import parse_assignments, resolve_params

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "example.yaml"

RUNBOOK = """\
name: demo
params:
  dev: {type: string, required: true, pattern: '^/dev/[a-z]+$'}
  count: {type: int, default: 2}
  force: {type: bool, default: false}
  mode: {type: choice, choices: [fast, safe], default: safe}
  wait: {type: duration, default: 5m}
  token: {type: string, secret: true, default: s3cr3t-value}
targets: databases
defaults:
  retry: {attempts: 2, failures: [connection, 75]}
steps:
  - id: one
    run: echo {{ params.dev }} {{ params.token }}
  - id: two
    run: reboot-now
    confirm: true
    when: params.force
  - id: web-only
    run: echo web
    hosts: web
"""


def load_runbook_text(directory: Path, text: str) -> Runbook:
    path = directory / "rb.yaml"
    path.write_text(text)
    return load_runbook(path)


@pytest.fixture
def book(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "demo.yaml"
    path.write_text(RUNBOOK)
    return load_runbook(path)


def test_params_are_typed(book) -> None:  # type: ignore[no-untyped-def]
    values = resolve_params(
        book, {"dev": "/dev/sdb", "count": "4", "force": "yes", "wait": "1h30m"}, None
    ).values
    assert values == {
        "dev": "/dev/sdb",
        "count": 4,
        "force": True,
        "mode": "safe",
        "wait": 5400.0,
        "token": "s3cr3t-value",
    }


def test_param_problems_are_all_reported(book) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParamError) as caught:
        resolve_params(book, {"dve": "x", "count": "many", "mode": "yolo"}, None)
    text = str(caught.value)
    assert "dve: unknown param (did you mean 'dev'?)" in text
    assert "dev: required param missing" in text
    assert "count: expected a whole number" in text
    assert "'yolo' is not one of fast, safe" in text


def test_pattern_is_enforced(book) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParamError, match="does not match"):
        resolve_params(book, {"dev": "/dev/sdb; rm -rf /"}, None)


def test_assignments() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ParamError, match="NAME=VALUE"):
        parse_assignments(["novalue"])


def test_inventory_resolution() -> None:
    inv = load_inventory(EXAMPLE)
    db1 = inv.get("db1")
    assert db1.jump is not None and db1.jump.name == "bastion"
    assert db1.fallback[0].host == "198.51.100.10"
    assert db1.vars["role"] == "database" and db1.user == "root"
    assert [h.name for h in inv.select("production")] == ["db1", "web1", "web2", "ns1", "ns-backup"]
    assert [h.name for h in inv.select("production,!web")] == ["db1", "ns1", "ns-backup"]
    assert [h.name for h in inv.select("all,&dns")] == ["ns1", "ns-backup"]
    assert [h.name for h in inv.select("web*")] == ["web1", "web2"]
    assert [h.name for h in inv.select("all", limit="ns*")] == ["ns1", "ns-backup"]
    # a pattern that starts by excluding or intersecting starts from every host
    assert [h.name for h in inv.select("dns", limit="!ns1")] == ["ns-backup"]
    assert [h.name for h in inv.select("&dns")] == ["ns1", "ns-backup"]


def test_unknown_target_suggests(tmp_path: Path) -> None:
    inv = load_inventory(EXAMPLE)
    with pytest.raises(InventoryError, match="did you mean 'db1'"):
        inv.select("db2")


def test_inventory_problems_are_located(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("hosts:\n  a: {adress: x}\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert "inv.yaml:2:7 hosts.a.adress: unknown key 'adress' (did you mean 'address'?)" in str(
        caught.value
    )
    path.write_text("hosts:\n  a:\n  b:\ngroups:\n  g: {hosts: [a, c], children: [nope]}\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    text = str(caught.value)
    assert "inv.yaml:5:18 groups.g.hosts[1]: unknown host 'c'" in text
    assert "unknown group 'nope'" in text


def test_plan_renders_every_step_per_host_and_masks_secrets(book) -> None:  # type: ignore[no-untyped-def]
    inv = load_inventory(EXAMPLE)
    params = resolve_params(book, {"dev": "/dev/sdb"}, inv)
    plan = build_plan(book, inv, params, targets="databases,web1")
    assert [h.name for h in plan.hosts] == ["db1", "web1"]
    db1 = plan.steps["db1"]
    assert [p.id for p in db1] == ["one", "two"]  # web-only is narrowed away
    assert [p.id for p in plan.steps["web1"]] == ["one", "two", "web-only"]
    assert db1[0].display["run"] == "echo /dev/sdb ********"
    assert db1[1].destructive and db1[1].when and "false (skipped)" in db1[1].when
    assert db1[0].retry.attempts == 2 and 75 in db1[0].retry.failures
    assert plan.steps["web1"][0].become  # web1 has become: true in the inventory


def test_plan_without_targets(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nsteps: [{id: a, run: 'true'}]\n")
    book = load_runbook(path)
    inv = load_inventory(EXAMPLE)
    with pytest.raises(InventoryError, match="pass --host"):
        build_plan(book, inv, resolve_params(book, {}, inv))


def test_a_secret_value_is_never_echoed_in_a_param_error(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParamError) as caught:
        resolve_params(book, {"dev": "/dev/s3cr3t; x", "token": 5, "count": "s3cr3t"}, None)
    text = str(caught.value)
    assert "'/dev/s3cr3t; x' does not match" in text  # not secret: quoted, to help
    assert "count: expected a whole number, got 's3cr3t'" in text
    secret = load_runbook_text(
        tmp_path,
        "name: s\nparams:\n  token: {type: string, secret: true, required: true, pattern: '^t'}\n"
        "  wait: {type: duration, secret: true, default: 5m}\n"
        "steps: [{id: a, run: 'echo {{ params.token }}'}]\n",
    )
    with pytest.raises(ParamError) as caught:
        resolve_params(secret, {"token": "s3cr3t", "wait": "s3cr3t"}, None)
    text = str(caught.value)
    assert "token: the value (secret, not shown) does not match the pattern '^t'" in text
    assert "wait: invalid duration: the value (secret, not shown)" in text
    assert "s3cr3t" not in text


def test_a_misspelt_choice_gets_a_suggestion(book) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        ParamError, match=r"'sfae' is not one of fast, safe \(did you mean 'safe'\?\)"
    ):
        resolve_params(book, {"dev": "/dev/sdb", "mode": "sfae"}, None)


def test_host_and_group_defaults_are_checked_against_the_inventory(tmp_path: Path) -> None:
    runbook = load_runbook_text(
        tmp_path,
        "name: d\ntargets: db1\nparams:\n  h: {type: host, default: nosuchhost}\n"
        "  g: {type: group, default: webb}\n  ok: {type: host, default: web1}\n"
        "steps: [{id: a, run: 'echo {{ params.h }} {{ params.g }}'}]\n",
    )
    inv = load_inventory(EXAMPLE)
    with pytest.raises(InputError) as caught:
        resolve_params(runbook, {}, inv)
    found = [str(p) for p in caught.value.problems]
    assert found == [
        f"{runbook.path}:4:28 params.h.default: the default does not fit the inventory of "
        f"{EXAMPLE}: no inventory host named 'nosuchhost' "
        "(pass --param h=VALUE, or change the default)",
        f"{runbook.path}:5:29 params.g.default: the default does not fit the inventory of "
        f"{EXAMPLE}: no inventory group named 'webb' (did you mean 'web'?) "
        "(pass --param g=VALUE, or change the default)",
    ]
    values = resolve_params(runbook, {"h": "db1", "g": "web"}, inv).values
    assert values == {"h": "db1", "g": "web", "ok": "web1"}


PLANNED = """\
name: p
targets: all
params:
  n: {type: int, default: 0}
steps:
  - id: divide
    run: echo {{ 1 // params.n }}
  - id: zone
    run: cat {{ vars.zone_dir }}/db
  - id: guarded
    run: cat {{ vars.zone_dir }}/db
    when: vars.zone_dir is defined
  - id: look
    run: echo {{ captures.nothing | default('x') }} {{ params.n }}
    capture: out
  - id: later
    run: echo {{ 100 // (captures.out | int) }}
    confirm: "wipe {{ vars.zone_dir }} on {{ host.name }}?"
"""


def plan_problems(tmp_path: Path, text: str, **options: str) -> list[str]:
    runbook = load_runbook_text(tmp_path, text)
    inv = load_inventory(EXAMPLE)
    with pytest.raises(InputError) as caught:
        build_plan(runbook, inv, resolve_params(runbook, {}, inv), **options)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_a_template_that_cannot_render_for_another_reason_than_captures_is_a_plan_error(
    tmp_path: Path,
) -> None:
    found = plan_problems(tmp_path, PLANNED.replace("captures.nothing", "params.n"))
    rb = tmp_path / "rb.yaml"
    no_zone = "bastion, db1, web1, web2: 'dict object' has no attribute 'zone_dir'"
    assert found == [
        f"{rb}:7:10 steps[0].run: cannot render on bastion, db1, web1, web2, ns1 and 1 more: "
        "ZeroDivisionError: integer division or modulo by zero (it would fail the same way "
        "at run time; fix the template, or give those hosts what it needs, e.g. the var in "
        "the inventory)",
        f"{rb}:9:10 steps[1].run: cannot render on {no_zone} (it would fail the same way "
        "at run time; fix the template, or give those hosts what it needs, e.g. the var in "
        "the inventory)",
        f"{rb}:18:14 steps[4].confirm: cannot render on {no_zone} (it would fail the same way "
        "at run time; fix the template, or give those hosts what it needs, e.g. the var in "
        "the inventory)",
    ]  # 'guarded' is skipped where the var is missing, 'later' waits for its capture


def test_what_needs_captures_is_shown_with_placeholders(tmp_path: Path) -> None:
    text = PLANNED.replace("captures.nothing", "params.n")
    text = text.replace("{{ 1 // params.n }}", "{{ params.n }}").replace(
        "vars.zone_dir", "host.name"
    )
    runbook = load_runbook_text(tmp_path, text)
    inv = load_inventory(EXAMPLE)
    plan = build_plan(runbook, inv, resolve_params(runbook, {}, inv), targets="db1")
    later = plan.steps["db1"][4]
    assert later.display["run"].startswith("<cannot render yet:")


def test_a_step_hosts_pattern_that_matches_nothing_is_a_plan_error(tmp_path: Path) -> None:
    text = (
        "name: sel\ntargets: production\nsteps:\n  - {id: a, run: uname}\n"
        "  - {id: b, run: 'true', hosts: dbx*}\n  - {id: c, run: 'true', hosts: nosuch}\n"
        "  - {id: d, run: 'true', hosts: web}\n"
    )
    found = plan_problems(tmp_path, text)
    rb = tmp_path / "rb.yaml"
    assert found == [
        f"{rb}:5:33 steps[1].hosts: no host or group of {EXAMPLE} matches 'dbx*' "
        "(did you mean 'db1'?)",
        f"{rb}:6:33 steps[2].hosts: no host or group of {EXAMPLE} matches 'nosuch' "
        "(run 'drp inventory list' to see hosts and groups)",
    ]
    # a pattern matching hosts outside this run is no error: the step is for them
    runbook = load_runbook_text(tmp_path, text.replace("dbx*", "db*").replace("nosuch", "dns"))
    inv = load_inventory(EXAMPLE)
    plan = build_plan(runbook, inv, resolve_params(runbook, {}, inv), targets="db1")
    assert [p.id for p in plan.steps["db1"]] == ["a", "b"]


def test_the_placeholder_run_has_every_key_templates_may_use(tmp_path: Path) -> None:
    from drp.runbook.template import RUN_KEYS

    uses = " ".join(f"{{{{ run.{key} }}}}" for key in RUN_KEYS)
    runbook = load_runbook_text(tmp_path, f"name: r\nsteps: [{{id: a, run: 'echo {uses}'}}]\n")
    inv = load_inventory(EXAMPLE)
    plan = build_plan(runbook, inv, resolve_params(runbook, {}, inv), targets="db1")
    assert plan.steps["db1"][0].display["run"] == "echo '<run id>' r '<operator>' true"


def test_kernel_rollback_and_network_repair_make_the_operator_choose_the_hosts() -> None:
    from drp.runbook.catalog import builtin_dir

    inv = load_inventory(EXAMPLE)
    for name in ("kernel-rollback", "network-repair"):
        runbook = load_runbook(builtin_dir() / f"{name}.yaml")
        assert runbook.targets is None, name
        params = resolve_params(runbook, {}, inv)
        with pytest.raises(InventoryError, match="pass --host HOST or --targets PATTERN"):
            build_plan(runbook, inv, params)
        assert [h.name for h in build_plan(runbook, inv, params, targets="db1").hosts] == ["db1"]


def test_a_plan_problem_never_shows_a_secret(tmp_path: Path) -> None:
    text = (
        "name: s\nparams:\n  token: {type: string, secret: true, default: s3cr3t-token}\n"
        "steps: [{id: a, run: 'echo {{ vars.bay_of[params.token] }}'}]\n"
    )
    found = "\n".join(plan_problems(tmp_path, text, targets="db1"))
    assert "cannot render on db1" in found and "s3cr3t" not in found
