"""A placeholder in a shell field must sit where drp's quoting holds (issue 16, class 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from drp.errors import RunbookError
from drp.runbook.loader import load_runbook
from drp.runbook.shellctx import misplaced
from drp.runbook.template import SHELL, render

MISPLACED = [
    ('echo "replacing {{ p }} now"', "inside double quotes"),
    ("echo 'x {{ p }}'", "inside single quotes"),
    ("echo $'x {{ p }}'", "inside single quotes"),
    ('echo "$(cat "{{ p }}")"', "inside double quotes"),
    ('echo "$(cat {{ q }}) {{ p }}"', "inside double quotes"),
    ("echo \"`cat '{{ p }}'`\"", "inside single quotes"),
    ("echo \\{{ p }}", "after a backslash"),
    ("cat <<EOF\nhello {{ p }}\nEOF", "inside a heredoc"),
    ("cat <<-EOF\n\thello {{ p }}\n\tEOF", "inside a heredoc"),
    ('{% if x %}echo "{{ p }}"{% else %}echo {{ q }}{% endif %}', "inside double quotes"),
    ('{% for i in x %}echo "{{ p }}"{% endfor %}', "inside double quotes"),
    ('echo "never closed {{ p }}', "inside double quotes"),
    ('echo "a"\'b\'"{{ p }}"', "inside double quotes"),
]

FINE = [
    "echo {{ p }}",
    "mdadm --add /dev/md0 {{ p }}1 && echo \"done\" 'ok'",
    'echo "$(cat {{ p }})"',
    "echo $(cat {{ p }}) `cat {{ p }}`",
    'x={{ p }}; echo "$x"',
    "echo --opt={{ p }}",
    '# a comment "{{ p }}"\necho ok',
    "cat <<'EOF'\nliteral {{ p }} don't\nEOF",
    'echo "{{ p | raw }}"',
    "echo {{ ['a b', 'c'] }}",
]


@pytest.mark.parametrize(("template", "where"), MISPLACED)
def test_placeholders_inside_quotes_are_found(template: str, where: str) -> None:
    found = misplaced(SHELL.parse(template))
    assert len(found) == 1, found
    assert found[0].where.startswith(where)


@pytest.mark.parametrize("template", FINE)
def test_placeholders_where_quoting_holds_pass(template: str) -> None:
    assert misplaced(SHELL.parse(template)) == []


HOSTILE = ["$(touch {m})", "`touch {m}`", "'; touch {m}; '", '"; touch {m}; "', "a\nb"]


@pytest.mark.parametrize("template", FINE[:6])
@pytest.mark.parametrize("value", HOSTILE)
def test_what_passes_the_check_is_safe_in_a_real_shell(
    tmp_path: Path, template: str, value: str
) -> None:
    marker = tmp_path / "pwned"
    command = render(template, {"p": value.format(m=marker), "x": [1]}, shell=True)
    subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, check=False)
    assert not marker.exists(), command


def test_validate_names_the_field_the_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(
        "name: t\nparams:\n  dev: {required: true}\nsteps:\n"
        "  - id: a\n    run: 'true'\n    capture: out\n"
        '  - id: b\n    run: |\n      echo ok\n      echo "replacing {{ params.dev }} now"\n'
        "    verify: [\"test -n '{{ captures.out }}'\"]\n"
        '    unless: grep -q "$(cat "{{ params.dev }}")" /x\n'
        "  - id: c\n    wait: {command: 'echo \"{{ params.dev }}\"'}\n"
        "  - id: d\n    manual: 'type \"{{ params.dev }}\"'\n"
    )
    with pytest.raises(RunbookError) as caught:
        load_runbook(path)
    found = [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems]
    assert found == [
        "rb.yaml:9:10 steps[1].run: a {{ }} placeholder inside double quotes (line 2 of the "
        "template) (drp quotes values itself: remove the quotes around {{ … }})",
        "rb.yaml:12:14 steps[1].verify[0]: a {{ }} placeholder inside single quotes "
        "(drp quotes values itself: remove the quotes around {{ … }})",
        "rb.yaml:13:13 steps[1].unless: a {{ }} placeholder inside double quotes "
        "(drp quotes values itself: remove the quotes around {{ … }})",
        "rb.yaml:15:21 steps[2].wait.command: a {{ }} placeholder inside double quotes "
        "(drp quotes values itself: remove the quotes around {{ … }})",
    ]  # the manual text is not a shell command: quotes there are fine


def test_a_number_in_quotes_is_fine() -> None:
    assert misplaced(SHELL.parse('echo "reverts in {{ p | int }}s, {{ x | length }} left"')) == []


def test_several_placeholders_in_one_place_are_told_once(tmp_path: Path) -> None:
    book = tmp_path / "rb.yaml"
    book.write_text(
        "name: q\nparams:\n  x: {default: a}\nsteps:\n"
        "  - id: a\n    run: echo \"{{ params.x }} {{ params.x }}\" '{{ params.x }}'\n"
    )
    with pytest.raises(RunbookError) as raised:
        load_runbook(book)
    said = [p.message for p in raised.value.problems]
    assert said == [
        "2 {{ }} placeholders inside double quotes",
        "a {{ }} placeholder inside single quotes",
    ]
