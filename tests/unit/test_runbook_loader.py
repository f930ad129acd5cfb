"""The runbook loader: each kind of bad input gets a located problem; good input loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drp.errors import RunbookError
from drp.runbook.catalog import builtin_dir
from drp.runbook.loader import load_runbook

GOOD = """\
name: good
params:
  dev: {type: string, required: true, pattern: '^/dev/'}
steps:
  - id: look
    run: lsblk {{ params.dev }}
    capture: out
  - id: use
    run: echo {{ captures.out }}
"""


def write(tmp_path: Path, text: str | bytes, name: str = "rb.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(RunbookError) as caught:
        load_runbook(path)
    return [str(p) for p in caught.value.problems]


def test_good_runbook_loads_with_hash(tmp_path: Path) -> None:
    book = load_runbook(write(tmp_path, GOOD))
    assert [s.id for s in book.steps] == ["look", "use"]
    assert book.steps[0].capture == {"out": None}
    assert len(book.sha256) == 64


def test_hash_changes_with_content(tmp_path: Path) -> None:
    first = load_runbook(write(tmp_path, GOOD)).sha256
    second = load_runbook(write(tmp_path, GOOD.replace("lsblk", "lsblk -b"))).sha256
    assert first != second


def test_unknown_key_has_location_and_suggestion(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD.replace("    capture: out", "    captur: out")))
    assert len(found) == 2  # the typo, and the capture it no longer defines
    assert "rb.yaml:7:5 steps[0].captur: unknown key 'captur'" in found[0]
    assert "did you mean 'capture'?" in found[0]
    assert "capture 'out' is not set by an earlier step" in found[1]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
name: Bad Name
steps:
  - id: a
    run: echo {{ params.nope }}
  - id: a
    run: echo
    retry: {attempts: 0}
    timeout: soon
  - id: b
  - id: c
    wait: {command: x, progress: '(['}
"""
    found = "\n".join(problems(write(tmp_path, text)))
    assert "name: String should match pattern" in found
    assert "steps[0].run: undefined param 'nope'" in found
    assert "steps[1].id: duplicate step id 'a'" in found
    assert "steps[1].retry.attempts" in found
    assert "invalid duration 'soon'" in found
    assert "steps[2]: a step has exactly one action" in found
    assert "steps[3].wait.progress: invalid regular expression" in found


def test_malformed_yaml_points_at_the_line(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "name: x\nsteps:\n  - id: a\n   run: [unclosed\n"))
    assert len(found) == 1
    assert ":4:" in found[0] and "invalid YAML" in found[0]


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "name: x\nname: y\nsteps: [{id: a, run: 'true'}]\n"))
    assert "rb.yaml:2:1 name: duplicate key 'name'" in found[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"   \n\n", "file is empty"),
        (b"name: x\nsteps: [{id: a, run: '\xff'}]\n", "not UTF-8"),
        (b"- just\n- a list\n", "a runbook is a YAML mapping"),
        (b"name: x\n", "required key 'steps' is missing"),
        (b"name: x\nsteps: []\n", "needs at least one step"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    assert message in "\n".join(problems(write(tmp_path, content)))


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, b"# " + b"x" * (10 * 1024 * 1024) + b"\nname: x\n")
    assert "the limit is" in problems(path)[0]


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read file" in problems(tmp_path / "absent.yaml")[0]


def test_template_that_does_not_compile(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "name: x\nsteps:\n  - id: a\n    run: echo {{ oops\n"))
    assert "steps[0].run: template does not compile" in found[0]


def test_unknown_template_name(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "name: x\nsteps:\n  - id: a\n    run: echo {{ dev }}\n"))
    assert "unknown name 'dev'" in found[0]


def test_capture_must_come_from_an_earlier_step(tmp_path: Path) -> None:
    text = (
        "name: x\nsteps:\n  - id: a\n    run: echo {{ captures.later }}\n"
        "  - id: b\n    run: echo hi\n    capture: later\n"
    )
    assert "capture 'later' is not set by an earlier step" in problems(write(tmp_path, text))[0]


