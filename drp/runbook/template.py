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

import difflib
import functools
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

NAMESPACES = ("params", "host", "vars", "captures", "run")
# the keys of the namespaces whose shape drp fixes (Host.template_view, HostRun.context)
HOST_KEYS = ("name", "address", "port", "user", "groups", "vars")
RUN_KEYS = ("id", "runbook", "operator", "dry_run")


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


def _quote(value: Any) -> Raw:
    """``{{ v | quote }}``: quoted once, here, and marked so the shell finalizer adds nothing.

    The same as a plain ``{{ v }}`` in a command; in text (a manual step, a file)
    it is the way to show a value quoted as a shell would need it.
    """
    if isinstance(value, list | tuple):
        return Raw(" ".join(shlex.quote(str(v)) for v in value))
    return Raw(shlex.quote(str(value)))


#: The most characters (or items) one operation of a template may make, and a
#: rendered template may hold: a template is input, and may not take the memory.
MAX_SIZE = 1_000_000
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
_BIG_NUMBER = re.compile(r"\d{7,}|\*")  # a width or precision over MAX_SIZE, or one from args


def _too_big(what: str) -> SecurityError:
    return SecurityError(f"{what} would make more than {MAX_SIZE} characters")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def _check_format(fmt: Any) -> None:
    """A format string (``%`` or ``format``) may not ask for a width over MAX_SIZE."""
    if isinstance(fmt, str) and any(
        m.group() == "*" or int(m.group()) > MAX_SIZE for m in _BIG_NUMBER.finditer(fmt)
    ):
        raise _too_big(f"the format {fmt[:40]!r}")


