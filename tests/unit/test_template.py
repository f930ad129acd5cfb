"""Templates: values are shell-quoted by default, raw only when asked; strict and sandboxed."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drp.runbook.template import (
    Placeholder,
    TemplateProblem,
    _bounded_render,
    _compiled,
    compile_check,
    evaluate,
    is_plain,
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


@pytest.mark.parametrize(
    ("template", "message", "hint"),
    [
        ("echo {{ v | nosuchfilter }}", "no filter named 'nosuchfilter'", "raw and quote"),
        ("echo {{ v | uper }}", "no filter named 'uper'", "did you mean 'upper'?"),
        ("echo {{ v is nosuchtest }}", "no test named 'nosuchtest'", "defined"),
        # Jinja2 leaves these to run time inside an {% if %}: drp does not
        ("{% if v %}{{ v | uper }}{% endif %}", "no filter named 'uper'", "'upper'"),
        ("echo {{ oops", "template does not compile", "check {{ }}"),
    ],
)
def test_unknown_filters_and_tests_do_not_compile(template: str, message: str, hint: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        compile_check(template)
    assert message in str(caught.value) and hint in caught.value.hint


def test_an_unknown_filter_in_a_when_expression() -> None:
    with pytest.raises(TemplateProblem, match="no filter named 'lenght'"):
        compile_check("params.x | lenght > 2", expression=True)


def test_the_line_of_a_multi_line_template_is_kept() -> None:
    with pytest.raises(TemplateProblem) as caught:
        compile_check("set -eu\necho ok\necho {{ v | nope }}\n")
    assert caught.value.lineno == 3


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ 1 // 0 }}", "ZeroDivisionError"),
        ('{{ "%d" % "x" }}', "TypeError"),
        ("{{ params.n // 0 }}", "ZeroDivisionError"),
        ("{{ params.missing }}", "has no attribute 'missing'"),
    ],
)
def test_any_failure_while_rendering_is_a_template_problem(template: str, why: str) -> None:
    for shell in (True, False):
        with pytest.raises(TemplateProblem) as caught:
            render(template, {"params": {"n": 3}}, shell=shell)
        assert why in caught.value.reason


def test_any_failure_while_evaluating_is_a_template_problem() -> None:
    with pytest.raises(TemplateProblem, match="ZeroDivisionError"):
        evaluate("params.n // 0 > 1", {"params": {"n": 3}})
    with pytest.raises(TemplateProblem, match="TypeError"):
        evaluate("params.n > 'x'", {"params": {"n": 3}})


def test_quote_quotes_once_and_the_shell_receives_one_argument() -> None:
    command = render("printf '[%s]' {{ v | quote }} {{ v }}", {"v": "a b; $(id) 'c'"}, shell=True)
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=True)
    assert out.stdout == "[a b; $(id) 'c'][a b; $(id) 'c']"  # two arguments, each intact
    assert render("{{ v | quote }}", {"v": "a b"}, shell=True) == "'a b'"
    assert render("run {{ v | quote }}", {"v": "a b"}, shell=False) == "run 'a b'"
    assert render("rm {{ v | quote }}", {"v": ["a b", "c"]}, shell=True) == "rm 'a b' c"


def test_the_keys_drp_checks_are_the_keys_templates_get() -> None:
    from drp.inventory.model import Host
    from drp.runbook.template import HOST_KEYS

    assert set(HOST_KEYS) == set(Host(name="h", address="10.0.0.1").template_view())


def test_jinja2s_own_names_are_not_unknown_names() -> None:
    tree = compile_check(
        "{% for d in vars.disks %}{{ loop.index }}={{ d }} {% endfor %}{{ range(2) | list }}"
    )
    assert {r.namespace for r in references(tree)} == {"vars"}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="{\r"), max_size=60))
def test_plain_text_is_rendered_as_itself_without_jinja(text: str) -> None:
    # the fast path (no parse, no compile) must give exactly what Jinja2 gives
    assert is_plain(text)
    for shell in (True, False):
        assert _bounded_render(_compiled(text, shell), {}) == text
        assert render(text, {}, shell=shell) == text


def test_text_with_a_delimiter_or_a_carriage_return_goes_through_jinja() -> None:
    assert not is_plain("echo {{ params.x }}") and not is_plain("a\r\nb")
    assert render("a\r\nb", {}, shell=True) == "a\nb"  # Jinja2's newline normalisation
    with pytest.raises(TemplateProblem):
        render("echo {{ params.missing }}", {"params": {}}, shell=True)
