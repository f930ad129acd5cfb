"""Bad numbers, addresses and greedy templates get located errors, not hangs or crashes."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from drp.errors import InventoryError, RunbookError
from drp.inventory import load_inventory
from drp.runbook.loader import load_runbook
from drp.runbook.template import TemplateProblem, compile_check, render


def runbook_problems(tmp_path: Path, steps: str, header: str = "") -> list[str]:
    path = tmp_path / "rb.yaml"
    path.write_text(f"name: t\n{header}steps:\n{steps}")
    with pytest.raises(RunbookError) as caught:
        load_runbook(path)
    return [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout", ".inf", "out of range"),
        ("timeout", ".nan", "out of range"),
        ("timeout", "0s", "must be more than zero"),
        ("timeout", "0", "must be more than zero"),
        ("timeout", "400d", "out of range"),
        ("retry", "{attempts: 2, delay: .inf}", "out of range"),
        ("retry", "{attempts: 2, max_delay: .inf}", "out of range"),
        ("retry", "{attempts: 2, backoff: .nan}", "less than or equal"),
        ("wait", "{command: 'true', interval: 0}", "must be more than zero"),
        ("wait", "{command: 'true', timeout: .inf}", "out of range"),
        ("wait", "{command: 'true', until: {exit: 300}}", "less than or equal to 255"),
    ],
)
def test_every_duration_and_number_is_bounded(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    action = "" if field == "wait" else "    run: 'true'\n"
    found = runbook_problems(tmp_path, f"  - id: a\n{action}    {field}: {value}\n")
    assert len(found) == 1, found
    assert found[0].startswith("rb.yaml:")
    assert message in found[0]


def test_reboot_and_default_timeouts_are_bounded_too(tmp_path: Path) -> None:
    found = runbook_problems(
        tmp_path,
        "  - id: a\n    reboot: {timeout: .inf}\n",
        header="defaults: {timeout: 0s}\n",
    )
    assert [p.split(" ")[1] for p in found] == ["defaults.timeout:", "steps[0].reboot.timeout:"]


def test_inventory_connect_timeout_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("defaults: {connect_timeout: .inf}\nhosts:\n  a: {}\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert "out of range" in str(caught.value.problems[0])


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1; touch /tmp/x", "is not a DNS label"),
        ("-oProxyCommand=touch /tmp/x", "cannot start with '-'"),
        ("a b", "is not a DNS label"),
        ("$(touch x)", "is not a DNS label"),
        ("db1.\u0435xample.com", "CYRILLIC SMALL LETTER IE"),
        ("db1.example.com\u200b", "ZERO WIDTH SPACE"),
        ("db1..example.com", "is not a DNS label"),
    ],
)
def test_addresses_must_be_host_names_or_ips(tmp_path: Path, address: str, reason: str) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        f'hosts:\n  a: {{address: "{address}"}}\n  b: {{fallback: ["{address}:22"]}}\n',
        encoding="utf-8",
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    found = [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems]
    assert [p.split(" ")[0] for p in found] == ["inv.yaml:2:16", "inv.yaml:3:18"]
    assert reason in found[0]
    assert "invalid address" in found[1]


def test_good_addresses_still_load(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        "hosts:\n  a: {address: 192.0.2.1}\n  b: {address: '2001:db8::1'}\n"
        "  c: {address: db1.example.com.}\n  d: {address: xn--bcher-kva.example}\n"
        "  e_1: {}\n  f: {fallback: ['[2001:db8::2]:2222', 'h-2.example:22']}\n"
    )
    assert len(load_inventory(path).hosts) == 6


GREEDY = [
    "{{ ('x'*100000)*3000 }}",
    "{{ 'x' * 2000000 }}",
    "{{ 'x'.ljust(999999999) }}",
    "{{ 'x'|center(999999999) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:>{}}'.format(1, 999999999) }}",
    "{{ [1]|slice(999999999)|list }}",
    "{{ '%999999999d'|format(1) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}",
    "{{ lipsum(999999) }}",
    "{% set x = 'abcdefgh' %}" + "{% set x = x ~ x ~ x ~ x %}" * 20 + "{{ x | length }}",
    "{% set x = 'abcdefgh' %}" + "{% set x = x + x %}" * 40 + "{{ x | length }}",
    "{{ namespace(s='x') }}",
]


@pytest.mark.parametrize("template", GREEDY)
def test_templates_cannot_allocate_without_bound(template: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TemplateProblem):
        compile_check(template)
        render(template, {}, shell=True)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50


def test_a_constant_that_is_too_big_is_a_located_validate_error(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text("name: t\nsteps:\n  - id: a\n    run: echo {{ ('x'*100000)*3000 }}\n")
    done = subprocess.run(
        ["bash", "-c", f"ulimit -v 600000; drp validate {path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{path}:4:10 steps[0].run: the repetition would make more than" in done.stderr


def test_ordinary_arithmetic_and_formatting_still_work() -> None:
    out = render(
        "{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ [1] + [2] }} {{ '%05d' % 7 }} {{ 'x'|center(5) }}|"
        "{{ '{}-{}'.format(1, 2) }}",
        {},
        shell=False,
    )
    assert out == "ababab 1024 [1, 2] 00007   x  |1-2"