class _BoundedCode(CodeGenerator):
    """Jinja2's code generator, with ``a ~ b`` joined by :meth:`_Bounded.bounded_join`."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja2 name
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Bounded(ImmutableSandboxedEnvironment):
    """The sandbox, with what one template may allocate bounded (see MAX_SIZE).

    Intercepting ``*``, ``**``, ``+`` and ``%`` also stops Jinja2 folding them
    at compile time, where ``{{ ('x'*100000)*3000 }}`` took a gigabyte; ``~``
    is joined by :meth:`bounded_join`.
    ``namespace`` (the one mutable value) and ``lipsum`` are not offered, so no
    loop can double a value on each turn.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCode

    @staticmethod
    def bounded_join(parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ c``: at most MAX_SIZE characters (``{% set x = x ~ x %}`` doubles x)."""
        text = "".join(map(str, parts))
        if len(text) > MAX_SIZE:
            raise _too_big("the concatenation")
        return text

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _size(seq) and isinstance(times, int) and _size(seq) * times > MAX_SIZE:
                    raise _too_big("the repetition")
        elif operator == "+" and _size(left) + _size(right) > MAX_SIZE:
            raise _too_big("the concatenation")
        elif operator == "**" and isinstance(right, int) and abs(right) > 4096:
            raise SecurityError(f"the power {right} is too large (at most 4096)")
        elif operator == "%":
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if (
            isinstance(getattr(__obj, "__self__", None), str)
            and getattr(__obj, "__name__", "") in _WIDTH_METHODS
            and any(isinstance(a, int) and a > MAX_SIZE for a in (*args, *kwargs.values()))
        ):
            raise _too_big(f"str.{__obj.__name__}")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format(value.__self__)

        def bounded(*args: Any, **kwargs: Any) -> Any:
            if any(isinstance(a, int) and a > MAX_SIZE for a in (*args, *kwargs.values())):
                raise _too_big("the format")  # a width given as an argument: '{:{}}'
            return wrapped(*args, **kwargs)

        return bounded


def _bounded_filter(name: str, filter_: Any) -> Any:
    """A built-in filter whose numeric arguments say how much it makes, bounded."""

    @functools.wraps(filter_)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name == "format" and args:
            _check_format(args[0])
        numbers = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, int)]
        if any(n > MAX_SIZE for n in numbers):
            raise _too_big(f"the filter {name!r}")
        return filter_(*args, **kwargs)

    return bounded


def _make_env(finalize: Any) -> ImmutableSandboxedEnvironment:
    env = _Bounded(
        undefined=StrictUndefined, finalize=finalize, autoescape=False, keep_trailing_newline=True
    )
    for name in ("center", "indent", "format", "slice", "batch", "wordwrap", "truncate"):
        env.filters[name] = _bounded_filter(name, env.filters[name])
    env.filters["raw"] = _raw
    env.filters["quote"] = _quote
    del env.globals["namespace"], env.globals["lipsum"]
    return env


SHELL = _make_env(_shell_finalize)
TEXT = _make_env(_text_finalize)
# names Jinja2 itself provides: range, dict, namespace..., and loop inside a for
_BUILTIN_NAMES = frozenset({*SHELL.globals, "loop"})


class TemplateProblem(ValueError):
    """A template that does not compile or cannot render; the message says why.

    ``lineno`` is the line of the template where it went wrong, when known;
    ``hint`` what to do about it, when there is more to say than the message.
    """

    def __init__(
        self, message: str, lineno: int | None = None, hint: str = "", reason: str = ""
    ) -> None:
        super().__init__(message)
        self.lineno = lineno
        self.hint = hint
        self.reason = reason or message  # without the template's text


def compile_check(source: str, *, expression: bool = False) -> nodes.Template:
    """Compile a template (or a ``when`` expression) and return its AST; TemplateProblem if bad.

    Compiling, not only parsing, is what finds an unknown filter or test; the
    walk below finds those Jinja2 leaves to run time (inside ``{% if %}``).
    """
    text = f"{{{{ {source} }}}}" if expression else source
    try:
        tree = SHELL.parse(text)
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            _known(node.name, node.lineno, isinstance(node, nodes.Filter), expression)
        for binexpr in tree.find_all(nodes.BinExpr):
            _check_constant(binexpr, expression)
        if expression:
            SHELL.compile(tree)
        else:  # compiled into the cache render uses: a plan renders it next
            _compiled(source, True)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None) if not expression else None
        raise TemplateProblem(
            f"template does not compile: {exc.message}", lineno, "check {{ }} and {% %} pairs"
        ) from None
    except (RecursionError, MemoryError):
        raise TemplateProblem("template does not compile: it is nested too deeply") from None
    return tree


def _fold(node: nodes.Node) -> Any:
    """The value of a constant expression, each operation bounded as at run time.

    Raises Impossible when the expression is not constant.
    """
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Tuple | nodes.List):
        return tuple(_fold(item) for item in node.items)
    if isinstance(node, nodes.BinExpr):
        return SHELL.call_binop(None, node.operator, _fold(node.left), _fold(node.right))  # type: ignore[arg-type]
    raise nodes.Impossible()


def _check_constant(node: nodes.BinExpr, expression: bool) -> None:
    """``{{ ('x'*100000)*3000 }}`` is refused when checked, not only when rendered."""
    try:
        _fold(node)
    except SecurityError as exc:
        raise TemplateProblem(
            str(exc), None if expression else node.lineno, "a template may not make that much"
        ) from None
    except Exception:  # not constant, or an error rendering reports with its value
        return


def _known(name: str, lineno: int, is_filter: bool, expression: bool) -> None:
    """An unknown filter or test is an error with "did you mean", wherever it is."""
    known = SHELL.filters if is_filter else SHELL.tests
    if name in known:
        return
    kind = "filter" if is_filter else "test"
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = (
        f"did you mean {close[0]!r}?"
        if close
        else "drp's own filters are raw and quote; the others are Jinja2's built-in filters"
        if is_filter
        else "tests are Jinja2's built-in ones, e.g. defined, none, number, string"
    )
    raise TemplateProblem(f"no {kind} named {name!r}", None if expression else lineno, hint)


@dataclass(frozen=True)
class Reference:
    namespace: str
    name: str | None
    lineno: int | None = None  # the template's own line


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
            yield Reference(target.name, str(key) if key is not None else None, node.lineno)
    for name_node in tree.find_all(nodes.Name):
        name = name_node.name
        if name_node.ctx == "load" and name not in assigned and name not in _BUILTIN_NAMES:
            yield Reference(name, None, name_node.lineno)


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, shell: bool) -> Template:
    """Templates compile once per process: a plan renders each one for every host."""
    return (SHELL if shell else TEXT).from_string(source)


def _why(exc: Exception) -> str:
    """What went wrong, in a line: Jinja2's message, or the Python error a value raised."""
    if isinstance(exc, TemplateError):
        return str(exc.message)
    if isinstance(exc, RecursionError | MemoryError):
        return "the template is nested too deeply"
    return f"{type(exc).__name__}: {exc}"


def is_plain(source: str) -> bool:
    """Text with no Jinja2 delimiter (they all open with ``{``) and no carriage return
    (Jinja2 turns ``\r\n`` into ``\n``): it renders to itself, so it needs neither
    parsing nor compiling. Most runbook commands are such text."""
    return "{" not in source and "\r" not in source


def render(source: str, context: Mapping[str, Any], *, shell: bool) -> str:
    """Render a template; shell templates quote every substituted value.

    Whatever goes wrong (an undefined name, ``{{ 1 // 0 }}``, ``{{ "%d" % "x" }}``)
    is a TemplateProblem: a template is input, and bad input is never a crash.
    """
    if is_plain(source):
        return source
    try:
        return _bounded_render(_compiled(source, shell), context)
    except Exception as exc:
        why = _why(exc)
        raise TemplateProblem(f"cannot render {source!r}: {why}", reason=why) from None


def _bounded_render(template: Template, context: Mapping[str, Any]) -> str:
    """Render chunk by chunk, refusing output over MAX_SIZE (loops multiply what they print)."""
    parts: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_SIZE:
            raise _too_big("the rendered template")
        parts.append(chunk)
    return "".join(parts)


def evaluate(expression: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a ``when`` expression to a boolean (any failure is a TemplateProblem)."""
    try:
        return bool(TEXT.compile_expression(expression, undefined_to_none=False)(context))
    except Exception as exc:
        why = _why(exc)
        raise TemplateProblem(f"cannot evaluate {expression!r}: {why}", reason=why) from None


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