def test_includes_expand_and_report_in_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    write(tmp_path, "steps:\n  - id: shared\n    run: uname\n", "common/checks.yaml")
    main = write(
        tmp_path, "name: x\nsteps:\n  - include: common/checks.yaml\n  - id: own\n    run: 'true'\n"
    )
    book = load_runbook(main)
    assert [s.id for s in book.steps] == ["shared", "own"]
    assert len(book.files) == 2
    write(tmp_path, "steps:\n  - id: shared\n    rnu: uname\n", "common/checks.yaml")
    found = problems(main)
    assert "common/checks.yaml:3:5 steps[0].rnu: unknown key" in found[0]


def test_include_cycle(tmp_path: Path) -> None:
    write(tmp_path, "steps:\n  - include: b.yaml\n", "a.yaml")
    write(tmp_path, "steps:\n  - include: a.yaml\n", "b.yaml")
    main = write(tmp_path, "name: x\nsteps:\n  - include: a.yaml\n")
    assert any("include cycle" in p for p in problems(main))


def test_param_consistency(tmp_path: Path) -> None:
    text = (
        "name: x\nparams:\n  mode: {type: choice}\n  n: {type: int, required: true, "
        "default: 3}\nsteps: [{id: a, run: 'true'}]\n"
    )
    found = "\n".join(problems(write(tmp_path, text)))
    assert "needs 'choices" in found
    assert "not required" in found


def test_builtin_runbooks_all_validate() -> None:
    names = sorted(p.stem for p in builtin_dir().glob("*.yaml"))
    assert {"disk-replace", "raid-rebuild", "kernel-rollback", "network-repair"} <= set(names)
    for path in builtin_dir().glob("*.yaml"):
        book = load_runbook(path)
        assert book.description, path


def test_an_optional_param_needs_a_default(tmp_path: Path) -> None:
    """Without one it reached templates as None: 'wipe {{ params.x }}' ran 'wipe None'."""
    text = (
        "name: x\nparams:\n  x: {type: string}\n  y: {type: string, default: ''}\n"
        "  z: {type: string, required: true}\nsteps: [{id: a, run: 'wipe {{ params.x }}'}]\n"
    )
    found = problems(write(tmp_path, text))
    assert found == [
        f"{tmp_path / 'rb.yaml'}:3:6 params.x: an optional param needs a default: "
        "give it a default (e.g. '') or make it required"
    ]


def test_exit_codes_in_retry_and_success_codes_are_real_exit_codes(tmp_path: Path) -> None:
    text = (
        "name: x\nsteps:\n  - id: a\n    run: 'true'\n    success_codes: [0, 256]\n"
        "    retry: {failures: [exit, -1, 75]}\n"
    )
    found = "\n".join(problems(write(tmp_path, text)))
    # drp's contract is the location, the field and the bound; the words are pydantic's
    assert re.search(r":5:\d+ steps\[0\]\.success_codes\[1\]: .*\b255\b", found), found
    assert re.search(r":6:\d+ steps\[0\]\.retry\.failures\[1\]: .*\b0\b", found), found


def test_param_defaults_are_checked_at_load(tmp_path: Path) -> None:
    text = """\
name: x
params:
  m: {type: int, default: abc}
  c: {type: choice, choices: [a, b], default: z}
  p: {type: string, pattern: '^a+$', default: bbb}
  d: {type: duration, default: forever}
  b: {type: bool, default: perhaps}
  h: {type: host, default: nosuchhost}
  l: {type: string, default: [a, b]}
  ok: {type: duration, default: 5m}
steps: [{id: a, run: 'true'}]
"""
    found = problems(write(tmp_path, text))
    where = {p.split(" ")[0].rsplit(":", 2)[-2]: p for p in found}  # line -> problem
    assert len(found) == 6, found  # h is checked against an inventory when planning
    assert "params.m.default: invalid default: expected a whole number, got 'abc'" in where["3"]
    assert "params.c.default: invalid default: 'z' is not one of a, b" in where["4"]
    assert "use one of the choices: a, b" in where["4"]
    assert "params.p.default: invalid default: 'bbb' does not match the pattern" in where["5"]
    assert "params.d.default: invalid default: invalid duration 'forever'" in where["6"]
    assert "params.b.default: invalid default: expected true or false, got 'perhaps'" in where["7"]
    assert "params.l.default: a default is text, a number, or true/false" in where["9"]


