"""The console as a person sees it: plain lines in a log, a live view on a terminal,
the summary table, and the prompt that Ctrl-C withdraws. Rendered to in-memory consoles."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from io import StringIO
from typing import Any

import pytest
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table
from streams import ClosedPipe

from drp.cli.console import ConsoleSink, JsonSink, Row, make_console
from drp.cli.prompts import ConsoleOperator, Keyboard
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
    """drp's own console (make_console), written to ``out``."""
    return make_console(
        file=out,
        width=120,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
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


# -- without a terminal: lines, as before -----------------------------------------------


@pytest.mark.parametrize("terminal", [False, True])
def test_a_commands_words_are_shown_as_they_are_never_as_markup_or_emoji(
    clock: Clock, terminal: bool
) -> None:
    out = StringIO()
    sink = ConsoleSink(console(out, terminal=terminal), clock=clock)
    started(sink, "h1")
    step(sink, "h1", "prep", "Prepare")
    stderr = "mdadm: [md0] :x: member gone, see :warning: log"
    sink(
        event(
            EventType.STEP_ATTEMPT, "h1", "prep", attempt=1, outcome="failed", exit_code=1,
            data={"phase": "action", "stderr": stderr},
        )
    )  # fmt: skip
    sink(event(EventType.STEP_FINISHED, "h1", "prep", outcome="failed", message=stderr))
    sink._stop_live()
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())
    assert shown.count(stderr) == 2, shown


def test_without_a_terminal_each_step_is_one_plain_line_and_nothing_is_live(
    plain: tuple[ConsoleSink, StringIO],
) -> None:
    sink, out = plain
    started(sink, "h1")
    step(sink, "h1", "prep", "Prepare the disk")
    assert sink.live is None and "Prepare" not in out.getvalue()  # lines come when steps end
    sink(event(EventType.STEP_FINISHED, "h1", "prep", outcome="ok", duration=1.5, message="done"))
    lines = out.getvalue().splitlines()
    assert lines[-1].split() == ["✓", "h1", "Prepare", "the", "disk", "1.5s", "done"]
    assert "\x1b" not in out.getvalue()


def test_a_wait_without_a_progress_regex_logs_its_elapsed_time_against_its_timeout(
    plain: tuple[ConsoleSink, StringIO],
) -> None:
    sink, out = plain
    started(sink, "h1")
    progress(sink, percent=None, elapsed=130.0, timeout=86400.0)  # transient: console only
    assert out.getvalue().count("\n") == 1
    progress(sink, percent=None, elapsed=130.0, timeout=86400.0, transient=False)
    assert out.getvalue().splitlines()[-1].split() == ["⠿", "h1", "resync", "2m10s", "/", "1d00h"]
    progress(sink, percent=None, elapsed=40.0, transient=False)  # an event without a timeout
    assert out.getvalue().splitlines()[-1].split() == ["⠿", "h1", "resync", "40s"]


def test_a_wait_with_progress_logs_its_percentage_as_before(
    plain: tuple[ConsoleSink, StringIO],
) -> None:
    sink, out = plain
    started(sink, "h1")
    progress(sink, percent=42.0, elapsed=130.0, timeout=600.0, transient=False)
    assert out.getvalue().splitlines()[-1].split() == ["⠿", "h1", "resync", "42.0%", "(2m10s)"]


@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "terminal"])
def test_a_retry_notice_is_a_line_never_a_bar(clock: Clock, terminal: bool) -> None:
    out = StringIO()
    sink = ConsoleSink(console(out, terminal=terminal), clock=clock)
    try:
        started(sink, "h1")
        step(sink, "h1", "fetch", "Fetch the image")
        sink(
            event(
                EventType.STEP_PROGRESS,
                "h1",
                "fetch",
                attempt=1,
                message="attempt 1 failed (exit code 1); retrying in 1.0s",
                data={"retry_in": 1.0},
            )
        )
        assert "fetch  attempt 1 failed (exit code 1); retrying in 1.0s" in out.getvalue()
        if terminal:
            row = sink.rows["h1"]
            assert row.since is None and row.percent is None  # still a step, not a wait
            view = sink.live_view()
            assert bars(view) == [] and "retry in 1.0s" in render(view)
    finally:
        sink._stop_live()


