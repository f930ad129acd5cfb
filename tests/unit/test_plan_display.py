"""What ``drp plan`` shows of each step kind, as text and as JSON, with secrets masked.

The plan is the review a person does at 3 a.m. before a run: a wait's condition
and its own timeout, the commands a reboot really uses, the file a put writes,
the question a destructive step asks, the captures a step sets.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from drp.cli.plan_view import PLAN_LINES, plan_json, print_plan
from drp.engine import gates
from drp.engine.defaults import DEFAULT_BOOT_ID, DEFAULT_REBOOT
from drp.engine.options import Decision, GateAnswer
from drp.engine.plan import Plan, PlannedStep, build_plan
from drp.errors import InputError
from drp.inventory import load_inventory
from drp.runbook.catalog import builtin_dir
from drp.runbook.loader import load_runbook
from drp.runbook.params import resolve_params
from drp.runbook.template import Placeholder, render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory" / "example.yaml"
DNS_PARAMS = {
    "zone": "example.org",
    "zone_file": "/etc/bind/zones/db.example.org",
    "variant_file": "/etc/bind/zones/db.example.org.failover",
}


def make_plan(
    runbook: str | Path,
    targets: str,
    params: dict[str, str] | None = None,
    inventory: Path = EXAMPLE,
) -> Plan:
    path = runbook if isinstance(runbook, Path) else builtin_dir() / f"{runbook}.yaml"
    book = load_runbook(path)
    inv = load_inventory(inventory)
    return build_plan(book, inv, resolve_params(book, params or {}, inv), targets=targets)


def text_of(plan: Plan, width: int = 80) -> str:
    out = io.StringIO()
    print_plan(Console(file=out, width=width, highlight=False, color_system=None), plan)
    return out.getvalue()


def block(text: str, step: str) -> str:
    """The lines of one step's block in the text plan (its header, then its fields)."""
    lines = text.splitlines()
    header = re.compile(r"^ +\d+\. ")
    start = next(i for i, line in enumerate(lines) if re.match(rf"^ +\d+\. {step} ", line))
    end = next(
        (i for i in range(start + 1, len(lines)) if header.match(lines[i]) or not lines[i]),
        len(lines),
    )
    return "\n".join(lines[start:end])


def planned(plan: Plan, host: str, step: str) -> PlannedStep:
    return next(ps for ps in plan.steps[host] if ps.id == step)


def json_step(plan: Plan, host: str, step: str) -> dict[str, Any]:
    return next(s for s in plan_json(plan)["hosts"][host] if s["id"] == step)


def write(directory: Path, text: str, files: dict[str, str] | None = None) -> Path:
    for name, content in (files or {}).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(content)
    path = directory / "rb.yaml"
    path.write_text(text)
    return path


# -- wait -------------------------------------------------------------------


def test_a_wait_shows_its_condition_progress_interval_and_its_own_timeout() -> None:
    plan = make_plan("disk-replace", "db1", {"failed": "/dev/sdb"})
    shown = block(text_of(plan), "wait-resync")
    header = shown.splitlines()[0]
    assert "timeout 1d00h" in header  # the wait's 24h, not the 5m per attempt of defaults
    assert "5m00s" not in header
    assert (
        "until: exit code 0 and output does not match "
        r"'(recovery|resync|reshape) *=|\[U*_[U_]*\]|\[_[U_]*\]'" in shown
    )
    assert "progress: '(?:recovery|resync) *= *([0-9.]+)%' (group 1: percent done)" in shown
    assert "polls: every 5.0s for at most 1d00h (each poll at most 5m00s;" in shown
    assert "wait: for md in <captures.arrays>; do" in shown

    step = json_step(plan, "db1", "wait-resync")
    assert step["timeout"] == 86400.0
    assert step["wait"] == {
        "interval": 5.0,
        "timeout": 86400.0,
        "poll_timeout": 300.0,
        "until": {
            "exit": 0,
            "match": None,
            "not_match": r"(recovery|resync|reshape) *=|\[U*_[U_]*\]|\[_[U_]*\]",
        },
        "progress": r"(?:recovery|resync) *= *([0-9.]+)%",
    }
    assert step["commands"]["wait"].startswith("for md in <captures.arrays>; do")


