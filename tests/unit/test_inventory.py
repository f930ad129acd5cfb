"""The inventory loader: every problem in one pass, each once, located, with a hint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drp.cli.app import app
from drp.errors import InventoryError
from drp.inventory import load_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "example.yaml"
runner = CliRunner()


def problems(tmp_path: Path, text: str) -> list[str]:
    """Every problem ``text`` has as an inventory, as printed, with paths relative to tmp_path."""
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    return [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems]


def pydantic_worded(found: list[str]) -> list[str]:
    """pydantic's own wording (which its releases change) folded to ``<pydantic>``.

    What drp owns stays exact: the location, the field, the hint in parentheses;
    a limit or choice named in pydantic's text is kept as ``<pydantic: VALUE>``.
    """
    out = []
    for line in found:
        head, sep, rest = line.partition(": Input should be ")
        if not sep:
            out.append(line)
            continue
        message, hint_sep, hint = rest.partition(" (")
        value = re.search(r"(\d{3,}|'[^']*')", message)
        tag = f"<pydantic: {value.group(1)}>" if value else "<pydantic>"
        out.append(f"{head}: {tag}" + (f" ({hint}" if hint_sep else ""))
    return out


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    return load_inventory(path)


# The audit's file: a bad port, a typo of a jump host, group mistakes.
AUDIT = """\
hosts:
  a: {address: 10.0.0.1, jump: bastoin, fallback: ["10.0.0.2:xx", "10.0.0.3:99999", "[::1]:22"]}
  bastion: {}

groups:
  g: {hosts: [a, c], children: [g2, nope]}
  g2: {children: [g]}
"""


def test_every_problem_is_reported_once_in_file_order(tmp_path: Path) -> None:
    assert problems(tmp_path, AUDIT) == [
        "inv.yaml:2:32 hosts.a.jump: unknown jump host 'bastoin' (did you mean 'bastion'? "
        "a host outside the inventory: write its full DNS name or user@host)",
        "inv.yaml:2:52 hosts.a.fallback[0]: invalid address '10.0.0.2:xx': port 'xx' is not "
        "a number (a port is a number from 1 to 65535)",
        "inv.yaml:2:67 hosts.a.fallback[1]: invalid address '10.0.0.3:99999': port 99999 is "
        "out of range (a port is a number from 1 to 65535)",
        "inv.yaml:6:18 groups.g.hosts[1]: unknown host 'c' (declare it under 'hosts:')",
        "inv.yaml:6:37 groups.g.children[1]: unknown group 'nope' (declare it under 'groups:')",
        "inv.yaml:7:19 groups.g2.children[0]: group cycle: g -> g2 -> g "
        "(a group cannot contain itself)",
    ]


def test_structural_problems_do_not_hide_the_others(tmp_path: Path) -> None:
    """A bad key in one host, a bad group, bad defaults: the semantic checks still run."""
    text = """\
defaults: {port: 70000, conect_timeout: 5s}
hosts:
  a: {adress: 10.0.0.1, jump: bastoin, fallback: ["10.0.0.3:99999"]}
  bastion: {port: many}
  "bad name!": {}
  b: {fallback: [{address: x, jump: bastoin}]}
groups:
  g: {hosts: [a, c], children: nope}
  h: {hosts: [bastoin], vars: 3}
"""
    assert pydantic_worded(problems(tmp_path, text)) == [
        "inv.yaml:1:18 defaults.port: <pydantic: 65535>",
        "inv.yaml:1:25 defaults.conect_timeout: unknown key 'conect_timeout' "
        "(did you mean 'connect_timeout'?)",
        "inv.yaml:3:7 hosts.a.adress: unknown key 'adress' (did you mean 'address'?)",
        "inv.yaml:3:31 hosts.a.jump: unknown jump host 'bastoin' (did you mean 'bastion'? "
        "a host outside the inventory: write its full DNS name or user@host)",
        "inv.yaml:3:51 hosts.a.fallback[0]: invalid address '10.0.0.3:99999': port 99999 is "
        "out of range (a port is a number from 1 to 65535)",
        "inv.yaml:4:19 hosts.bastion.port: <pydantic> (write a whole number, e.g. 3)",
        "inv.yaml:5:3 hosts.bad name!: invalid host name 'bad name!' (use letters, digits, "
        "'.', '_' and '-', starting with a letter, digit or '_')",
        "inv.yaml:6:37 hosts.b.fallback[0].jump: unknown jump host 'bastoin' (did you mean "
        "'bastion'? a host outside the inventory: write its full DNS name or user@host)",
        "inv.yaml:8:18 groups.g.hosts[1]: unknown host 'c' (declare it under 'hosts:')",
        "inv.yaml:8:32 groups.g.children: <pydantic> "
        "(write a list: [a, b], or one '- item' per line)",
        "inv.yaml:9:15 groups.h.hosts[0]: unknown host 'bastoin' (did you mean 'bastion'?)",
        "inv.yaml:9:31 groups.h.vars: <pydantic> (write a mapping: one 'key: value' per line)",
    ]


def test_a_jump_host_s_problems_are_reported_once(tmp_path: Path) -> None:
    """Two hosts through one bad bastion: its problem once, not once per host using it."""
    text = """\