# -- a reader that goes away (`drp run … | head`) -----------------------------------------


@pytest.mark.parametrize("code", [errno.EPIPE, errno.EIO])  # a closed pipe; a hung-up terminal
def test_a_closed_output_silences_the_console_and_tells_its_hook_once(
    clock: Clock, code: int
) -> None:
    told: list[str] = []
    sink = ConsoleSink(make_console(file=ClosedPipe(code), on_closed=lambda: told.append("x")))
    started(sink, "h1")  # rich would raise SystemExit(1) here, in whatever thread printed
    sink(event(EventType.STEP_FINISHED, "h1", "prep", outcome="ok", message="done"))
    assert told == ["x"]
    assert sink.console.quiet


def test_without_a_hook_a_closed_output_is_a_broken_pipe_for_the_cli() -> None:
    with pytest.raises(BrokenPipeError):
        make_console(file=ClosedPipe()).print("plan …")


@pytest.mark.parametrize("code", [errno.EPIPE, errno.EIO])
def test_the_json_sink_stops_writing_once_its_reader_is_gone(
    monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr("sys.stdout", ClosedPipe(code))
    told: list[str] = []
    sink = JsonSink(on_closed=lambda: told.append("x"))
    started(sink, "h1")
    sink(event(EventType.STEP_FINISHED, "h1", "prep", outcome="ok"))
    assert told == ["x"] and sink.closed


# -- the summary table ----------------------------------------------------------------------


def test_the_summary_counts_ok_skipped_failed_and_unreachable_per_host(
    plain: tuple[ConsoleSink, StringIO],
) -> None:
    sink, out = plain
    started(sink, "h1", "h2", "h3")
    for host, step_id, outcome in [
        ("h1", "a", "ok"),
        ("h1", "b", "changed"),
        ("h1", "c", "failed"),
        ("h2", "a", "ok"),
        ("h2", "b", "unreachable"),
    ]:
        sink(event(EventType.STEP_FINISHED, host, step_id, outcome=outcome, duration=1.0))
    sink(event(EventType.STEP_SKIPPED, "h1", "d", outcome="skipped", data={"reason": "when"}))
    sink(event(EventType.HOST_UNREACHABLE, "h3", message="connection refused"))
    hosts = {"h1": "failed", "h2": "unreachable", "h3": "unreachable"}
    sink(event(EventType.RUN_FINISHED, host=None, outcome="failed", data={"hosts": hosts}))
    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in out.getvalue().splitlines()
        if line.startswith(("│", "┃"))
    ]
    assert rows[0] == ["host", "status", "ok", "skipped", "failed", "unreachable", "duration"]
    assert rows[1][:6] == ["h1", "failed", "2", "1", "1", "0"]
    assert rows[2][:6] == ["h2", "unreachable", "1", "0", "0", "1"]
    assert rows[3][:6] == ["h3", "unreachable", "0", "0", "0", "0"]


def test_after_a_resume_steps_done_earlier_are_counted_as_such_not_as_skipped(
    plain: tuple[ConsoleSink, StringIO],
) -> None:
    sink, out = plain
    started(sink, "h1")
    sink(event(EventType.HOST_RESUMED, "h1", data={"done_earlier": 2}))
    sink(event(EventType.STEP_FINISHED, "h1", "c", outcome="ok", duration=1.0))
    sink(event(EventType.RUN_FINISHED, host=None, outcome="ok", data={"hosts": {"h1": "ok"}}))
    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in out.getvalue().splitlines()
        if line.startswith(("│", "┃"))
    ]
    assert rows[0][:5] == ["host", "status", "ok", "done earlier", "skipped"]
    assert rows[1][:5] == ["h1", "ok", "1", "2", "0"]


# -- on a terminal: the live view -----------------------------------------------------------


