"""Property tests: whatever a file holds, the loaders accept it or raise drp's own error."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drp.errors import InputError
from drp.inventory import load_inventory
from drp.runbook.loader import load_runbook

VALID: dict[str, Any] = {
    "name": "prop",
    "params": {"dev": {"type": "string", "default": "/dev/sdb"}},
    "defaults": {"retry": {"attempts": 2, "delay": "1s", "failures": ["connection"]}},
    "steps": [
        {"id": "a", "run": "echo {{ params.dev }}", "capture": "out"},
        {"id": "b", "wait": {"command": "true", "interval": "1s", "progress": "([0-9]+)%"}},
        {"id": "c", "manual": "swap {{ captures.out }}"},
        {"id": "d", "put": {"dest": "/tmp/x", "content": "hi"}, "confirm": True},
    ],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["{{", "{{ params.x }}", "5m", "(["]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], value: Any, drop: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    if drop and not rest:
        if isinstance(copy, dict):
            copy.pop(head, None)
        else:
            copy.pop(head)
        return copy
    copy[head] = _mutate(copy[head], rest, value, drop)
    return copy


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc: Any = VALID
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        doc = _mutate(doc, path, draw(values), draw(st.booleans()))
    return doc


def _check(loader: Any, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.yaml"
        path.write_bytes(content)
        try:
            loader(path)
        except InputError as error:
            assert error.problems, "an InputError always carries at least one problem"
            for problem in error.problems:
                assert problem.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_runbooks_load_or_raise_input_error(doc: Any) -> None:
    _check(load_runbook, yaml.safe_dump(doc, allow_unicode=True).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_runbook_loader(content: bytes) -> None:
    _check(load_runbook, content)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:- \n{}[]'\"#&*!|>%@`\t,?0")), max_size=120))
def test_yaml_like_text_never_crashes_the_loaders(text: str) -> None:
    _check(load_runbook, text.encode())
    _check(load_inventory, text.encode())


@settings(max_examples=150, deadline=None)
@given(values)
def test_inventory_of_any_shape(doc: Any) -> None:
    _check(load_inventory, yaml.safe_dump({"hosts": doc}, allow_unicode=True).encode())


EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "example.yaml"
templates = st.sampled_from(
    [
        "{{ 1 // 0 }}",
        '{{ "%d" % params.dev }}',
        "{{ vars.nope }}",
        "{{ host.name | upper }}",
        "{{ params.dev | quote }}",
        "{{ captures.out | int }}",
        "{% for x in vars.raid_disks %}{{ x }} {% endfor %}",
        "{{ params.dev[0:3] ~ host.address }}",
        "{{ run.id }}",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(templates, templates, st.sampled_from(["db1", "all", "web", "ns1"]))
def test_planning_any_template_gives_a_plan_or_an_input_error(
    command: str, when_text: str, targets: str
) -> None:
    """Whatever a template does when rendered (divide by zero, a missing var), never a crash."""
    from drp.engine.plan import build_plan
    from drp.runbook.params import resolve_params

    doc = {**VALID, "steps": [*VALID["steps"], {"id": "t", "run": f"echo {command}"}]}
    doc["steps"].append({"id": "w", "run": "true", "when": when_text.strip("{} ")})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.yaml"
        path.write_text(yaml.safe_dump(doc))
        inventory = load_inventory(EXAMPLE)
        try:
            book = load_runbook(path)
            build_plan(book, inventory, resolve_params(book, {}, inventory), targets=targets)
        except InputError as error:
            assert error.problems and all(p.message for p in error.problems)