def test_a_wait_that_matches_output_with_any_exit_code(tmp_path: Path) -> None:
    book = write(
        tmp_path,
        "name: w\nsteps:\n  - id: w\n    wait: {command: 'true', until: {exit: null, match: ok},"
        " interval: 1m, timeout: 2h}\n",
    )
    plan = make_plan(book, "db1")
    shown = block(text_of(plan), "w")
    assert "until: output matches 'ok'" in shown
    assert "timeout 2h00m" in shown.splitlines()[0]
    assert "progress" not in shown
    # no per-attempt timeout: a poll gets the larger of 30s and 4 intervals
    assert json_step(plan, "db1", "w")["wait"]["poll_timeout"] == 240.0


# -- reboot -----------------------------------------------------------------


def test_a_reboot_shows_drps_default_commands_when_neither_step_nor_host_names_one() -> None:
    plan = make_plan("kernel-rollback", "db1")
    shown = block(text_of(plan), "reboot")
    assert "<host's reboot command>" not in shown
    assert f"reboot: {DEFAULT_REBOOT}" in shown
    assert "from: drp's default; db1 has no reboot_command in the inventory" in shown
    assert f"boot id: {DEFAULT_BOOT_ID}  (drp's default;" in shown
    assert "back: when the host answers with a different boot id, within 15m00s" in shown
    assert "timeout 15m00s" in shown.splitlines()[0]  # not the 10m per attempt

    step = json_step(plan, "db1", "reboot")
    assert step["timeout"] == 900.0
    assert step["commands"] == {"reboot": DEFAULT_REBOOT}
    assert step["reboot"] == {
        "command": DEFAULT_REBOOT,
        "command_from": "default",
        "boot_id_command": DEFAULT_BOOT_ID,
        "boot_id_from": "default",
        "timeout": 900.0,
    }


def test_a_reboot_uses_the_hosts_commands_from_the_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        "hosts:\n  db1:\n    address: 192.0.2.10\n    reboot_command: /sbin/shutdown -r now\n"
        "    boot_id_command: cat /run/boot-id\n"
    )
    plan = make_plan("kernel-rollback", "db1", inventory=inventory)
    shown = block(text_of(plan), "reboot")
    assert "reboot: /sbin/shutdown -r now" in shown
    assert "from: db1's reboot_command in the inventory" in shown
    assert "boot id: cat /run/boot-id  (db1's boot_id_command in the inventory)" in shown
    step = json_step(plan, "db1", "reboot")
    assert step["reboot"]["command_from"] == "inventory"
    assert step["reboot"]["boot_id_from"] == "inventory"
    assert step["commands"]["reboot"] == "/sbin/shutdown -r now"


def test_a_reboot_command_of_the_step_is_rendered_and_masked(tmp_path: Path) -> None:
    book = write(
        tmp_path,
        "name: r\nparams:\n  pw: {type: string, secret: true, default: s3cr3t-pw}\n"
        "  why: {type: string, default: 'kernel 6.1'}\n"
        "steps:\n  - id: r\n    reboot:\n      command: 'ipmi-reboot --pw {{ params.pw }} "
        "--why {{ params.why }}'\n      boot_id_command: cat /id\n      timeout: 5m\n",
    )
    plan = make_plan(book, "db1")
    text = text_of(plan)
    shown = block(text, "r")
    assert "reboot: ipmi-reboot --pw ******** --why 'kernel 6.1'" in shown
    assert "from: the step's; started detached" in shown
    assert "boot id: cat /id  (the step's)" in shown
    step = json_step(plan, "db1", "r")
    assert step["reboot"]["command"] == step["commands"]["reboot"]
    assert step["reboot"]["command_from"] == "runbook"
    assert "s3cr3t" not in text + str(plan_json(plan))


# -- put --------------------------------------------------------------------