hosts:
  bastion: {fallback: ["192.0.2.1:0"]}
  db1: {jump: bastion}
  db2: {jump: bastion, fallback: [{address: 192.0.2.3, jump: bastion}]}
"""
    assert problems(tmp_path, text) == [
        "inv.yaml:2:24 hosts.bastion.fallback[0]: invalid address '192.0.2.1:0': port 0 is "
        "out of range (a port is a number from 1 to 65535)",
    ]


def test_a_group_shared_by_two_parents_is_reported_once(tmp_path: Path) -> None:
    text = """\
hosts:
  a:
groups:
  shared: {hosts: [a, ghost], children: [phantom]}
  one: {children: [shared]}
  two: {children: [shared, one]}
"""
    assert problems(tmp_path, text) == [
        "inv.yaml:4:23 groups.shared.hosts[1]: unknown host 'ghost' (declare it under 'hosts:')",
        "inv.yaml:4:42 groups.shared.children[0]: unknown group 'phantom' "
        "(declare it under 'groups:')",
    ]


def test_jump_host_cycles_are_reported_once(tmp_path: Path) -> None:
    text = """\
hosts:
  a: {jump: b}
  b: {jump: a}
  c: {jump: c}
  d: {jump: a}
"""
    assert problems(tmp_path, text) == [
        "inv.yaml:3:13 hosts.b.jump: jump host cycle: a -> b -> a "
        "(a host cannot be reached through itself)",
        "inv.yaml:4:13 hosts.c.jump: jump host cycle: c -> c "
        "(a host cannot be reached through itself)",
    ]


def test_invalid_names_are_located_at_their_key(tmp_path: Path) -> None:
    text = """\
hosts:
  ok: {}
  "web 1": {address: 10.0.0.1}
  -x:
  1: {}
  none: {}
groups:
  "": {hosts: [ok]}
"""
    assert problems(tmp_path, text) == [
        "inv.yaml:3:3 hosts.web 1: invalid host name 'web 1' (use letters, digits, '.', '_' "
        "and '-', starting with a letter, digit or '_')",
        "inv.yaml:4:3 hosts.-x: invalid host name '-x' (use letters, digits, '.', '_' and '-', "
        "starting with a letter, digit or '_')",
        "inv.yaml:5:3 hosts.1: invalid host name 1: YAML reads it as int, not text "
        '(quote the name, e.g. "1": or "yes":)',
        "inv.yaml:6:3 hosts.none: invalid host name 'none': it is reserved "
        "(rename the host; 'jump: none' means no jump host)",
        "inv.yaml:8:3 groups: invalid group name '' (use letters, digits, '.', '_' and '-', "
        "starting with a letter, digit or '_')",
    ]


def test_a_host_written_as_an_address_is_told_how_to_write_it(tmp_path: Path) -> None:
    assert problems(tmp_path, "hosts:\n  db1: 10.0.0.1\n") == [
        "inv.yaml:2:8 hosts.db1: a host's settings are a mapping, not '10.0.0.1' "
        "(write db1: {address: 10.0.0.1})",
    ]


def test_sections_that_are_not_mappings(tmp_path: Path) -> None:
    assert problems(tmp_path, "hosts:\ngroups: [a]\n") == [
        "inv.yaml:1:7 hosts: 'hosts' is empty (indent the hosts under it, or remove it)",
        "inv.yaml:2:9 groups: 'groups' must be a mapping of group names to their settings, "
        "not a list (one 'NAME: {...}' per line, indented under 'groups:')",
    ]


PORT_HINT = "(a port is a number from 1 to 65535)"


def test_fallback_and_jump_ports_are_checked(tmp_path: Path) -> None:
    text = """\
hosts:
  a:
    fallback:
      - "10.0.0.3:99999"
      - "10.0.0.4:0"
      - "10.0.0.5:-1"
      - "[2001:db8::5]:65536"
      - {address: "10.0.0.6:123456", jump: none}
      - {address: 10.0.0.7, jump: "ops@192.0.2.2:70000"}
  b: {jump: "ops@192.0.2.2:0"}
  c: {jump: "192.0.2.2:65535", fallback: ["10.0.0.8:1", "[2001:db8::8]:2222", "2001:db8::9"]}