def test_a_terminal_shows_each_hosts_current_step_and_how_long_it_runs(
    live: tuple[ConsoleSink, StringIO], clock: Clock
) -> None:
    sink, out = live
    started(sink, "h1", "web2")
    step(sink, "h1", "copy", "Copy the partition table")
    clock.now += 3
    step(sink, "web2", "check", "Check the new disk is blank")
    assert sink.live is not None
    clock.now += 9
    shown = render(sink.live_view()).splitlines()
    assert shown[0].split()[1:] == ["h1", "Copy", "the", "partition", "table", "12s"]
    assert shown[1].split()[1:] == ["web2", "Check", "the", "new", "disk", "is", "blank", "9.0s"]
    sink(event(EventType.STEP_FINISHED, "h1", "copy", outcome="ok", duration=12.0))
    assert list(sink.rows) == ["web2"]
    assert "Copy the partition table" in out.getvalue()  # its line, printed above the view
    sink(event(EventType.HOST_FINISHED, "web2", outcome="ok"))
    assert render(sink.live_view()).strip() == ""


def test_a_wait_without_progress_shows_elapsed_against_timeout_and_keeps_ticking(
    live: tuple[ConsoleSink, StringIO], clock: Clock
) -> None:
    sink, _ = live
    started(sink, "h1")
    step(sink, "h1", "resync", "Wait for the resync")
    progress(sink, percent=None, elapsed=130.0, timeout=86400.0)
    assert "2m10s / 1d00h" in render(sink.live_view())
    clock.now += 10  # no new event: the time still moves
    assert "2m20s / 1d00h" in render(sink.live_view())
    progress(sink, percent=None, elapsed=300.0, timeout=600.0)
    (bar,) = bars(sink.live_view())
    assert bar.completed == pytest.approx(50.0) and bar.total == 100.0
    assert "waiting" not in render(sink.live_view())


def test_a_wait_with_progress_shows_its_percentage(
    live: tuple[ConsoleSink, StringIO], clock: Clock
) -> None:
    sink, _ = live
    started(sink, "h1")
    step(sink, "h1", "resync", "Wait for the resync")
    progress(sink, percent=42.0, elapsed=130.0, timeout=86400.0)
    (bar,) = bars(sink.live_view())
    assert bar.completed == pytest.approx(42.0)
    assert "42.0%" in render(sink.live_view())


def test_a_wait_whose_event_lacks_a_timeout_shows_elapsed_only(
    live: tuple[ConsoleSink, StringIO], clock: Clock
) -> None:
    sink, _ = live
    started(sink, "h1")
    step(sink, "h1", "back", "Wait for the host")
    clock.now += 2
    progress(sink, "back", message="waiting for the host to come back")  # no elapsed, no timeout
    shown = render(sink.live_view())
    assert "waiting for the host to come back" in shown and "2.0s" in shown and " / " not in shown
    (bar,) = bars(sink.live_view())
    assert bar.total is None  # it pulses: alive, no end known
    progress(sink, "back", percent=None, elapsed=40.0)
    assert "40s" in render(sink.live_view()) and " / " not in render(sink.live_view())


def test_a_step_whose_start_names_a_timeout_shows_elapsed_against_it_without_a_bar(
    live: tuple[ConsoleSink, StringIO], clock: Clock
) -> None:
    sink, _ = live
    started(sink, "h1")
    sink(event(EventType.STEP_STARTED, "h1", "copy", data={"name": "Copy", "timeout": 600}))
    clock.now += 12
    assert "12s / 10m00s" in render(sink.live_view())
    assert bars(sink.live_view()) == []  # a command's time limit is not its progress


def test_row_fraction_is_progress_else_elapsed_over_timeout() -> None:
    assert Row("s", 0.0, percent=42.0, timeout=10.0, since=0.0).fraction(5.0) == 42.0
    assert Row("s", 0.0, timeout=200.0, since=100.0).fraction(150.0) == pytest.approx(25.0)
    assert Row("s", 0.0, timeout=10.0, since=0.0).fraction(50.0) == 100.0
    assert Row("s", 0.0, since=0.0).fraction(5.0) is None
    assert Row("s", 0.0).fraction(5.0) is None