def test_a_secret_default_is_never_echoed(tmp_path: Path) -> None:
    text = (
        "name: x\nparams:\n  token: {type: string, secret: true, default: s3cr3t-value, "
        "pattern: '^t.*'}\nsteps: [{id: a, run: 'echo {{ params.token }}'}]\n"
    )
    found = "\n".join(problems(write(tmp_path, text)))
    assert "params.token.default: invalid default: the value (secret, not shown)" in found
    assert "s3cr3t" not in found


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (
            "run: echo {{ host.adress }}",
            "steps[0].run: host has no 'adress' (did you mean host.address?)",
        ),
        ("run: echo {{ run.idd }}", "steps[0].run: run has no 'idd' (did you mean run.id?)"),
        (
            "run: echo {{ run.nope }}",
            "run has no 'nope' (run keys: id, runbook, operator, dry_run)",
        ),
        ("run: echo {{ params.x | nosuchfilter }}", "steps[0].run: no filter named 'nosuchfilter'"),
        ("run: echo {{ params.x is nosuchtest }}", "steps[0].run: no test named 'nosuchtest'"),
        ("run: 'true'\n    when: params.x | lenght", "steps[0].when: no filter named 'lenght'"),
        (
            "run: 'true'\n    confirm: 'really {{ params.nope }}?'",
            "steps[0].confirm: undefined param 'nope'",
        ),
        (
            "run: 'true'\n    hosts: '{{ params.x }}'",
            "steps[0].hosts: hosts is an inventory pattern, used as written",
        ),
        (
            "reboot: {boot_id_command: 'cat {{ params.x }}'}",
            "steps[0].reboot.boot_id_command: reboot.boot_id_command is run as written",
        ),
        (
            "run: |\n      set -eu\n      echo {{ params.nope }}",
            "steps[0].run: undefined param 'nope' (line 2 of the template)",
        ),
    ],
)
def test_templates_are_checked_against_what_they_can_use(
    tmp_path: Path, step: str, expected: str
) -> None:
    text = f"name: x\nparams:\n  x: {{default: a}}\nsteps:\n  - id: a\n    {step}\n"
    found = problems(write(tmp_path, text))
    assert len(found) == 1 and expected in found[0], found


def test_put_sources_and_contents(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "good.j2").write_text("motd={{ params.x }} on {{ host.name }}\n")
    (tmp_path / "files" / "bad.j2").write_text("line one\nline {{ params.nope }}\n")
    (tmp_path / "files" / "broken.j2").write_text("\n\n{% if %}\n")
    (tmp_path / "files" / "plain.sh").write_text("echo {{ not a template }}\n")
    text = """\
name: x
params:
  x: {default: a}
steps:
  - {id: good, put: {dest: /etc/motd, src: files/good.j2, template: true}}
  - {id: plain, put: {dest: /usr/local/bin/x, src: files/plain.sh}}
  - {id: literal, put: {dest: /etc/y, content: "{{ params.nope6 }}", template: false}}
  - {id: missing, put: {dest: /etc/x, src: files/missing.j2, template: true}}
  - {id: bad, put: {dest: /etc/b, src: files/bad.j2, template: true}}
  - {id: broken, put: {dest: /etc/c, src: files/broken.j2, template: true}}
  - id: inline
    put: {dest: "/etc/{{ params.nope }}", content: "{{ params.nope5 }}", template: true}
  - {id: named, put: {dest: /etc/n, src: "{{ params.x }}.conf"}}
"""
    found = problems(write(tmp_path, text))
    rb, files = tmp_path / "rb.yaml", tmp_path / "files"
    assert found == [
        f"{rb}:8:44 steps[3].put.src: no such file 'files/missing.j2' "
        f"(looked for {files / 'missing.j2'}) (src is relative to the runbook file's directory)",
        f"{rb}:12:17 steps[6].put.dest: undefined param 'nope' (declared params: x)",
        f"{rb}:12:52 steps[6].put.content: undefined param 'nope5' (declared params: x)",
        f"{rb}:13:42 steps[7].put.src: put.src is a file name, not rendered "
        "(name the file; 'template: true' renders its content)",
        f"{files / 'bad.j2'}:2 steps[4].put.src: undefined param 'nope' (declared params: x)",
        f"{files / 'broken.j2'}:3 steps[5].put.src: template does not compile: "
        "Expected an expression, got 'end of statement block' (check {{ }} and {% %} pairs)",
    ]


