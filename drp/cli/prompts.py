"""Operator prompts: gates answered at the terminal (approve, reject, pause).

``ConsoleOperator`` answers gates at the prompt. Gates are asked from a host's
worker thread, which Ctrl-C never reaches, so the prompt reads the terminal
with ``select()`` (``Keyboard``) and gives up when the executor calls
``interrupt()``.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.prompt import InvalidResponse, Prompt

from drp.engine.options import GATE_CHOICES, Decision, GateAnswer, GateRequest
from drp.errors import Cancelled

if TYPE_CHECKING:
    from drp.cli.console import ConsoleSink


class Keyboard:
    """Lines typed at the terminal, read so that a question can be withdrawn while it waits.

    Ctrl-C raises KeyboardInterrupt in the main thread only, and a gate's prompt
    runs in a host's worker thread: a blocking ``input()`` there would hold the
    whole run until Enter. ``readline`` polls the file descriptor with
    ``select()`` and raises :class:`Cancelled` once ``stop`` is set.
    """

    POLL = 0.1  # seconds: how soon a withdrawn question notices

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd
        self.stop = threading.Event()
        self._pending = b""

    def readline(self, deadline: float | None = None) -> str:
        """One line without its end; EOFError at the end of input, TimeoutError once
        ``deadline`` (a ``time.monotonic()`` value) passes without one."""
        fd = sys.stdin.fileno() if self.fd is None else self.fd
        while b"\n" not in self._pending:
            if self.stop.is_set():
                raise Cancelled("interrupted at the prompt")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("no answer before the gate's deadline")
            ready, _, _ = select.select([fd], [], [], self.POLL)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                if not self._pending:
                    raise EOFError
                break
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
        return line.decode(encoding, errors="replace").rstrip("\r")


class ConsoleOperator:
    """Answers gates at the terminal: approve, reject, or pause to resume later.

    Ctrl-C at the prompt (``interrupt()``, called by the executor) withdraws the
    question: ``decide`` raises :class:`Cancelled`, nothing is answered, and
    ``drp resume`` asks again.
    """

    def __init__(
        self,
        console: Console,
        operator: str,
        sink: ConsoleSink | None,
        *,
        keyboard: Keyboard | None = None,
    ) -> None:
        self.console = console
        self.operator = operator
        self.sink = sink
        self.keyboard = keyboard or Keyboard()

    def interrupt(self) -> None:
        self.keyboard.stop.set()

    def decide(self, request: GateRequest) -> GateAnswer:
        choices = GATE_CHOICES[request.kind]
        held = self.sink.hold() if self.sink is not None else contextlib.nullcontext()
        note, answer = "", "pause"
        with held:
            try:
                answer = self._ask(
                    f"{escape(request.host)} {escape(request.step)}",  # rich adds the choices
                    list(choices),
                    "pause",
                    request.deadline,
                )
                if answer == choices[1]:
                    note = self._ask("reason (for the audit log)", None, "")
                elif answer == "done":  # the operator's own words, in the report's timeline
                    note = self._ask("note for the report (optional, Enter to skip)", None, "")
            except EOFError:  # the end of input pauses; after "done", it only ends the note
                answer = "done" if answer == "done" else "pause"
            except Cancelled:
                self.console.print()  # end the prompt's line (the terminal echoed ^C)
                raise
            except TimeoutError:  # the gate's deadline: the engine decides what follows
                self.console.print()
                return GateAnswer(Decision.LATE, self.operator)
        decision = {0: Decision.APPROVE, 1: Decision.REJECT, 2: Decision.PAUSE}[
            choices.index(answer)
        ]
        return GateAnswer(decision, self.operator, note)

    def _ask(
        self, text: str, choices: list[str] | None, default: str, deadline: float | None = None
    ) -> str:
        """rich's prompt (look, choices, validation), reading through the :class:`Keyboard`."""
        prompt = Prompt(text, console=self.console, choices=choices)
        while True:
            self.console.print(prompt.make_prompt(default), end="")
            value = self.keyboard.readline(deadline)
            if not value.strip():
                return default
            try:
                return prompt.process_response(value)
            except InvalidResponse as error:
                prompt.on_validate_error(value, error)
