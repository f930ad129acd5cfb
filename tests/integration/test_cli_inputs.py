"""How an operator gives drp its inputs, through the installed ``drp``: params, targets, drafts.

``--params-file``, prompting for a missing param at a real pseudo-terminal (a
secret never echoed), the error without a terminal, ``--targets``/``--host``/
``--limit`` patterns, host and group params, and the DRAFT runbooks. Nothing
here contacts a host: every command is a plan, a validation or a show.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "inventory" / "example.yaml")
DRP = shutil.which("drp") or "drp"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EVERY_HOST = ["bastion", "db1", "web1", "web2", "ns1", "ns-backup"]

ASKS = """\
name: asks
params:
  dev: {type: string, required: true, pattern: '^/dev/[a-z]+$', help: the disk}
  token: {type: string, secret: true, required: true, help: the API token}
  mode: {type: choice, choices: [fast, safe], default: safe}
targets: db1
steps:
  - id: use
    run: use {{ params.dev }} --token {{ params.token }} --{{ params.mode }}
"""

EVERYWHERE = """\
name: everywhere
params:
  peer: {type: host, default: db1}
  tier: {type: group, default: web}
targets: all
steps:
  - id: hello
    run: echo {{ host.name }} peer {{ params.peer }} tier {{ params.tier }}
"""


def env(**extra: str) -> dict[str, str]:
    """drp's environment: no CI (it turns prompting off), a private state dir."""
    out = {k: v for k, v in os.environ.items() if k not in ("CI", "DRP_INVENTORY")}
    out.update(extra)
    return out


def drp(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DRP, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,  # not a terminal: nothing is ever prompted for
        env=env(DRP_STATE_DIR=str(tmp / "state"), HOME=str(tmp)),
        check=False,
    )


def plan(tmp: Path, *args: str) -> dict[str, Any]:
    result = drp("plan", *args, "-i", EXAMPLE, "--format", "json", tmp=tmp)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def book(tmp: Path, text: str, name: str = "rb.yaml") -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


class Terminal:
    """``drp`` on a pseudo-terminal: read what it shows, type answers."""

    def __init__(self, tmp: Path, *args: str, **extra: str) -> None:
        variables = env(TERM="xterm", COLUMNS="120", DRP_STATE_DIR=str(tmp / "state"), **extra)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: drp itself, its stdin/stdout the terminal
            try:
                os.execve(DRP, [DRP, *args], variables)
            finally:
                os._exit(127)
        self.screen = ""

    def read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False once drp closed the terminal."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: every writer of the terminal is gone
            return False
        self.screen += chunk.decode(errors="replace")
        return bool(chunk)

    def expect(self, pattern: str, seconds: float = 30.0) -> str:
        deadline = time.monotonic() + seconds
        while not re.search(pattern, self.text):
            left = deadline - time.monotonic()
            assert left > 0 and self.read(left), f"never saw {pattern!r} in:\n{self.text}"
        return self.text

    @property
    def text(self) -> str:
        return ANSI.sub("", self.screen).replace("\r", "")

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def exit_code(self, seconds: float = 30.0) -> int:
        """Wait for drp to exit, reading everything it showed."""
        deadline = time.monotonic() + seconds
        status = None
        while status is None and time.monotonic() < deadline:
            open_ = self.read(0.1)
            pid, code = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                status = code
            elif not open_:
                time.sleep(0.05)
        if status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            raise AssertionError(f"drp did not exit:\n{self.text}")
        before = None
        while before != len(self.screen) and self.read(0.2):  # the rest: until quiet or EIO
            before = len(self.screen)
        return os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


# -- params ---------------------------------------------------------------------


def test_params_come_from_a_params_file_and_param_overrides_it(tmp_path: Path) -> None:
    values = tmp_path / "params.yaml"
    values.write_text("# tonight's incident\nfailed: /dev/sdb\nforce: yes\n")
    data = plan(tmp_path, "disk-replace", "-H", "db1", "--params-file", str(values))
    assert data["params"] == {"failed": "/dev/sdb", "new_disk": "", "force": True}
    assert data["hosts"]["db1"][2]["commands"]["run"] == "/var/lib/drp/md-inspect.sh /dev/sdb"
    data = plan(
        tmp_path, "disk-replace", "-H", "db1", "--params-file", str(values), "-p", "failed=/dev/sdc"
    )
    assert data["params"]["failed"] == "/dev/sdc"  # --param wins over the file


