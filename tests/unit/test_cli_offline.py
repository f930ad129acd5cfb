"""The offline commands through the real CLI: validate, list, show, plan, schema, inventory.

Some run through typer's runner (fast), some as a subprocess of the installed ``drp``
(exit codes and stderr exactly as an operator sees them).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drp.cli.app import app
from drp.cli.common import startup_done

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "inventory" / "example.yaml")
runner = CliRunner()
DRP = shutil.which("drp") or "drp"


def drp(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DRP, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def test_validate_builtin_runbooks_and_inventory() -> None:
    result = runner.invoke(app, ["validate", str(ROOT / "runbooks"), EXAMPLE])
    assert result.exit_code == 0, result.output
    assert "✓" in result.output and "inventory" in result.output


def test_validate_reports_problems_with_locations_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    rnu: echo\n")
    result = drp("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4:5 steps[0].rnu: unknown key 'rnu' (did you mean 'run'?)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_plan_shows_rendered_commands_and_masks_secrets(tmp_path: Path) -> None:
    book = tmp_path / "demo.yaml"
    book.write_text(
        "name: demo\nparams:\n  pw: {type: string, secret: true, required: true}\n"
        "  dev: {type: string, required: true}\nsteps:\n  - id: a\n"
        "    run: use {{ params.dev }} {{ params.pw }}\n    confirm: true\n"
    )
    result = drp(
        "plan",
        str(book),
        "-i",
        EXAMPLE,
        "-H",
        "db1",
        "-p",
        "pw=hunter2",
        "-p",
        "dev=x; rm -rf /",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    step = plan["hosts"]["db1"][0]
    assert step["commands"]["run"] == "use 'x; rm -rf /' ********"
    assert step["destructive"] is True
    assert "hunter2" not in result.stdout + result.stderr
    text = drp(
        "run", str(book), "-i", EXAMPLE, "-H", "db1", "-p", "pw=hunter2", "-p", "dev=d", "--dry-run"
    )
    assert text.returncode == 0 and "nothing was contacted" in text.stdout
    assert "hunter2" not in text.stdout + text.stderr


def test_dry_run_of_disk_replace_from_the_readme() -> None:
    result = drp(
        "run",
        "disk-replace",
        "--inventory",
        EXAMPLE,
        "--host",
        "db1",
        "--param",
        "failed=/dev/sdb",
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    for step in ("inspect-arrays", "fail-and-remove", "datacenter-swap", "wait-resync"):
        assert step in result.stdout
    # the flags of every step are shown: '[sudo; …]' is text, not rich markup that vanishes
    words = " ".join(result.stdout.split())
    shell = "Host answers and has a POSIX shell [sudo; retry ×3 on connection; timeout 5m00s]"
    assert shell in words
    assert "Physical disk swap [manual gate]" in words


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["plan", "disk-replce", "-i", EXAMPLE, "-H", "db1"], 2, "did you mean 'disk-replace'"),
        (["plan", "disk-replace", "-i", EXAMPLE, "-H", "db9"], 2, "no host or group matches"),
        (
            ["plan", "disk-replace", "-i", EXAMPLE, "-H", "db1", "-p", "failed=sdb"],
            2,
            "does not match the pattern",
        ),
        (["plan", "disk-replace", "-i", EXAMPLE, "-H", "db1", "-p", "nope=1"], 2, "unknown param"),
        (
            ["plan", "disk-replace", "-i", "/nonexistent.yaml", "-H", "db1"],
            2,
            "inventory file not found",
        ),
        (["resume", "../../etc/passwd"], 2, "invalid run id"),
        (["log", "show", "no-such-run"], 2, "no run matches"),
        (["run", "disk-replace", "-i", EXAMPLE, "--serial", "lots", "-H", "db1"], 2, "--serial"),
    ],
)
def test_bad_input_gets_a_clear_error_and_a_distinct_exit_code(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = subprocess.run(
        [DRP, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": os.path.dirname(DRP) + ":/usr/bin:/bin",
            "DRP_STATE_DIR": str(tmp_path),
            "HOME": str(tmp_path),
        },
        check=False,
    )
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


PLAN_ARGS = ["disk-replace", "-i", EXAMPLE, "-H", "db1"]


@pytest.mark.parametrize(
    "command",
    [
        ["plan", *PLAN_ARGS],
        ["run", *PLAN_ARGS, "--dry-run"],
        ["run", *PLAN_ARGS, "-K"],  # refused before a password prompt, a journal or a host
        ["resume", "20261121-234112-disk-replace-7f3a"],  # the same option
    ],
    ids=lambda command: " ".join(a for a in command if a != EXAMPLE),
)
def test_format_is_text_or_json_and_anything_else_is_an_input_error(
    tmp_path: Path, command: list[str]
) -> None:
    result = subprocess.run(
        [DRP, *command, "--format", "yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DRP_STATE_DIR": str(tmp_path / "state")},
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--format: unknown format 'yaml' (choose text or json)" in result.stderr
    assert result.stdout == ""  # no plan in another format than the one asked for
    assert not (tmp_path / "state").exists()  # no journal, no debug log


def test_a_misspelt_format_gets_a_suggestion() -> None:
    result = drp("plan", *PLAN_ARGS, "-f", "jsno")
    assert result.returncode == 2
    assert "unknown format 'jsno' (did you mean 'json'? choose text or json)" in result.stderr
    for fmt in ("text", "json"):
        assert drp("plan", *PLAN_ARGS, "-f", fmt).returncode == 0


def test_list_and_show() -> None:
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0
    for name in ("disk-replace", "raid-rebuild", "kernel-rollback", "network-repair"):
        assert name in listed.output
    shown = runner.invoke(app, ["show", "disk-replace"])
    assert shown.exit_code == 0
    assert "datacenter-swap" in shown.output and "failed" in shown.output


def test_schema_is_json_schema_with_every_step_key() -> None:
    result = runner.invoke(app, ["schema"])
    schema = json.loads(result.output)
    step = schema["$defs"]["Step"]["properties"]
    for key in (
        "run",
        "local",
        "wait",
        "reboot",
        "manual",
        "put",
        "when",
        "unless",
        "verify",
        "retry",
        "timeout",
        "capture",
        "rollback",
        "on_failure",
        "hosts",
        "become",
        "sensitive",
        "confirm",
    ):
        assert key in step
    inventory = json.loads(runner.invoke(app, ["schema", "--inventory"]).output)
    assert "hosts" in inventory["properties"]


def test_inventory_commands() -> None:
    listed = runner.invoke(app, ["inventory", "list", "production", "-i", EXAMPLE])
    assert listed.exit_code == 0
    assert all(name in listed.output for name in ("db1", "web2", "ns-backup"))
    shown = runner.invoke(app, ["inventory", "show", "db1", "-i", EXAMPLE])
    assert shown.exit_code == 0 and "bastion" in shown.output and "role: database" in shown.output
    assert "198.51.100.10:22" in shown.output


COMMANDS = [
    ["validate"],
    ["list"],
    ["show"],
    ["plan"],
    ["run"],
    ["resume"],
    ["unlock"],
    ["schema"],
    ["inventory", "list"],
    ["inventory", "show"],
    ["inventory", "trust"],
    ["log", "list"],
    ["log", "show"],
    ["log", "report"],
    ["log", "verify"],
    ["log", "export"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output, result.output


@pytest.mark.parametrize(
    "command",
    ["", "build", "up", "down", "status", "ssh", "image", "pull", "insert", "reset", "night"],
)
def test_every_lab_command_has_help_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from drplab.cli import main as lab_main

    with pytest.raises(SystemExit) as done:
        lab_main([command, "--help"] if command else ["--help"])
    assert done.value.code == 0
    assert "Example: python -m drplab" in capsys.readouterr().out


def test_top_level_help_documents_exit_codes() -> None:
    result = drp("--help")
    assert result.returncode == 0
    assert "Exit codes" in result.stdout and "130 interrupted" in result.stdout


def test_python_dash_m_works() -> None:
    result = subprocess.run(
        ["python3", "-m", "drp", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("drp ")


def test_startup_done_resumes_collection_after_main_turned_it_off() -> None:
    gc.disable()  # as main() does
    try:
        startup_done()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # start-up objects are skipped from now on
    finally:
        gc.unfreeze()
        gc.enable()


def test_startup_done_leaves_a_host_program_collector_alone() -> None:
    assert gc.isenabled()
    startup_done()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_show_masks_a_secret_default(tmp_path: Path) -> None:
    book = tmp_path / "sec.yaml"
    book.write_text(
        "name: sec\nparams:\n  token: {type: string, secret: true, default: s3cr3t-value}\n"
        "  dev: {type: string, default: /dev/sdb}\n"
        "steps: [{id: a, run: 'echo {{ params.token }}'}]\n"
    )
    shown = runner.invoke(app, ["show", str(book)])
    assert shown.exit_code == 0, shown.output
    assert "s3cr3t" not in shown.output
    assert "********" in shown.output and "/dev/sdb" in shown.output


def test_validate_checks_an_include_file_itself(tmp_path: Path) -> None:
    broken = tmp_path / "steps.yaml"
    broken.write_text("- id: a\n  run: echo {{ params.x }\n- id: b\n  rnu: echo\n")
    result = drp("validate", str(broken))
    assert result.returncode == 2, result.stdout
    assert f"{broken}:2:8 [0].run: template does not compile" in result.stderr
    assert f"{broken}:4:3 [1].rnu: unknown key 'rnu' (did you mean 'run'?)" in result.stderr
    assert "Traceback" not in result.stderr
    good = runner.invoke(app, ["validate", str(ROOT / "runbooks" / "common")])
    assert good.exit_code == 0, good.output
    assert "preflight.yaml (step list; its params, captures and files are checked" in " ".join(
        good.output.split()
    )


def test_an_alias_bomb_is_a_quick_located_error_not_a_hang(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "name: x\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 7))
        + "steps: [{id: a, run: echo}]\n"
    )
    result = drp("validate", str(bomb))
    assert result.returncode == 2
    assert f"{bomb}:7:5 a5: this value expands to 1111111 values through aliases" in result.stderr


def test_plan_refuses_what_would_fail_at_run_time_with_exit_2(tmp_path: Path) -> None:
    book = tmp_path / "zone.yaml"
    book.write_text("name: zone\nsteps:\n  - id: a\n    run: cat {{ vars.zone_dir }}/db\n")
    result = drp("plan", str(book), "-i", EXAMPLE, "-H", "db1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{book}:4:10 steps[0].run: cannot render on db1: " in result.stderr
    assert "Traceback" not in result.stderr
    ok = drp("plan", str(book), "-i", EXAMPLE, "-H", "ns1")  # ns1 has the var
    assert ok.returncode == 0, ok.stderr
    assert "cat /etc/bind/zones/db" in ok.stdout


def test_a_runbook_that_forgot_its_name_is_told_so(tmp_path: Path) -> None:
    book = tmp_path / "noname.yaml"
    book.write_text("params: {x: {default: a}}\nsteps: [{id: a, run: 'true'}]\n")
    result = drp("validate", str(book))
    assert result.returncode == 2
    assert "name: required key is missing (add 'name:')" in result.stderr


def test_verify_all_without_runs_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    result = drp("log", "verify", "--all", "--state-dir", str(state))
    assert result.returncode == 0, result.stderr
    assert "no runs in" in result.stdout and "nothing to verify" in result.stdout
