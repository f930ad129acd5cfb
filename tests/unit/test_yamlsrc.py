"""YAML with positions: what the parser refuses is refused quickly, located, never a crash.

Aliases are allowed (inventories and runbooks may share values with anchors),
but an alias inside its own anchor, nesting deeper than ``MAX_DEPTH`` and a
document that expands past ``MAX_NODES`` values (an alias bomb) are refused
before anything walks them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drp import yamlsrc
from drp.errors import InputError, Problem
from drp.inventory import load_inventory
from drp.runbook.loader import load_runbook

BOMB = (
    "name: x\n"
    "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 9)
    )  # 10**9 values once expanded
    + "steps: [{id: a, run: echo}]\n"
)


def refused(text: str, path: str = "f.yaml") -> Problem:
    with pytest.raises(InputError) as caught:
        yamlsrc.parse(text, path)
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


def test_an_alias_bomb_is_refused_at_once_where_it_grows_too_big() -> None:
    started = time.monotonic()
    problem = refused(BOMB)
    assert time.monotonic() - started < 1.0
    # a5 alone expands to 1,111,111 values: the first one past the limit, written on line 7
    assert (problem.line, problem.column, problem.field) == (7, 5, "a5")
    assert "1111111 values through aliases" in problem.message
    assert f"the limit is {yamlsrc.MAX_NODES}" in problem.message
    assert "alias bomb" in problem.hint


def test_a_recursive_alias_points_at_the_alias() -> None:
    problem = refused("name: x\nsteps: &a\n  - id: a\n    run: echo\n  - *a\n")
    assert (problem.line, problem.column, problem.field) == (5, 5, "steps[1]")
    assert "recursive alias" in problem.message


def test_a_recursive_alias_in_a_mapping() -> None:
    problem = refused("name: x\nd: &d {a: 1, b: *d}\nsteps: []\n")
    assert problem.line == 2 and problem.field == "d.b"
    assert "recursive alias" in problem.message


DEEP = "name: x\nsteps: [{id: a, run: echo, vars: " + "[" * 5000 + "]" * 5000 + "}]\n"


@pytest.mark.parametrize("loader", ["libyaml", "pure-python"])
@pytest.mark.parametrize("levels", [150, 999, 1001, 5000])
def test_deep_nesting_gets_drps_own_problem_whichever_layer_noticed_first(
    loader: str, levels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libyaml (bundled with PyYAML >= 6.0.4) refuses nesting past 1000 in its scanner,
    # the pure-Python composer runs out of recursion: neither wording reaches the author
    if loader == "pure-python":
        monkeypatch.setattr(yamlsrc, "_Loader", yaml.SafeLoader)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    text = "name: x\nsteps: [{id: a, run: echo, vars: " + "[" * levels + "]" * levels + "}]\n"
    problem = refused(text)
    assert problem.message == f"nesting deeper than {yamlsrc.MAX_DEPTH} levels"
    assert problem.hint == f"lists and mappings may nest at most {yamlsrc.MAX_DEPTH} levels deep"
    assert (problem.line, problem.column) == (2, 35 + yamlsrc.MAX_DEPTH - 4)
    assert problem.field == "steps[0].vars[0][0][0]…"


def test_deep_block_nesting_is_located_too(monkeypatch: pytest.MonkeyPatch) -> None:
    levels = 1200
    text = "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, levels)) + "  " * levels + "v\n"
    for loader in {yamlsrc._Loader, yaml.SafeLoader}:
        monkeypatch.setattr(yamlsrc, "_Loader", loader)
        problem = refused(text)
        assert problem.message == f"nesting deeper than {yamlsrc.MAX_DEPTH} levels"
        assert problem.field.startswith("a.k1.k2") and problem.line == yamlsrc.MAX_DEPTH


def test_deep_nesting_fails_through_the_cli_with_the_input_exit_code(tmp_path: Path) -> None:
    deep, other = tmp_path / "deep.yaml", tmp_path / "other.yaml"
    deep.write_text(DEEP)
    other.write_text("name: x\nsteps: [\n")  # any other invalid YAML
    for command in (["validate"], ["plan", "--host", "h1"]):
        run = [sys.executable, "-m", "drp", *command]
        result = subprocess.run([*run, str(deep)], capture_output=True, text=True, check=False)
        baseline = subprocess.run([*run, str(other)], capture_output=True, text=True, check=False)
        assert result.returncode == baseline.returncode == 2, result.stderr
        assert f"{deep}:2:" in result.stderr and "nest at most 100" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2 * yamlsrc.MAX_DEPTH))
@example(yamlsrc.MAX_DEPTH - 2)
@example(yamlsrc.MAX_DEPTH - 1)
def test_nesting_up_to_the_limit_is_fine_and_beyond_it_refused(levels: int) -> None:
    # the mapping is one level, each '[' one more, the innermost value one more
    text = "x: " + "[" * levels + "1" + "]" * levels + "\n"
    if levels + 2 <= yamlsrc.MAX_DEPTH:
        assert yamlsrc.parse(text, "f.yaml").data["x"] is not None
    else:
        assert "nesting deeper" in refused(text).message


def test_ordinary_anchors_and_aliases_still_load(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(
        "name: shared\n"
        "x-retry: &retry {attempts: 3, delay: 2s}\n"
        "steps:\n"
        "  - {id: a, run: 'true', retry: *retry}\n"
        "  - {id: b, run: 'true', retry: *retry}\n"
    )
    with pytest.raises(InputError) as caught:  # x-retry is not a runbook key ...
        load_runbook(path)
    assert [p.field for p in caught.value.problems] == ["x-retry"]  # ... and nothing else
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("hosts:\n  a: &h {address: 10.0.0.1, vars: {role: db}}\n  b: *h\n")
    assert load_inventory(inventory).get("b").address == "10.0.0.1"


def test_a_bomb_in_an_inventory_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(BOMB.replace("name: x\n", "").replace("steps: [{id: a, run: echo}]\n", ""))
    with pytest.raises(InputError, match="through aliases"):
        load_inventory(path)


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        (  # the most common authoring mistake: YAML reads {{ }} as a mapping
            "name: x\nsteps:\n  - id: a\n    run: {{ params.x }}\n",
            (4, 11),
            "a mapping key must be a plain value",
            'quote values that start with {{, e.g. run: "{{ params.x }} --now"',
        ),
        (
            "name: x\nsteps:\n  - id: a\n    run: {{ params.x }} --now\n",
            (4, 25),
            "did not find expected key",
            "quote values that start with {{",
        ),
        (  # an unclosed quote points where it opened, not at the end of the file
            'name: x\nsteps:\n  - id: a\n    run: "echo\n  - id: b\n',
            (4, 10),
            "the quote opened here is never closed",
            "close the quote",
        ),
        (
            "name: x\nsteps:\n  - id: a\n    run: [echo\n  - id: b\n    run: echo\n",
            (4, 10),
            "the '[' opened here is not closed properly",
            "check indentation",
        ),
        (
            "name: x\nsteps: [{id: a, run: !!python/object:os.system echo}]\n",
            (2, 22),
            "invalid YAML: ",  # then PyYAML's words; the hint is drp's
            "remove the tag",
        ),
        (
            "name: x\n? [a, b]\n: c\n",
            (2, 3),
            "a mapping key must be a plain value",
            "a key cannot be a list or a mapping",
        ),
        (
            "name: x\nsteps:\n  - id: a\n    run: echo: {{ params.x }}\n",
            (4, 14),
            "invalid YAML: ",
            "quote a value that contains ': '",
        ),
    ],
)
def test_yaml_errors_are_located_with_a_hint(
    text: str, where: tuple[int, int], message: str, hint: str
) -> None:
    problem = refused(text)
    assert (problem.line, problem.column) == where, problem
    assert message in problem.message and hint in problem.hint, problem
    assert "<unicode string>" not in problem.message


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.integers(-1, 6), max_size=12), min_size=1, max_size=10))
def test_any_web_of_aliases_loads_or_is_refused_quickly(anchors: list[list[int]]) -> None:
    """Anchor i holds scalars and aliases to earlier anchors (or to itself: recursion)."""
    lines = []
    for index, refs in enumerate(anchors):
        items = [f"*a{r}" if 0 <= r <= index else "x" for r in refs]
        lines.append(f"k{index}: &a{index} [{', '.join(items)}]")
    text = "\n".join(lines) + "\n"
    started = time.monotonic()
    try:
        yamlsrc.parse(text, "f.yaml")
    except InputError as error:
        assert error.problems and error.problems[0].line is not None
    assert time.monotonic() - started < 2.0


def test_bad_values_get_a_hint_and_misspelt_choices_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(
        "name: x\n"
        "params:\n"
        "  n: {type: integer, default: 1}\n"
        "steps:\n"
        "  - id: a\n"
        "    run: 'true'\n"
        "    retry: {attempts: many, failures: [conection]}\n"
        "    sensitive: maybe\n"
        "    on_failure: rollbak\n"
    )
    with pytest.raises(InputError) as caught:
        load_runbook(path)
    found = {p.field: p for p in caught.value.problems}
    assert found["params.n.type"].hint == "did you mean 'int'?"
    assert found["steps[0].retry.failures[0]"].hint == "did you mean 'connection'?"
    assert found["steps[0].on_failure"].hint == "did you mean 'rollback'?"
    assert found["steps[0].retry.attempts"].hint == "write a whole number, e.g. 3"
    assert found["steps[0].sensitive"].hint == "write true or false"


@pytest.mark.parametrize("loader", ["libyaml", "pure-python"])
@pytest.mark.parametrize(("text", "where"), [("\x00", (1, 1)), ("a: b\nc: \x07\n", (2, 4))])
def test_a_control_character_is_located_whichever_parser_reads_it(
    loader: str, text: str, where: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyYAML 6.0.4 refuses some of these as its loader is built, 6.0.3 as it reads
    if loader == "pure-python":
        monkeypatch.setattr(yamlsrc, "_Loader", yaml.SafeLoader)
    problem = refused(text)
    assert (problem.line, problem.column) == where
    assert problem.message.startswith("invalid YAML: character U+00")
    assert "control characters" in problem.hint