def test_the_live_view_steps_aside_while_a_prompt_waits(
    live: tuple[ConsoleSink, StringIO],
) -> None:
    sink, _ = live
    started(sink, "h1", "h2")
    step(sink, "h1", "a", "First")
    assert sink.live is not None
    with sink.hold():
        assert sink.live is None
        step(sink, "h2", "b", "Second")  # another host goes on: no live view comes back
        assert sink.live is None and set(sink.rows) == {"h1", "h2"}
    assert sink.live is not None


def test_the_run_ends_the_live_view_before_the_summary(
    live: tuple[ConsoleSink, StringIO],
) -> None:
    sink, out = live
    started(sink, "h1")
    step(sink, "h1", "a", "First")
    sink(event(EventType.RUN_FINISHED, host=None, outcome="ok", data={"hosts": {"h1": "ok"}}))
    assert sink.live is None and sink.rows == {}
    assert f"run {RUN}: ok" in out.getvalue()


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
    os.write(typing, b"done\nbay 2 swapped, serial WD-7654321\n")
    answer = ask(operator)
    assert (answer.decision, answer.by) == (Decision.APPROVE, "alice@ops")
    assert answer.note == "bay 2 swapped, serial WD-7654321"  # a note at the gate, for the report
    assert "h1 swap [done/reject/pause] (pause): " in out.getvalue()  # the choices once


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


def test_ctrl_c_withdraws_the_question_and_the_live_view_comes_back(
    keys: tuple[Keyboard, int], live: tuple[ConsoleSink, StringIO]
) -> None:
    keyboard, _ = keys
    sink, out = live
    started(sink, "h1")
    step(sink, "h1", "swap", "Swap the disk")
    operator = ConsoleOperator(sink.console, "alice@ops", sink, keyboard=keyboard)
    assert isinstance(operator, Interruptible)
    during: list[object] = []

    def ctrl_c() -> None:
        during.append(sink.live)
        operator.interrupt()  # what the executor does when Ctrl-C reaches the main thread

    threading.Timer(0.2, ctrl_c).start()
    began = time.monotonic()
    with pytest.raises(Cancelled):
        ask(operator)
    assert time.monotonic() - began < 1.0
    assert during == [None]  # no live view drawn over the prompt
    assert sink.live is not None
    assert "done/reject/pause" in out.getvalue()


@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "terminal"])
def test_a_failed_attempt_then_its_retry_is_told_once(clock: Clock, terminal: bool) -> None:
    out = StringIO()
    sink = ConsoleSink(console(out, terminal=terminal), clock=clock)
    try:
        started(sink, "h1")
        step(sink, "h1", "fetch", "Fetch the image")
        failed = event(EventType.STEP_ATTEMPT, "h1", "fetch", attempt=1, outcome="failed")
        sink(replace(failed, exit_code=1, data={"phase": "action", "stderr": "no route"}))
        sink(
            event(
                EventType.STEP_PROGRESS,
                "h1",
                "fetch",
                attempt=1,
                message="attempt 1 failed (exit code 1); retrying in 1.0s",
                data={"retry_in": 1.0},
            )
        )
        text = out.getvalue()
        assert text.count("attempt 1 failed") == 1 and "no route" in text
        assert "fetch  retrying in 1.0s" in text
    finally:
        sink._stop_live()


def test_into_a_pipe_a_long_line_stays_whole_for_the_log() -> None:
    out = StringIO()
    sink = ConsoleSink(make_console(file=out, width=80))  # a pipe: 80 columns, no colour
    started(sink, "h1")
    words = " ".join(f"word{i}" for i in range(60))  # 400 characters
    sink(event(EventType.STEP_FINISHED, "h1", "prep", outcome="failed", message=words))
    (line,) = [ln for ln in out.getvalue().splitlines() if "word0" in ln]
    assert line.endswith("word59") and "✗ h1" in line  # one line, not wrapped at 80
