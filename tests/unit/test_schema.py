"""``drp schema``: the JSON Schema editors use accepts what the loader accepts, and no more.

Every built-in runbook (and include file, against the step part) validates with
the ``jsonschema`` package (Draft 2020-12); runbooks the loader refuses are
refused by the schema too; durations match the schema's pattern exactly when
``parse_duration`` accepts them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from drp.cli.app import app
from drp.durations import parse_duration
from drp.fields import DURATION_PATTERN

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = sorted((ROOT / "runbooks").glob("*.yaml"))
INCLUDES = sorted((ROOT / "runbooks" / "common").glob("*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return document


def errors(schema: dict[str, Any], data: Any) -> list[str]:
    """Every error, with the reasons under an anyOf (a step is a Step or an Include)."""
    out: list[str] = []
    pending = list(Draft202012Validator(schema).iter_errors(data))
    while pending:
        error = pending.pop(0)
        out.append(f"{list(error.absolute_path)}: {error.message}")
        pending.extend(error.context or [])
    return out


def steps_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The step list of a runbook, for include files (a bare list, or ``steps:`` only)."""
    steps = schema["properties"]["steps"]
    return {
        "$schema": schema["$schema"],
        "$defs": schema["$defs"],
        "anyOf": [
            steps,
            {
                "type": "object",
                "properties": {"steps": steps},
                "required": ["steps"],
                "additionalProperties": False,
            },
        ],
    }


def test_there_are_six_builtin_runbooks_and_some_includes() -> None:
    assert len(BUILTIN) == 6, BUILTIN
    assert INCLUDES


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.name)
def test_builtin_runbooks_validate_against_the_schema(schema: dict[str, Any], path: Path) -> None:
    assert errors(schema, yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("path", INCLUDES, ids=lambda p: p.name)
def test_include_files_validate_against_the_step_part(schema: dict[str, Any], path: Path) -> None:
    assert errors(steps_schema(schema), yaml.safe_load(path.read_text())) == []


SHORTHANDS = """\
name: short
params:
  dev: {type: string, default: /dev/sdb}
defaults: {timeout: 5m, retry: {delay: 2s, max_delay: 90, failures: [connection, 75]}}
steps:
  - include: common/preflight.yaml
  - {id: a, run: "lsblk {{ params.dev }}", capture: out, verify: "true", timeout: 1h30m}
  - {id: b, manual: "swap {{ captures.out }}"}
  - {id: c, reboot: true}
  - {id: d, wait: {command: "true", interval: 10, timeout: 1.5h}, capture: {n: '([0-9]+)'}}
  - {id: e, local: "true", verify: ["true", "true"], confirm: "sure?"}
"""


def test_shorthand_forms_the_loader_accepts_are_in_the_schema(
    schema: dict[str, Any], tmp_path: Path
) -> None:
    from drp.runbook.loader import load_runbook

    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "preflight.yaml").write_text("- {id: p, run: uname}\n")
    (tmp_path / "short.yaml").write_text(SHORTHANDS)
    load_runbook(tmp_path / "short.yaml")  # the loader accepts it ...
    assert errors(schema, yaml.safe_load(SHORTHANDS)) == []  # ... and so does the schema


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["steps"][1].update(rnu="x"), "'rnu' was unexpected"),
        (lambda d: d["steps"][1].update(timeout="soon"), "'soon'"),
        (lambda d: d["steps"][1].update(timeout=-1), "-1"),
        (lambda d: d["steps"][1].update(local="also"), "is valid under each of"),
        (lambda d: d["steps"][2].pop("manual"), "is not valid under any"),
        (lambda d: d["steps"][3].update(reboot=False), "False"),
        (lambda d: d["defaults"]["retry"].update(failures=["conection"]), "'conection'"),
        (lambda d: d["params"].update({"Bad-Name": {"default": "x"}}), "Bad-Name"),
        (lambda d: d.pop("steps"), "'steps' is a required property"),
    ],
)
def test_a_wrong_runbook_is_rejected_by_the_schema(
    schema: dict[str, Any], change: Any, expected: str
) -> None:
    data = yaml.safe_load(SHORTHANDS)
    assert errors(schema, data) == []
    change(data)
    found = "\n".join(errors(schema, data))
    assert expected in found, found


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=st.sampled_from(list("0123456789.msdh qx\t-")), max_size=12),
        st.lists(
            st.tuples(
                st.integers(0, 999), st.sampled_from(["ms", "s", "m", "h", "d", "", " m", "x"])
            ),
            min_size=1,
            max_size=4,
        ).map(lambda parts: " ".join(f"{n}{u}" for n, u in parts)),
    )
)
def test_the_duration_pattern_accepts_exactly_what_the_parser_accepts(text: str) -> None:
    """The pattern says what is well formed; the range (at most a year) it leaves to drp."""
    try:
        parse_duration(text)
        parsed = True
    except ValueError as exc:
        parsed = "out of range" in str(exc)
    assert bool(re.search(DURATION_PATTERN, text)) == parsed, text