def test_a_put_of_a_plain_file_shows_source_size_hash_mode_and_backup() -> None:
    plan = make_plan("disk-replace", "db1", {"failed": "/dev/sdb"})
    source = (builtin_dir() / "files" / "md-inspect.sh").read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    lines = len(source.decode().splitlines())
    shown = block(text_of(plan), "upload-tools")
    assert "put: /var/lib/drp/md-inspect.sh" in shown
    assert (
        f"from: files/md-inspect.sh, as written ({lines} lines, {len(source)} bytes, "
        f"sha256 {digest[:12]}…)" in shown
    )
    assert "file: mode 0755, owner unchanged, no backup, left alone if identical" in shown
    assert "│" not in shown  # a script uploaded as written is not printed whole
    assert json_step(plan, "db1", "upload-tools")["put"] == {
        "dest": "/var/lib/drp/md-inspect.sh",
        "src": "files/md-inspect.sh",
        "template": False,
        "mode": "0755",
        "owner": None,
        "group": None,
        "backup": None,
        "bytes": len(source),
        "lines": lines,
        "sha256": digest,
        "content": None,
        "note": "",
    }


def test_a_put_destination_is_rendered_per_host_in_dns_failover() -> None:
    plan = make_plan("dns-failover", "ns1", DNS_PARAMS)
    shown = block(text_of(plan), "install-zone-tool")
    assert "put: /usr/local/sbin/drp-dns-zone" in shown
    assert "from: files/dns-zone.sh, as written (" in shown
    put = json_step(plan, "ns1", "install-zone-tool")["put"]
    assert put["dest"] == "/usr/local/sbin/drp-dns-zone" and put["mode"] == "0755"


TEMPLATED = """\
name: t
params:
  token: {type: string, secret: true, default: s3cr3t-token}
  zone: {type: string, default: example.org}
targets: dns
steps:
  - id: conf
    put:
      src: files/named.conf.j2
      template: true
      dest: '{{ vars.zone_dir }}/named.conf'
      mode: '0640'
      owner: root
      group: bind
  - id: motd
    put: {content: "hello {{ host.name }}\\nzone {{ params.zone }}\\n", template: true,
          dest: /etc/motd, backup: false}
  - id: raw
    put: {content: "{{ not rendered }}\\n", dest: /etc/raw, group: adm}
  - id: key
    sensitive: true
    put: {content: "token={{ params.token }}\\n", template: true, dest: /etc/key, mode: '0600'}
  - id: long
    put: {content: "{% for n in range(30) %}line {{ n }}\\n{% endfor %}", template: true,
          dest: /etc/long}
"""
NAMED = 'key "xfer" { secret "{{ params.token }}"; };\nzone "{{ params.zone }}" {};\n'


def test_a_templated_put_shows_the_rendered_content_masked(tmp_path: Path) -> None:
    plan = make_plan(write(tmp_path, TEMPLATED, {"files/named.conf.j2": NAMED}), "ns1")
    text = text_of(plan)
    assert "s3cr3t" not in text + str(plan_json(plan))
    shown = block(text, "conf")
    assert "put: /etc/bind/zones/named.conf" in shown
    # a masked secret's length is not told by the size
    assert "from: files/named.conf.j2, rendered as a template (2 lines):" in shown
    assert '│ key "xfer" { secret "********"; };' in shown
    assert '│ zone "example.org" {};' in shown
    assert (
        "file: mode 0640, owner root:bind, backup /etc/bind/zones/named.conf.drp-bak-<run id> "
        "(a rollback restores it), left alone if identical" in shown
    )
    put = json_step(plan, "ns1", "conf")["put"]
    assert put["content"] == 'key "xfer" { secret "********"; };\nzone "example.org" {};\n'
    assert put["template"] is True and put["bytes"] is None and put["sha256"] is None
    assert put["backup"] == "/etc/bind/zones/named.conf.drp-bak-<run id>"


def test_inline_content_is_shown_rendered_or_as_written(tmp_path: Path) -> None:
    plan = make_plan(write(tmp_path, TEMPLATED, {"files/named.conf.j2": NAMED}), "ns1")
    text = text_of(plan)
    motd = block(text, "motd")
    assert "from: inline content, rendered as a template (2 lines, 27 bytes):" in motd
    assert "│ hello ns1\n" in motd and "│ zone example.org" in motd
    assert "mode unchanged (0644 if new), owner unchanged, no backup" in motd
    raw = block(text, "raw")
    assert "from: inline content, as written (1 line, 19 bytes, sha256 " in raw
    assert "│ {{ not rendered }}" in raw
    assert "group adm, backup /etc/raw.drp-bak-<run id>" in raw
    assert json_step(plan, "ns1", "motd")["put"]["content"] == "hello ns1\nzone example.org\n"
    assert json_step(plan, "ns1", "raw")["put"]["content"] == "{{ not rendered }}\n"


