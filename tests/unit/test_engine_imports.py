"""Inside the engine, imports point one way: no module imports one that imports it back.

Read from the source with ``ast``, so that every import counts: at module level, inside
a function (a lazy import), and under ``if TYPE_CHECKING:``, none of which Python's own
import would reject.
"""

from __future__ import annotations

import ast
from pathlib import Path

import drp.engine

ENGINE = Path(drp.engine.__file__).parent
PACKAGE = "drp.engine"


def _module(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


def _imported(node: ast.AST, modules: set[str]) -> set[str]:
    """The engine modules one import statement names."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
        return set()
    if node.module == PACKAGE:  # from drp.engine import actions, gates
        named = {f"{PACKAGE}.{a.name}" for a in node.names}
        return {m for m in named if m in modules} or {PACKAGE}
    return {node.module} if node.module in modules else set()


def engine_imports() -> dict[str, set[str]]:
    """Each engine module → the engine modules it imports, anywhere in its source."""
    paths = sorted(ENGINE.glob("*.py"))
    modules = {_module(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        name = _module(path)
        graph[name] = {m for node in ast.walk(tree) for m in _imported(node, modules)} - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as the path that closes it (``[a, b, a]``), or ``[]``."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(node)
        return []

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return []


def test_the_reader_sees_every_kind_of_import() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from drp.engine import a\n"
        "import drp.engine.b\n"
        "if TYPE_CHECKING:\n"
        "    from drp.engine.c import C\n"
        "def f() -> None:\n"
        "    from drp.engine.d import D\n"
        "from drp.errors import DrpError\n"
    )
    modules = {f"{PACKAGE}.{m}" for m in "abcd"}
    found = {m for node in ast.walk(ast.parse(source)) for m in _imported(node, modules)}
    assert found == modules


def test_find_cycle_finds_one_and_only_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_engine_imports_have_no_cycle() -> None:
    graph = engine_imports()
    assert len(graph) > 10  # the engine's modules were found
    cycle = find_cycle(graph)
    assert cycle == [], "engine import cycle: " + " -> ".join(cycle)