def test_put_src_of_an_included_step_is_relative_to_the_runbook(tmp_path: Path) -> None:
    """As the executor reads it: Path(runbook.path).parent / src."""
    (tmp_path / "common").mkdir()
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "tool.sh").write_text("echo hi\n")
    write(tmp_path, "- {id: up, put: {dest: /x, src: files/tool.sh}}\n", "common/up.yaml")
    book = load_runbook(write(tmp_path, "name: x\nsteps:\n  - include: common/up.yaml\n"))
    assert book.steps[0].put is not None


def test_an_include_file_is_validated_on_its_own(tmp_path: Path) -> None:
    from drp.runbook.loader import load_steps

    good = write(
        tmp_path,
        "- {id: a, run: 'echo {{ params.from_the_includer }}', capture: out}\n"
        "- {id: b, run: 'echo {{ captures.earlier }} {{ host.name }}'}\n",
        "good.yaml",
    )
    assert load_steps(good) == 2  # params and captures are the includer's: not checked here
    bad = write(
        tmp_path,
        "steps:\n  - id: a\n    rnu: echo\n  - id: b\n    run: echo {{ host.adress }}\n"
        "  - id: b\n    run: echo {{ x }\n",
        "bad.yaml",
    )
    with pytest.raises(RunbookError) as caught:
        load_steps(bad)
    found = "\n".join(str(p) for p in caught.value.problems)
    assert "bad.yaml:3:5 steps[0].rnu: unknown key 'rnu'" in found
    assert "bad.yaml:5:10 steps[1].run: host has no 'adress'" in found
    assert "bad.yaml:6:9 steps[2].id: duplicate step id 'b'" in found
    assert "bad.yaml:7:10 steps[2].run: template does not compile" in found
    with pytest.raises(RunbookError, match="an include file is a list of steps"):
        load_steps(write(tmp_path, "name: foo\nsummary: not steps\n", "notsteps.yaml"))


def test_a_missing_include_file_is_reported_where_it_is_included(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "name: x\nsteps:\n  - include: common/nothere.yaml\n"))
    assert found == [
        f"{tmp_path / 'rb.yaml'}:3:14 steps[0].include: no such include file "
        f"'common/nothere.yaml' (looked for {tmp_path / 'common' / 'nothere.yaml'}) "
        "(the path is relative to the file that includes it)"
    ]


@pytest.mark.parametrize(
    ("default", "message"),
    [
        (".inf", "expected a whole number, got inf"),
        (".nan", "expected a whole number, got nan"),
        ("2.5", "expected a whole number, got 2.5"),
        ("2020-01-01", "a default is text, a number, or true/false"),
    ],
)
def test_odd_int_defaults_are_problems_not_crashes(
    tmp_path: Path, default: str, message: str
) -> None:
    text = (
        f"name: x\nparams:\n  n: {{type: int, default: {default}}}\n"
        "steps: [{id: a, run: 'true'}]\n"
    )
    assert message in "\n".join(problems(write(tmp_path, text)))