def test_a_sensitive_put_does_not_show_its_content(tmp_path: Path) -> None:
    plan = make_plan(write(tmp_path, TEMPLATED, {"files/named.conf.j2": NAMED}), "ns1")
    shown = block(text_of(plan), "key")
    assert "sensitive" in shown.splitlines()[0]
    assert "content not shown: sensitive step" in shown
    assert "token=" not in shown and "│" not in shown
    step = json_step(plan, "ns1", "key")
    assert step["sensitive"] is True
    assert step["put"]["content"] is None and step["put"]["bytes"] is None


def test_a_long_content_shows_its_first_lines_in_text_and_all_in_json(tmp_path: Path) -> None:
    plan = make_plan(write(tmp_path, TEMPLATED, {"files/named.conf.j2": NAMED}), "ns1")
    shown = block(text_of(plan), "long")
    assert f"│ line {PLAN_LINES - 1}" in shown and f"│ line {PLAN_LINES}\n" not in shown
    assert f"│ … {30 - PLAN_LINES} more lines (--format json has them all)" in shown
    content = json_step(plan, "ns1", "long")["put"]["content"]
    assert content.splitlines() == [f"line {n}" for n in range(30)]


def test_a_put_template_that_cannot_render_on_a_host_is_a_plan_error(tmp_path: Path) -> None:
    book = write(
        tmp_path,
        "name: t\nsteps:\n  - id: conf\n    put: {src: files/a.j2, template: true, dest: /etc/a}\n",
        {"files/a.j2": "dir={{ vars.zone_dir }}\n"},
    )
    with pytest.raises(InputError) as caught:
        make_plan(book, "db1,ns1")
    assert [str(p) for p in caught.value.problems] == [
        f"{book}:4:16 steps[0].put.src: cannot render on db1: 'dict object' has no attribute "
        "'zone_dir' (it would fail the same way at run time; fix the template, or give those "
        "hosts what it needs, e.g. the var in the inventory)"
    ]


def test_a_put_of_content_that_uses_captures_says_so(tmp_path: Path) -> None:
    book = write(
        tmp_path,
        "name: t\nsteps:\n  - {id: a, run: hostname, capture: name}\n"
        "  - id: b\n    put: {content: 'name={{ captures.name }}', template: true, dest: /x}\n",
    )
    plan = make_plan(book, "db1")
    shown = block(text_of(plan), "b")
    assert "(1 line, captures are filled in at run time):" in shown
    assert "│ name=<captures.name>" in shown
    assert json_step(plan, "db1", "b")["put"]["bytes"] is None


# -- confirm ----------------------------------------------------------------


def test_a_destructive_step_shows_its_rendered_confirmation() -> None:
    plan = make_plan("disk-replace", "db1", {"failed": "/dev/sdb"})
    question = (
        "Fail and remove every member on <captures.failed> (serial <captures.failed_serial>) "
        "from <captures.arrays>?"
    )
    shown = block(text_of(plan, width=200), "fail-and-remove")
    assert "destructive, asks first" in shown.splitlines()[0]
    assert f"confirm: {question}" in shown
    assert json_step(plan, "db1", "fail-and-remove")["commands"]["confirm"] == question
    # in the order a run uses them: the action, its guard, the question, then verify
    labels = [line.split(":")[0].strip() for line in shown.splitlines()[1:] if ": " in line]
    order = [label for label in labels if label in ("run", "unless", "confirm", "verify[0]")]
    assert order == ["run", "unless", "confirm", "verify[0]"]


def test_confirm_true_shows_the_question_the_gate_asks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    book = write(
        tmp_path,
        "name: t\nsteps:\n"
        "  - {id: boot-once, name: Boot once, run: 'true', confirm: 'Reboot {{ host.name }}?'}\n"
        "  - {id: make-default, name: Make it the default, run: 'true', confirm: true}\n",
    )
    plan = make_plan(book, "db1")
    ps = planned(plan, "db1", "make-default")
    assert ps.step.confirm is True
    shown = block(text_of(plan), "make-default")
    question = "Make it the default is destructive on db1. Run it?"
    assert f"confirm: {question}" in shown
    assert ps.display["confirm"] == question

    asked: list[str] = []

    def ask(hr: Any, step: PlannedStep, kind: str, text: str) -> GateAnswer:
        asked.append(text)
        return GateAnswer(Decision.APPROVE, "test", "")

    monkeypatch.setattr(gates, "ask", ask)
    host = plan.host("db1")
    context = plan.context(host, Placeholder("captures"), {})  # type: ignore[arg-type]
    hr = SimpleNamespace(
        host=host, render=lambda text, shell=True: render(text, context, shell=shell)
    )
    for step in ("make-default", "boot-once"):
        asked.clear()
        gates.confirm(hr, planned(plan, "db1", step))  # type: ignore[arg-type]
        assert asked == [planned(plan, "db1", step).display["confirm"]]


