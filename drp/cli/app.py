"""The ``drp`` command: the typer app, its sub-commands, and the one error boundary.

``main()`` is the console script. Every :class:`drp.errors.DrpError` becomes a
clear message and its exit code; anything unexpected prints one line and
writes the traceback (without local variables, which may hold secrets) to a
debug log.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

import typer

from drp import __version__
from drp.cli import adhoc, approve, authoring, inventory, new, resume, run, serial, store
from drp.cli.completion import attach
from drp.cli.console import CLOSED, silence
from drp.cli.helpstyle import tidy
from drp.errors import DrpError, ExitCode, InputError
from drp.terminal import visible

HELP = f"""drp {__version__}: run disaster-recovery runbooks over SSH, with checkpoints,
retries, manual gates, dry runs and an audit log.

Example: drp run disk-replace --host db1 --param failed=/dev/sdb --dry-run

Exit codes: 0 ok, 1 a step failed, 2 invalid input, 3 host unreachable,
4 rejected at a gate, 5 paused (resumable), 6 journal problem, 7 host or run
locked, 70 internal error, 130 interrupted.
"""


class _App(typer.Typer):
    """typer's app: its command tree tidied for --help (:mod:`drp.cli.helpstyle`), and a
    closed standard output (``drp schema | head -1``) ending the command with exit 0, as
    typer's would be 1: the reader has what it wanted."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        command = attach(tidy(typer.main.get_command(self)))
        invoke = command.invoke

        def invoke_closing(ctx: Any) -> Any:
            try:
                return invoke(ctx)
            except OSError as error:
                if error.errno not in CLOSED:
                    raise
                silence(sys.stdout)
                raise typer.Exit(0) from None

        command.invoke = invoke_closing
        return command(*args, **kwargs)


app = _App(
    help=HELP,
    no_args_is_help=True,
    add_completion=True,  # --install-completion; drp's names: drp.cli.completion
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"drp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Root options."""


authoring.register(app)
new.register(app)
adhoc.register(app)
run.register(app)
resume.register(app)
serial.register(app)
store.register(app)
approve.register(app)
app.add_typer(inventory.app, name="inventory")


def _mount_log() -> None:
    try:
        from drp.cli import log
    except ImportError:  # pragma: no cover - the log commands ship with drp
        return
    app.add_typer(log.app, name="log")


_mount_log()


MAX_SHOWN = 50  # problems printed for one error

# What typer raises for a bad command line (unknown option, missing argument, bad
# value): click's ClickException with older typer, its vendored copy (typer._click)
# since typer 0.26, which no longer exports it. BadParameter derives from it either way.
USAGE_ERRORS: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def _report(error: DrpError) -> None:
    stream = _Visible(sys.stderr)  # messages quote host output, runbooks, journals
    if isinstance(error, InputError):
        count = len(error.problems)
        stream.write(f"error: {count} problem{'s' if count != 1 else ''} found\n")
        for problem in error.problems[:MAX_SHOWN]:
            stream.write(f"  {problem}\n")
        if count > MAX_SHOWN:  # one screen: the first ones usually cause the rest
            stream.write(f"  …and {count - MAX_SHOWN} more (fix these first)\n")
    else:
        stream.write(f"error: {error}\n")


class _Visible:
    """A stream whose writes show control characters (drp.terminal) instead of sending them."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        self.stream.write(visible(text))


def _debug_log(error: BaseException, argv: list[str]) -> Path:
    """Append the traceback to ``drp-debug.log`` in the state dir (private, never via a link)."""
    from drp.journal.paths import state_dir

    given = next((a.split("=", 1)[1] for a in argv if a.startswith("--state-dir=")), None)
    if given is None and "--state-dir" in argv[:-1]:
        given = argv[argv.index("--state-dir") + 1]
    directory = state_dir(given)
    path = directory / "drp-debug.log"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            # plain format_exception never includes local variables (they may hold secrets)
            handle.write("".join(traceback.format_exception(error)))
    except OSError:
        pass
    return path


def main(argv: list[str] | None = None) -> None:
    """Console script entry point: the one place that turns errors into exit codes."""
    # Start-up (imports, pydantic schemas, the loaded runbook) allocates objects
    # that live as long as the process; cyclic collections walking them again
    # and again cost ~80 ms, a sixth of a short run. The collector is off until
    # a long command says start-up is over (common.startup_done).
    gc.disable()
    try:
        _main(argv)
    finally:
        # The process ends here. Freezing puts every object out of the cyclic
        # collector's reach, so interpreter shutdown skips its final walk over all
        # of them (~60 ms). Nothing relies on that walk: journals and files are
        # closed explicitly, standard streams flushed at exit.
        gc.freeze()


def _main(argv: list[str] | None) -> None:
    try:
        code = app(args=argv, prog_name="drp", standalone_mode=False)
    except DrpError as error:
        _report(error)
        sys.exit(int(error.exit_code))
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except USAGE_ERRORS as error:
        error.show()  # type: ignore[attr-defined]  # click's API, on either class
        sys.exit(int(ExitCode.INVALID_INPUT))
    except Exception as error:  # the boundary: anything else is a bug, said in one line
        path = _debug_log(error, list(sys.argv[1:] if argv is None else argv))
        _Visible(sys.stderr).write(
            f"internal error: {type(error).__name__}: {error} "
            f"(traceback in {path}; please report it)\n"
        )
        sys.exit(int(ExitCode.INTERNAL))
    sys.exit(code if isinstance(code, int) else 0)