def test_a_secret_from_a_params_file_is_masked(tmp_path: Path) -> None:
    values = tmp_path / "params.yaml"
    values.write_text("dev: /dev/sdb\ntoken: hunter2-from-file\n")
    result = drp(
        "plan", book(tmp_path, ASKS), "-i", EXAMPLE, "--params-file", str(values), tmp=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "run: use /dev/sdb --token ******** --safe" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("content", "where", "message"),
    [
        ("- /dev/sdb\n", "1:1", "a params file is a YAML mapping of NAME: VALUE"),
        ("failed: [/dev/sdb\n", "1:9", "invalid YAML: the '[' opened here is not closed"),
        ("failed: /dev/sdb\nfailed: /dev/sdc\n", "2:1", "failed: duplicate key 'failed'"),
        (
            "failed: !!python/object:os.system x\n",
            "1:9",
            "invalid YAML: ",  # then PyYAML's words
        ),
    ],
    ids=["not a mapping", "bad YAML", "duplicate key", "unsafe tag"],
)
def test_a_bad_params_file_is_a_located_error(
    tmp_path: Path, content: str, where: str, message: str
) -> None:
    values = tmp_path / "params.yaml"
    values.write_text(content)
    result = drp(
        "plan", "disk-replace", "-i", EXAMPLE, "-H", "db1", "--params-file", str(values),
        tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{values}:{where} {message}" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_params_file_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = drp(
        "plan", "disk-replace", "-i", EXAMPLE, "-H", "db1", "--params-file", str(missing),
        tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{missing} cannot read file: No such file or directory" in result.stderr


def test_a_wrong_value_in_a_params_file_is_located_in_the_file(tmp_path: Path) -> None:
    values = tmp_path / "params.yaml"
    values.write_text("failed: /dev/sdb\nfroce: true\n")
    result = drp(
        "plan", "disk-replace", "-i", EXAMPLE, "-H", "db1", "--params-file", str(values),
        tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{values}:2:8 froce: unknown param (did you mean 'force'?)" in result.stderr


def test_a_missing_required_param_is_prompted_for_and_a_secret_is_not_echoed(
    tmp_path: Path,
) -> None:
    term = Terminal(tmp_path, "plan", book(tmp_path, ASKS), "-i", EXAMPLE)
    try:
        term.expect(r"dev \(the disk\): ")
        term.type("/dev/sdb\n")
        shown = term.expect(r"token \(the API token\): ")
        assert "/dev/sdb" in shown  # a plain param is echoed as typed
        asked = len(term.text)
        term.type("hunter2-typed\n")
        assert term.exit_code() == 0, term.text
        after = term.text[asked:]
        assert "plan asks" in after
        assert "run: use /dev/sdb --token ******** --safe" in after
        assert "hunter2" not in term.text  # neither echoed at the prompt nor in the plan
    finally:
        term.close()


def test_a_prompted_value_is_checked_like_a_given_one(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "plan", book(tmp_path, ASKS), "-i", EXAMPLE)
    try:
        term.expect(r"dev \(the disk\): ")
        term.type("sdb; rm -rf /\n")
        term.expect(r"token \(the API token\): ")
        term.type("hunter2-typed\n")
        assert term.exit_code() == 2, term.text
        assert "dev: 'sdb; rm -rf /' does not match the pattern" in term.text
        assert "hunter2" not in term.text
    finally:
        term.close()


def test_a_missing_required_param_without_a_terminal_is_an_error_naming_it(
    tmp_path: Path,
) -> None:
    result = drp("plan", book(tmp_path, ASKS), "-i", EXAMPLE, "-p", "dev=/dev/sdb", tmp=tmp_path)
    assert result.returncode == 2, result.stdout
    assert (
        "--param token: required param missing (add --param token=VALUE (the API token))"
        in result.stderr
    )
    assert "dev:" not in result.stderr and result.stdout == ""
    both = drp("run", book(tmp_path, ASKS), "-i", EXAMPLE, "--dry-run", tmp=tmp_path)
    assert both.returncode == 2
    assert "2 problems found" in both.stderr
    assert "--param dev: required param missing" in both.stderr


def test_ci_never_prompts_even_at_a_terminal(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "plan", book(tmp_path, ASKS), "-i", EXAMPLE, CI="true")
    try:
        assert term.exit_code() == 2, term.text
        assert "--param dev: required param missing" in term.text
    finally:
        term.close()


# -- targets ----------------------------------------------------------------------


def hosts_of(tmp: Path, *args: str) -> list[str]:
    return list(plan(tmp, book(tmp, EVERYWHERE), *args)["hosts"])


@pytest.mark.parametrize(
    ("args", "hosts"),
    [
        ([], EVERY_HOST),  # the runbook's targets
        (["--limit", "!ns1"], ["bastion", "db1", "web1", "web2", "ns-backup"]),
        (["-t", "dns", "--limit", "!ns1"], ["ns-backup"]),
        (["-t", "production,!web"], ["db1", "ns1", "ns-backup"]),
        (["-t", "all,&dns"], ["ns1", "ns-backup"]),
        (["-t", "&dns"], ["ns1", "ns-backup"]),
        (["-t", "web*"], ["web1", "web2"]),
        (["-t", "production", "-l", "ns*"], ["ns1", "ns-backup"]),
        (["-t", "web,dns", "-l", "web2,ns1"], ["web2", "ns1"]),
        (["-H", "db1", "-H", "web1"], ["db1", "web1"]),
        (["-H", "web1", "--limit", "!ns1"], ["web1"]),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) and value else None,
)
def test_targets_and_limit_patterns(tmp_path: Path, args: list[str], hosts: list[str]) -> None:
    assert hosts_of(tmp_path, *args) == hosts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-H", "db1", "-t", "dns"], "give --host or --targets, not both"),
        (["-t", "dsn"], "did you mean 'dns'?"),
        (["-t", "web", "--limit", "db1"], "no hosts match 'web' limited to 'db1'"),
        (["--limit", "web9"], "did you mean"),
    ],
)
def test_a_pattern_that_selects_nothing_or_clashes_is_an_input_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = drp("plan", book(tmp_path, EVERYWHERE), "-i", EXAMPLE, *args, tmp=tmp_path)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_runbook_without_targets_needs_them_on_the_command_line(tmp_path: Path) -> None:
    result = drp("plan", "kernel-rollback", "-i", EXAMPLE, tmp=tmp_path)
    assert result.returncode == 2
    assert "no targets: the runbook names none (pass --host HOST or --targets PATTERN)" in (
        result.stderr
    )
    assert list(plan(tmp_path, "kernel-rollback", "-t", "web", "-l", "!web2")["hosts"]) == ["web1"]


