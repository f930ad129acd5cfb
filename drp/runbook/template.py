"""Templating: sandboxed Jinja2 with strict undefined, and shell-quoting by default.

Every ``{{ value }}`` in a shell command is passed through :func:`shlex.quote`,
so a parameter like ``; rm -rf /`` arrives as one literal argument. Raw
insertion is explicit: ``{{ value | raw }}``. Text that is not a shell command
(manual instructions, file contents, names) is rendered without quoting.

Names a template may use: ``params``, ``host`` (name, address, groups, vars),
``vars`` (the host's inventory vars), ``captures`` (values captured by earlier
steps), ``run`` (id, runbook, operator, dry_run).
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

NAMESPACES = ("params", "host", "vars", "captures", "run")


class Raw(str):
    """A string the author asked to insert into a shell command unquoted."""

    __slots__ = ()


def _raw(value: Any) -> Raw:
    return Raw(value)


def _shell_finalize(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(shlex.quote(str(v)) for v in value)
    return shlex.quote(str(value))


def _text_finalize(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _quote(value: Any) -> str:
    return shlex.quote(str(value))


def _make_env(finalize: Any) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, finalize=finalize, autoescape=False, keep_trailing_newline=True
    )
    env.filters["raw"] = _raw
    env.filters["quote"] = _quote
    return env


SHELL = _make_env(_shell_finalize)
TEXT = _make_env(_text_finalize)


class TemplateProblem(ValueError):
    """A template that does not compile or cannot render; the message says why."""


def compile_check(source: str, *, expression: bool = False) -> nodes.Template:
    """Parse a template (or a ``when`` expression) and return its AST; TemplateProblem if bad."""
    text = f"{{{{ {source} }}}}" if expression else source
    try:
        return SHELL.parse(text)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        line = f" (line {lineno})" if lineno and not expression else ""
        raise TemplateProblem(f"template does not compile{line}: {exc.message}") from None


@dataclass(frozen=True)
class Reference:
    namespace: str
    name: str | None


def references(tree: nodes.Template) -> Iterator[Reference]:
    """Every ``namespace.name`` (or bare top-level name) a template reads."""
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if isinstance(target, nodes.Name) and target.name in NAMESPACES:
            key: Any = (
                getattr(node, "attr", None)
                if isinstance(node, nodes.Getattr)
                else (getattr(getattr(node, "arg", None), "value", None))
            )
            yield Reference(target.name, str(key) if key is not None else None)
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx == "load" and name_node.name not in assigned:
            yield Reference(name_node.name, None)


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, shell: bool) -> Template:
    """Templates compile once per process: a plan renders each one for every host."""
    return (SHELL if shell else TEXT).from_string(source)


def render(source: str, context: Mapping[str, Any], *, shell: bool) -> str:
    """Render a template; shell templates quote every substituted value."""
    try:
        return _compiled(source, shell).render(context)
    except TemplateError as exc:
        raise TemplateProblem(f"cannot render {source!r}: {exc.message}") from None


def evaluate(expression: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a ``when`` expression to a boolean."""
    try:
        return bool(TEXT.compile_expression(expression, undefined_to_none=False)(context))
    except TemplateError as exc:
        raise TemplateProblem(f"cannot evaluate {expression!r}: {exc.message}") from None


class Placeholder:
    """Stands in for values only known at run time (captures) when planning a dry run."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str) -> Raw:
        if name.startswith("__"):
            raise AttributeError(name)
        return Raw(f"<{self._namespace}.{name}>")

    def __getitem__(self, name: str) -> Raw:
        return Raw(f"<{self._namespace}.{name}>")