"""
    assert problems(tmp_path, text) == [
        f"inv.yaml:4:9 hosts.a.fallback[0]: invalid address '10.0.0.3:99999': port 99999 "
        f"is out of range {PORT_HINT}",
        f"inv.yaml:5:9 hosts.a.fallback[1]: invalid address '10.0.0.4:0': port 0 "
        f"is out of range {PORT_HINT}",
        f"inv.yaml:6:9 hosts.a.fallback[2]: invalid address '10.0.0.5:-1': port '-1' "
        f"is not a number {PORT_HINT}",
        f"inv.yaml:7:9 hosts.a.fallback[3]: invalid address '[2001:db8::5]:65536': port 65536 "
        f"is out of range {PORT_HINT}",
        f"inv.yaml:8:19 hosts.a.fallback[4].address: invalid address '10.0.0.6:123456': port "
        f"123456 is out of range {PORT_HINT}",
        f"inv.yaml:9:35 hosts.a.fallback[5].jump: invalid jump host 'ops@192.0.2.2:70000': "
        f"port 70000 is out of range {PORT_HINT}",
        f"inv.yaml:10:13 hosts.b.jump: invalid jump host 'ops@192.0.2.2:0': port 0 "
        f"is out of range {PORT_HINT}",
    ]


def test_valid_ports_and_ipv6_addresses(tmp_path: Path) -> None:
    text = """\
hosts:
  c: {jump: "192.0.2.2:65535", fallback: ["10.0.0.8:1", "[2001:db8::8]:2222", "2001:db8::9"]}
"""
    c = load(tmp_path, text).get("c")
    assert c.jump is not None and (c.jump.address, c.jump.port) == ("192.0.2.2", 65535)
    assert [(a.host, a.port) for a in c.fallback] == [
        ("10.0.0.8", 1),
        ("2001:db8::8", 2222),
        ("2001:db8::9", 22),
    ]


def test_malformed_addresses(tmp_path: Path) -> None:
    text = """\
hosts:
  a: {fallback: ["[::1]x", "[::1", "1:2:3", ":22", {address: "", jump: ""}]}
"""
    assert problems(tmp_path, text) == [
        "inv.yaml:2:18 hosts.a.fallback[0]: invalid address '[::1]x': unexpected 'x' after ']' "
        "(write '[v6]' or '[v6]:port')",
        "inv.yaml:2:28 hosts.a.fallback[1]: invalid address '[::1': the '[' is never closed "
        "(write '[v6]' or '[v6]:port')",
        "inv.yaml:2:36 hosts.a.fallback[2]: invalid address '1:2:3': not an IPv6 address, nor "
        "host:port (write an IPv6 address with a port as '[v6]:port')",
        "inv.yaml:2:45 hosts.a.fallback[3]: invalid address ':22': the host part is empty "
        "(write 'host', 'host:port' or '[v6]:port')",
        "inv.yaml:2:62 hosts.a.fallback[4].address: invalid address '': the address is empty "
        "(write 'host', 'host:port' or '[v6]:port')",
        "inv.yaml:2:72 hosts.a.fallback[4].jump: invalid jump host '': it is empty "
        "(name an inventory host, or write user@host:port; 'none' connects directly)",
    ]


def test_host_level_jump_none_is_direct(tmp_path: Path) -> None:
    text = """\
hosts:
  bastion: {}
  a: {jump: none, fallback: ["10.0.0.2", {address: 10.0.0.3, jump: bastion}]}
  b: {jump: None}
  c: {jump: bastion, fallback: [{address: 10.0.0.4, jump: none}]}
"""
    inv = load(tmp_path, text)
    a, b, c = inv.get("a"), inv.get("b"), inv.get("c")
    assert a.jump is None and b.jump is None
    assert a.jump_for(a.fallback[0]) is None  # like the primary: direct
    through = a.jump_for(a.fallback[1])
    assert through is not None and through.name == "bastion"
    assert c.jump is not None and c.jump_for(c.fallback[0]) is None


def test_a_jump_close_to_an_inventory_host_is_a_typo(tmp_path: Path) -> None:
    text = """\
hosts:
  bastion: {}
  db1: {}
  a: {jump: bastoin}
  b: {jump: db2}
  c: {jump: bastoin.example.com}
  d: {jump: ops@bastoin}
  e: {jump: "bastoin:2222"}
  f: {jump: gateway}
  g: {jump: bstn}