# -- host and group params ------------------------------------------------------------


def test_host_and_group_params_name_inventory_hosts_and_groups(tmp_path: Path) -> None:
    data = plan(tmp_path, book(tmp_path, EVERYWHERE), "-H", "ns1", "-p", "peer=web2")
    assert data["params"] == {"peer": "web2", "tier": "web"}
    assert data["hosts"]["ns1"][0]["commands"]["run"] == "echo ns1 peer web2 tier web"
    data = plan(tmp_path, book(tmp_path, EVERYWHERE), "-H", "ns1", "-p", "tier=dns")
    assert data["params"]["tier"] == "dns"


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("peer=db2", "--param peer: no inventory host named 'db2'"),
        ("peer=web", "--param peer: no inventory host named 'web'"),  # a group, not a host
        ("tier=dsn", "--param tier: no inventory group named 'dsn'"),
        ("tier=db1", "--param tier: no inventory group named 'db1'"),  # a host, not a group
    ],
)
def test_a_host_or_group_param_naming_nothing_in_the_inventory_is_an_error(
    tmp_path: Path, param: str, message: str
) -> None:
    result = drp("plan", book(tmp_path, EVERYWHERE), "-i", EXAMPLE, "-p", param, tmp=tmp_path)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr


def test_a_host_param_naming_no_host_suggests_the_nearest(tmp_path: Path) -> None:
    result = drp("plan", book(tmp_path, EVERYWHERE), "-i", EXAMPLE, "-p", "peer=db2", tmp=tmp_path)
    assert "did you mean 'db1'" in result.stderr


def test_a_host_param_default_that_is_no_host_is_located_with_a_suggestion(
    tmp_path: Path,
) -> None:
    path = book(tmp_path, EVERYWHERE.replace("default: db1", "default: dbb1"))
    result = drp("plan", path, "-i", EXAMPLE, tmp=tmp_path)
    assert result.returncode == 2
    assert f"{path}:3:31 params.peer.default: the default does not fit the inventory" in (
        result.stderr
    )
    assert "did you mean 'db1'?" in result.stderr


# -- drafts -------------------------------------------------------------------------


def test_a_draft_runbook_says_so_in_show(tmp_path: Path) -> None:
    book = tmp_path / "runbooks" / "wip.yaml"
    book.parent.mkdir()
    book.write_text(
        "name: wip\ndescription: |\n  DRAFT: not yet proved on the rehearsal lab.\n"
        "steps: [{id: a, run: 'true'}]\n"
    )
    result = drp("show", str(book), tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DRAFT: not yet proved on the rehearsal lab" in " ".join(result.stdout.split())


@pytest.mark.parametrize("name", ["kernel-rollback", "network-repair"])
def test_the_lab_proved_recovery_runbooks_are_no_drafts(tmp_path: Path, name: str) -> None:
    result = drp("show", name, tmp=tmp_path)
    assert result.returncode == 0 and "DRAFT" not in result.stdout
    listed = drp("list", "--format", "json", tmp=tmp_path)
    status = {r["name"]: r["status"] for r in json.loads(listed.stdout)}
    assert status[name].startswith("proved by ")
    named = status[name].removeprefix("proved by ").split(", ")
    assert f"test_{name.replace('-', '_')}.py" in named
    lab = Path(__file__).resolve().parents[1] / "lab"
    assert all((lab / test).is_file() for test in named), named


def test_a_proved_runbook_is_not_called_a_draft(tmp_path: Path) -> None:
    result = drp("show", "disk-replace", tmp=tmp_path)
    assert result.returncode == 0 and "DRAFT" not in result.stdout
