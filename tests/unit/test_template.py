"""Templates: values are shell-quoted by default, raw only when asked; strict and sandboxed."""

from __future__ import annotations

import subprocess

import pytest

from drp.runbook.template import (
    Placeholder,
    TemplateProblem,
    compile_check,
    evaluate,
    references,
    render,
)

NASTY = ["; touch /tmp/pwned", "$(id)", "`id`", "a'b", 'a"b', "new\nline", "*", "", "-rf"]


@pytest.mark.parametrize("value", NASTY)
def test_substituted_values_reach_the_shell_as_one_literal_argument(value: str) -> None:
    command = render("printf '%s' {{ v }}", {"v": value}, shell=True)
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=True)
    assert out.stdout == value


def test_raw_is_explicit() -> None:
    assert render("ls {{ v | raw }}", {"v": "-l /tmp"}, shell=True) == "ls -l /tmp"
    assert render("ls {{ v }}", {"v": "-l /tmp"}, shell=True) == "ls '-l /tmp'"


def test_lists_become_separately_quoted_words() -> None:
    assert render("rm {{ v }}", {"v": ["a b", "c"]}, shell=True) == "rm 'a b' c"


def test_text_templates_are_not_quoted() -> None:
    assert render("swap {{ v }} now", {"v": "bay 2"}, shell=False) == "swap bay 2 now"


def test_undefined_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(TemplateProblem, match="has no attribute 'missing'"):
        render("echo {{ params.missing }}", {"params": {}}, shell=True)


def test_sandbox_blocks_attribute_escapes() -> None:
    with pytest.raises(TemplateProblem):
        render("{{ ''.__class__.__mro__ }}", {}, shell=False)


def test_when_expressions() -> None:
    assert evaluate(
        "params.n > 2 and vars.role == 'db'", {"params": {"n": 3}, "vars": {"role": "db"}}
    )
    assert not evaluate("params.force", {"params": {"force": False}})


def test_references_name_the_namespaces() -> None:
    tree = compile_check(
        "{{ params.a }} {{ captures['b'] }} {% for x in vars.l %}{{ x }}{% endfor %}"
    )
    found = {(r.namespace, r.name) for r in references(tree)}
    assert {("params", "a"), ("captures", "b"), ("vars", "l")} <= found
    assert ("x", None) not in found


def test_placeholders_for_dry_runs() -> None:
    shown = render("echo {{ captures.disk }}", {"captures": Placeholder("captures")}, shell=True)
    assert shown == "echo <captures.disk>"