"""
    assert problems(tmp_path, text) == [
        "inv.yaml:4:13 hosts.a.jump: unknown jump host 'bastoin' (did you mean 'bastion'? "
        "a host outside the inventory: write its full DNS name or user@host)",
        "inv.yaml:5:13 hosts.b.jump: unknown jump host 'db2' (did you mean 'db1'? "
        "a host outside the inventory: write its full DNS name or user@host)",
    ]


def test_a_name_is_no_typo_of_a_short_host_many_edits_away(tmp_path: Path) -> None:
    """Two edits turn 'db2' into 'b' and 'gw0' into 'h10': too many for a short name."""
    text = """\
hosts:
  b: {}
  h10: {}
  x: {jump: db2}
  y: {jump: gw0}
  z: {jump: bastoin.example.com}
"""
    inv = load(tmp_path, text)
    x, y, z = inv.get("x"), inv.get("y"), inv.get("z")
    assert x.jump is not None and (x.jump.address, x.jump.port) == ("db2", 22)
    assert y.jump is not None and y.jump.address == "gw0"
    assert z.jump is not None and z.jump.address == "bastoin.example.com"


def test_become_mistakes_are_told_once(tmp_path: Path) -> None:
    text = """\
hosts:
  a: {become: {method: su}}
  b: {become: [yes]}
  c: {become: maybe}
"""
    assert pydantic_worded(problems(tmp_path, text)) == [
        "inv.yaml:2:24 hosts.a.become.method: <pydantic: 'sudo'> (did you mean 'sudo'?)",
        "inv.yaml:3:15 hosts.b.become: become is true, false or {user: ..., password_env: ...}",
        "inv.yaml:4:15 hosts.c.become: <pydantic> (write true or false)",
    ]


def test_unknown_host_suggests_or_says_where_to_look() -> None:
    inv = load_inventory(EXAMPLE)
    with pytest.raises(InventoryError) as caught:
        inv.get("db")
    assert str(caught.value) == f"{EXAMPLE} hosts: no host named 'db' (did you mean 'db1'?)"
    with pytest.raises(InventoryError) as caught:
        inv.get("zzz")
    assert str(caught.value) == (
        f"{EXAMPLE} hosts: no host named 'zzz' (run 'drp inventory list' to see the hosts)"
    )


def test_the_example_inventory_is_valid() -> None:
    inv = load_inventory(EXAMPLE)
    db1 = inv.get("db1")
    assert db1.jump is not None and db1.jump.name == "bastion"
    assert [db1.jump_for(a) for a in db1.fallback] == [db1.jump, None]


def drp(*args: str) -> subprocess.CompletedProcess[str]:
    """drp as an operator runs it: exit code, stdout and stderr apart."""
    return subprocess.run(
        [sys.executable, "-m", "drp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_show_an_unknown_host_prints_nothing_on_stdout() -> None:
    result = drp("inventory", "show", "db", "-i", str(EXAMPLE))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: 1 problem found\n  {EXAMPLE} hosts: no host named 'db' (did you mean 'db1'?)\n"
    )


def test_show_and_list_say_how_each_fallback_is_reached(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(
        """\
hosts:
  bastion: {address: 192.0.2.1}
  db1:
    address: 203.0.113.10
    jump: bastion
    fallback:
      - 198.51.100.10
      - {address: 192.0.2.10, jump: none}
      - {address: "192.0.2.20:2222", jump: ops@192.0.2.2}
      - "[2001:db8::1]:2200"
      - {address: "[fe80::1]", jump: "ops@[fe80::2]:22"}
  web1: {fallback: [198.51.100.20]}
"""
    )
    inventory = str(tmp_path / "inv.yaml")
    shown = runner.invoke(app, ["inventory", "show", "db1", "-i", inventory])
    assert shown.exit_code == 0, shown.output
    assert (
        "  fallback:\n"
        "  - 198.51.100.10:22 via bastion\n"
        "  - 192.0.2.10:22 direct\n"
        "  - 192.0.2.20:2222 via ops@192.0.2.2\n"
        "  - '[2001:db8::1]:2200 via bastion'\n"
        "  - '[fe80::1]:22 via ops@[fe80::2]:22'\n"
    ) in shown.stdout
    listed = runner.invoke(app, ["inventory", "list", "-i", inventory], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines() if "via" in line or "direct" in line]
    assert [row.split("│")[5].strip() for row in rows] == [
        "198.51.100.10:22 via bastion",
        "192.0.2.10:22 direct",
        "192.0.2.20:2222 via ops@192.0.2.2",
        "[2001:db8::1]:2200 via bastion",
        "[fe80::1]:22 via ops@[fe80::2]:22",
        "198.51.100.20:22 direct",
    ]
