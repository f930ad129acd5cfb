"""The console as a person sees it: the gate's prompt, and Ctrl-C withdrawing it.
Rendered to in-memory consoles, typed into through a pipe."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

from drp.cli.console import ConsoleOperator, ConsoleSink, Keyboard
from drp.engine.events import Event, EventType
from drp.engine.gates import Interruptible
from drp.engine.options import Decision, GateAnswer, GateKind, GateRequest
from drp.errors import Cancelled

RUN = "20260101-000000-test-0000"


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(type_: EventType, host: str | None = "h1", step: str | None = None, **kw: Any) -> Event:
    return Event(type_, RUN, host=host, step=step, **kw)


def console(out: StringIO, *, terminal: bool) -> Console:
    return Console(
        file=out,
        width=120,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
        highlight=False,
        soft_wrap=False,
    )


def render(renderable: Any) -> str:
    out = StringIO()
    Console(file=out, width=120, color_system=None, highlight=False).print(renderable)
    return out.getvalue()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def plain(clock: Clock) -> Iterator[tuple[ConsoleSink, StringIO]]:
    out = StringIO()
    yield ConsoleSink(console(out, terminal=False), clock=clock), out


@pytest.fixture
def live(clock: Clock) -> Iterator[tuple[ConsoleSink, StringIO]]:
    out = StringIO()
    sink = ConsoleSink(console(out, terminal=True), clock=clock)
    yield sink, out
    sink._stop_live()  # never leave a refresh thread (and a redirected stdout) behind


def started(sink: ConsoleSink, *hosts: str) -> None:
    sink(event(EventType.RUN_STARTED, host=None, data={"targets": list(hosts)}))


def step(sink: ConsoleSink, host: str, step_id: str, name: str) -> None:
    sink(event(EventType.STEP_STARTED, host, step_id, data={"name": name, "kind": "run"}))


def progress(sink: ConsoleSink, step_id: str = "resync", **data: Any) -> None:
    transient = data.pop("transient", True)
    message = data.pop("message", "")
    sink(
        event(
            EventType.STEP_PROGRESS, "h1", step_id, data=data, message=message, transient=transient
        )
    )


def bars(view: Any) -> list[ProgressBar]:
    assert isinstance(view, Table)
    return [
        cell for column in view.columns for cell in column.cells if isinstance(cell, ProgressBar)
    ]


# -- the prompt -----------------------------------------------------------------------------


@pytest.fixture
def keys() -> Iterator[tuple[Keyboard, int]]:
    """A Keyboard reading a pipe, and the pipe's end to type into."""
    read, write = os.pipe()
    yield Keyboard(read), write
    os.close(read)
    with contextlib.suppress(OSError):  # a test may have closed it: the end of input
        os.close(write)


def test_the_keyboard_reads_lines_one_at_a_time(keys: tuple[Keyboard, int]) -> None:
    keyboard, typing = keys
    os.write(typing, b"done\r\nno\nwrong h")
    assert keyboard.readline() == "done"
    assert keyboard.readline() == "no"
    os.write(typing, b"ost\n")
    assert keyboard.readline() == "wrong host"
    os.close(typing)
    with pytest.raises(EOFError):
        keyboard.readline()


def test_the_keyboard_gives_up_at_once_when_the_question_is_withdrawn(
    keys: tuple[Keyboard, int],
) -> None:
    keyboard, _ = keys
    threading.Timer(0.2, keyboard.stop.set).start()
    began = time.monotonic()
    with pytest.raises(Cancelled):
        keyboard.readline()
    assert time.monotonic() - began < 1.0


def ask(operator: ConsoleOperator, kind: GateKind = "manual") -> GateAnswer:
    return operator.decide(GateRequest(kind, "h1", "swap", "Swap", "Swap the disk"))


def test_the_operator_approves_at_the_prompt(keys: tuple[Keyboard, int]) -> None:
    keyboard, typing = keys
    out = StringIO()
    operator = ConsoleOperator(console(out, terminal=False), "alice@ops", None, keyboard=keyboard)
    os.write(typing, b"done\n")
    answer = ask(operator)
    assert (answer.decision, answer.by) == (Decision.APPROVE, "alice@ops")
    assert "h1 swap: done/reject/pause? [done/reject/pause] (pause): " in out.getvalue()


def test_the_operator_refuses_after_a_wrong_answer_and_says_why(
    keys: tuple[Keyboard, int],
) -> None:
    keyboard, typing = keys
    out = StringIO()
    operator = ConsoleOperator(console(out, terminal=False), "alice@ops", None, keyboard=keyboard)
    os.write(typing, b"maybe\nno\nwrong host\n")
    answer = ask(operator, "confirm")
    assert (answer.decision, answer.note) == (Decision.REJECT, "wrong host")
    assert "Please select one of the available options" in out.getvalue()
    assert "reason (for the audit log)" in out.getvalue()


def test_enter_or_the_end_of_input_pauses(keys: tuple[Keyboard, int]) -> None:
    keyboard, typing = keys
    operator = ConsoleOperator(console(StringIO(), terminal=False), "a", None, keyboard=keyboard)
    os.write(typing, b"\n")
    assert ask(operator).decision is Decision.PAUSE
    os.close(typing)
    assert ask(operator).decision is Decision.PAUSE


def test_ctrl_c_withdraws_the_question(keys: tuple[Keyboard, int]) -> None:
    keyboard, _ = keys
    out = StringIO()
    operator = ConsoleOperator(console(out, terminal=False), "alice@ops", None, keyboard=keyboard)
    assert isinstance(operator, Interruptible)
    threading.Timer(0.2, operator.interrupt).start()  # what the executor does on Ctrl-C
    began = time.monotonic()
    with pytest.raises(Cancelled):
        ask(operator)
    assert time.monotonic() - began < 1.0
    assert "done/reject/pause" in out.getvalue()
