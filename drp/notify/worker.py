"""The notifier: a sink beside the console and the journal that never blocks the run.

:class:`Notifier` is called with every event of a run (it is a
:data:`drp.engine.events.Sink`). An event that notifies (see
:func:`drp.notify.notice.notice_for`) is queued once per channel that takes its
kind. Each channel has a queue and a thread of its own (a channel that is down
delays no other), which delivers its notices in order, each retried with backoff
(tenacity) until it is delivered or ``bound`` seconds have passed.

Every attempt is reported through ``record`` (the CLI's emit: journal, then
console) as a ``notify.sent`` or ``notify.failed`` event, its error masked with
the channels' secrets. At the end of a run :meth:`Notifier.close` waits up to
``wait_at_end`` for the queues to drain, then reports each notice still
undelivered as a final ``notify.failed``; the threads say nothing after that
(the journal is about to be closed). Nothing here raises into the run.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
)
from tenacity import wait_exponential as backoff

from drp.durations import format_duration
from drp.engine.events import Event, EventType, Sink
from drp.errors import DrpError
from drp.notify.channels import Channel, DeliveryError
from drp.notify.notice import Notice, RunContext, notice_for
from drp.redact import Redactor

FIRST_RETRY = 0.5  # seconds before the second attempt; doubles, up to MAX_RETRY_WAIT
MAX_RETRY_WAIT = 8.0


@dataclass(frozen=True)
class Settings:
    """The channels of a run and its bounds (from the team config and the runbook)."""

    channels: tuple[Channel, ...] = ()
    bound: float = 30.0  # seconds one notice may take, retries included
    wait_at_end: float = 10.0  # seconds the end of a run waits for the queue

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for c in self.channels for s in c.secrets())


@dataclass
class _Job:
    number: int
    channel: Channel
    notice: Notice
    attempts: int = 0


class Notifier:
    """Queues notices and delivers them on its own threads; see the module docstring."""

    def __init__(self, settings: Settings, context: RunContext, record: Sink) -> None:
        self.settings = settings
        self.context = context
        self.record = record
        self.mask = Redactor.of(settings.secrets())
        # a queue and a thread per channel: one that is down delays none of the others
        self._queues: dict[str, queue.Queue[_Job]] = {}
        self._pending: dict[int, _Job] = {}
        self._lock = threading.Lock()  # guards _pending and _closed, never held for I/O
        self._drained = threading.Condition(self._lock)
        self._saying = threading.Lock()  # held while recording: taken before _lock, never after
        self._closing = threading.Event()  # cuts a retry's wait short
        self._closed = False
        self._numbers = itertools.count(1)
        for channel in settings.channels:
            jobs: queue.Queue[_Job] = queue.Queue()
            self._queues[channel.name] = jobs
            name = f"drp-notify-{channel.name}"
            threading.Thread(target=self._work, args=(jobs,), name=name, daemon=True).start()

    def __call__(self, event: Event) -> None:
        if not self.settings.channels or event.type.value.startswith("notify."):
            return
        notice = notice_for(event, self.context)
        if notice is None:
            return
        with self._lock:
            if self._closed:
                return
            for channel in self.settings.channels:
                if notice.kind in channel.on:
                    job = _Job(next(self._numbers), channel, notice)
                    self._pending[job.number] = job
                    self._queues[channel.name].put(job)

    def close(self) -> None:
        """Wait up to ``wait_at_end`` for the queue, then report what is still undelivered."""
        deadline = time.monotonic() + self.settings.wait_at_end
        with self._lock:
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._drained.wait(left)
        self._closing.set()
        with self._saying:
            with self._lock:
                left_over = sorted(self._pending.values(), key=lambda j: j.number)
                self._pending.clear()
                self._closed = True
            waited = format_duration(self.settings.wait_at_end)
            for job in left_over:
                why = f"still undelivered when the run ended (drp waited {waited} for it)"
                self._report(job, None, why, final=True)

    # -- the thread -----------------------------------------------------------
    def _work(self, jobs: queue.Queue[_Job]) -> None:
        while True:
            job = jobs.get()
            if self._closing.is_set():
                continue  # reported as undelivered by close()
            try:
                self._deliver(job)
            except Exception as error:  # never let one notice end the thread
                self._finish(job, f"drp could not send it: {type(error).__name__}: {error}")

    def _deliver(self, job: _Job) -> None:
        started = time.monotonic()
        bound = self.settings.bound

        def attempt() -> None:
            job.attempts += 1
            left = max(0.5, bound - (time.monotonic() - started))
            job.channel.send(job.notice, left)

        def failed(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            with self._saying:
                with self._lock:
                    if job.number not in self._pending:
                        return
                self._report(
                    job, job.attempts, str(error), final=False, retry_in=state.upcoming_sleep
                )

        retrying = Retrying(
            stop=stop_after_delay(bound) | stop_when_event_set(self._closing),
            wait=backoff(multiplier=FIRST_RETRY, max=MAX_RETRY_WAIT),
            retry=retry_if_exception_type(DeliveryError),
            before_sleep=failed,
            sleep=self._pause,
            reraise=True,
        )
        try:
            retrying(attempt)
        except DeliveryError as error:
            self._finish(job, str(error))
        else:
            self._finish(job, None)

    def _pause(self, seconds: float) -> None:
        """Wait before the next attempt; the end of the run cuts the wait short."""
        self._closing.wait(seconds)

    def _finish(self, job: _Job, error: str | None) -> None:
        with self._saying:
            with self._lock:
                if self._pending.pop(job.number, None) is None:
                    return  # close() reported it already
                if not self._pending:
                    self._drained.notify_all()
            self._report(job, job.attempts, error, final=True)

    def _report(
        self,
        job: _Job,
        attempt: int | None,
        error: str | None,
        *,
        final: bool,
        retry_in: float | None = None,
    ) -> None:
        """Journal one attempt (or the end of a notice); the caller holds ``_saying``."""
        channel, notice = job.channel, job.notice
        data: dict[str, object] = {
            "channel": channel.name,
            "via": channel.via,
            "event": notice.kind,
            "about": notice.about,
        }
        if error is None:
            kind, outcome = EventType.NOTIFY_SENT, "sent"
            message = f"{notice.kind} notification sent to {channel.name} ({channel.via})"
        else:
            kind, outcome = EventType.NOTIFY_FAILED, "failed"
            error = self.mask.text(error)
            data |= {"error": error, "final": final}
            if final:
                message = (
                    f"{notice.kind} notification to {channel.name} ({channel.via}) "
                    f"not delivered: {error}"
                )
            else:
                data["retry_in"] = round(retry_in or 0.0, 3)
                message = f"{notice.kind} notification to {channel.name} failed: {error}"
        event = Event(
            kind,
            job.notice.run,
            host=notice.host,
            step=notice.step,
            attempt=attempt,
            outcome=outcome,
            message=message,
            data=data,
        )
        with contextlib.suppress(DrpError, OSError):  # a journal that fails: the run says so
            self.record(event)