def test_a_confirmation_masks_secrets(tmp_path: Path) -> None:
    book = write(
        tmp_path,
        "name: c\nparams:\n  pw: {type: string, secret: true, default: s3cr3t-pw}\n"
        "steps:\n  - {id: a, run: 'true', confirm: 'Use {{ params.pw }} on {{ host.name }}?'}\n",
    )
    plan = make_plan(book, "db1")
    assert planned(plan, "db1", "a").display["confirm"] == "Use ******** on db1?"
    assert "s3cr3t" not in text_of(plan)


# -- captures, sensitive, flags ---------------------------------------------


def test_captures_a_step_defines_are_listed() -> None:
    plan = make_plan("disk-replace", "db1", {"failed": "/dev/sdb"})
    shown = block(text_of(plan, width=200), "inspect-arrays")
    assert (
        "captures: failed, failed_serial, failed_model, arrays, survivor, survivor_serial, "
        "survivor_model, survivor_bytes" in shown
    )
    step = json_step(plan, "db1", "inspect-arrays")
    assert step["captures"]["arrays"] == "^arrays=(md[0-9]+( md[0-9]+)*)$"
    assert list(step["captures"]) == list(planned(plan, "db1", "inspect-arrays").step.capture)
    assert step["sensitive"] is False
    assert json_step(plan, "db1", "preflight-shell")["captures"] == {}


def test_a_sensitive_step_says_so_in_text_and_json(tmp_path: Path) -> None:
    book = write(
        tmp_path,
        "name: s\nsteps:\n  - id: k\n    run: cat /etc/key\n    sensitive: true\n"
        "    capture: {key: 'key=(.*)', all: null}\n    success_codes: [0, 3]\n",
    )
    plan = make_plan(book, "db1")
    shown = block(text_of(plan, width=200), "k")
    header = shown.splitlines()[0]
    assert "sensitive: output not shown or journaled" in header
    assert "success: exit 0,3" in header
    assert (
        "captures: key, all (all of stdout)  (sensitive: journaled as <sensitive>, "
        "captured again on resume)" in shown
    )
    step = json_step(plan, "db1", "k")
    assert step["sensitive"] is True
    assert step["captures"] == {"key": "key=(.*)", "all": None}
    assert step["success_codes"] == [0, 3]


def test_every_step_shows_its_flags_and_long_lines_are_not_cut() -> None:
    plan = make_plan("disk-replace", "db1", {"failed": "/dev/sdb"})
    text = text_of(plan, width=60)
    assert (
        "  1. preflight-shell run  Host answers and has a POSIX shell  "
        "[sudo; retry ×3 on connection; timeout 5m00s]\n" in text
    )
    # a command reads as it will run: no line break added inside it
    survivor = planned(plan, "db1", "survivor-healthy").display["run"]
    for line in survivor.splitlines():
        assert line in text
    assert " 6. datacenter-swap manual  Physical disk swap  [manual gate]" in text


def test_every_step_kind_has_its_block_in_the_kernel_rollback_plan() -> None:
    plan = make_plan("kernel-rollback", "db1")
    text = text_of(plan)
    data = plan_json(plan)
    assert [s["id"] for s in data["hosts"]["db1"]] == [ps.id for ps in plan.steps["db1"]]
    for ps in plan.steps["db1"]:
        shown = block(text, ps.id)
        assert f"{ps.step.kind}: " in shown, ps.id
        step = json_step(plan, "db1", ps.id)
        assert {"sensitive", "captures", "commands", "timeout"} <= set(step)
        assert (ps.step.kind in step) == (ps.step.kind in ("wait", "reboot", "put"))
