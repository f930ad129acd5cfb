"""Execute a plan: hosts in parallel (``--forks``) or in rolling batches (``serial``).

The executor opens one transport per host, hands each host to a
:class:`drp.engine.hostrun.HostRun` in a worker thread, halts the rollout when
``max_fail_percentage`` is exceeded, and on Ctrl-C kills what runs on the
hosts before it returns. It emits ``run.started`` (or ``run.resumed``) first
and ``run.finished`` last.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from drp import __version__
from drp.engine.events import Event, EventType, Sink
from drp.engine.gates import Interruptible
from drp.engine.hostrun import HostRun
from drp.engine.hostview import Shared
from drp.engine.inputs import host_settings
from drp.engine.options import HostResume, Operator, RunOptions
from drp.engine.plan import Plan
from drp.inventory import Host
from drp.results import HostStatus, RunStatus
from drp.transport.base import Transport

TransportFactory = Callable[[Host], Transport]
FAILED_STATES = (HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.LOCKED)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: RunStatus
    hosts: dict[str, HostStatus]


def run_status(hosts: dict[str, HostStatus]) -> RunStatus:
    """One status for the run, the most urgent first."""
    values = set(hosts.values())
    for host_state, run_state in (
        (HostStatus.INTERRUPTED, RunStatus.INTERRUPTED),
        (HostStatus.FAILED, RunStatus.FAILED),
        (HostStatus.HALTED, RunStatus.FAILED),
        (HostStatus.UNREACHABLE, RunStatus.UNREACHABLE),
        (HostStatus.LOCKED, RunStatus.LOCKED),
        (HostStatus.REJECTED, RunStatus.REJECTED),
        (HostStatus.PAUSED, RunStatus.PAUSED),
    ):
        if host_state in values:
            return run_state
    return RunStatus.OK


def batches(hosts: Sequence[Host], serial: int | str | None) -> list[list[Host]]:
    """Split hosts into rolling batches: ``serial`` is a count or a percentage."""
    if serial is None:
        return [list(hosts)] if hosts else []
    if isinstance(serial, str):
        size = max(1, math.floor(len(hosts) * float(serial.strip().rstrip("%")) / 100))
    else:
        size = max(1, serial)
    return [list(hosts[i : i + size]) for i in range(0, len(hosts), size)]


def journaled_hosts(plan: Plan) -> dict[str, Any]:
    """Each target's settings as ``run.started`` keeps them (secrets masked): resume
    compares them key by key."""
    return {h.name: plan.redactor(host_settings(h)) for h in plan.hosts}


def start_event(
    plan: Plan, options: RunOptions, *, resumed: bool, extra: dict[str, object] | None = None
) -> Event:
    if resumed:
        return Event(
            EventType.RUN_RESUMED,
            options.run_id,
            data={
                "command_line": plan.redactor.text(options.command_line),
                "targets": [h.name for h in plan.hosts],
                **(extra or {}),
            },
        )
    book = plan.runbook
    return Event(
        EventType.RUN_STARTED,
        options.run_id,
        data={
            "runbook": book.name,
            "runbook_path": os.path.abspath(book.path),  # resume works from any directory
            "runbook_sha256": book.sha256,
            "params": plan.params.masked(),
            "inventory": os.path.abspath(plan.inventory.path),  # likewise
            "inventory_sha256": plan.inventory.sha256,
            "hosts": journaled_hosts(plan),
            "targets": [h.name for h in plan.hosts],
            "target_pattern": plan.targets,
            "command_line": plan.redactor.text(options.command_line),
            "drp_version": __version__,
            "python": sys.version.split()[0],
            "dry_run": False,
            **(extra or {}),
        },
    )


class Executor:
    """Runs a plan once; create one per run (or resume)."""

    def __init__(
        self,
        plan: Plan,
        options: RunOptions,
        *,
        emit: Sink,
        operator: Operator,
        transports: TransportFactory,
        local: Transport,
        resume: dict[str, HostResume] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.shared = Shared(plan, options, emit, operator, local)
        self.factory = transports
        self.resume = resume or {}
        self.open: dict[str, Transport] = {}
        self.lock = threading.Lock()
        # a request to stop as Ctrl-C does: set by the signal handlers, or by whoever else
        # holds it (the CLI, when the reader of the output goes away); the main thread acts
        self.stop = stop if stop is not None else threading.Event()

    def execute(
        self, *, resumed: bool = False, extra: dict[str, object] | None = None
    ) -> RunResult:
        with self._signals_request_a_stop():
            return self._execute(resumed, extra)

    def _execute(self, resumed: bool, extra: dict[str, object] | None) -> RunResult:
        plan, options = self.shared.plan, self.shared.options
        self.shared.emit(start_event(plan, options, resumed=resumed, extra=extra))
        statuses: dict[str, HostStatus] = {}
        serial = options.serial if options.serial is not None else plan.runbook.serial
        max_fail = (
            options.max_fail_percentage
            if options.max_fail_percentage is not None
            else plan.runbook.max_fail_percentage
        )
        try:
            for batch in batches(plan.hosts, serial):
                self._stop_if_asked()
                if self.shared.halt.is_set() or self.shared.cancel.is_set():
                    statuses.update({h.name: HostStatus.NOT_RUN for h in batch})
                    continue
                self._run_batch(batch, statuses, max_fail, serial is not None)
        finally:
            for transport in self.open.values():
                transport.close()
        status = run_status(statuses)
        stopped = self.shared.cancel.is_set() and HostStatus.NOT_RUN in statuses.values()
        if status is RunStatus.OK and stopped:  # Ctrl-C before some host began: not done
            status = RunStatus.INTERRUPTED
        self.shared.emit(
            Event(
                EventType.RUN_FINISHED,
                options.run_id,
                outcome=status.value,
                data={"hosts": {h: s.value for h, s in statuses.items()}},
            )
        )
        return RunResult(options.run_id, status, statuses)

    def _run_batch(
        self,
        batch: list[Host],
        statuses: dict[str, HostStatus],
        max_fail: float | None,
        rolling: bool,
    ) -> None:
        pool = ThreadPoolExecutor(
            max_workers=max(1, min(self.shared.options.forks, len(batch))),
            thread_name_prefix="drp-host",
        )
        futures: dict[Future[HostStatus], str] = {}
        failed = 0
        try:
            for host in batch:
                futures[pool.submit(self._host, host)] = host.name
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                self._stop_if_asked()
                for future in done:
                    statuses[futures[future]] = future.result()
                    failed += statuses[futures[future]] in FAILED_STATES
                    if _exceeded(failed, len(batch), max_fail, rolling):
                        self.shared.halt.set()
        except KeyboardInterrupt:  # Ctrl-C seen as an exception: not run from the main thread
            self.interrupt()
            for future, name in futures.items():
                statuses[name] = future.result()
            for host in batch:
                statuses.setdefault(host.name, HostStatus.NOT_RUN)
        finally:
            pool.shutdown(wait=True)

    def _host(self, host: Host) -> HostStatus:
        if self.shared.cancel.is_set():
            return HostStatus.NOT_RUN
        transport = self.factory(host)
        with self.lock:
            self.open[host.name] = transport
        return HostRun(self.shared, host, transport, self.resume.get(host.name)).execute()

    @contextlib.contextmanager
    def _signals_request_a_stop(self) -> Iterator[None]:
        """While the run lasts, Ctrl-C, SIGTERM and SIGHUP ask it to stop as Ctrl-C does.

        Python would raise KeyboardInterrupt for the first and end the process at
        once for the others (``timeout``, ``systemctl stop``, a CI job cancelled, the
        operator's terminal or SSH session gone), leaving the commands it started
        running on the hosts. An exception could land anywhere in the main thread
        (inside ``submit()``, half-way through a journal write); the request is acted
        on where the main thread waits, within 0.2 s. A second signal changes nothing:
        the hosts are stopping already. Only the main thread can set handlers, and a
        signal someone else handles or ignores (``nohup`` ignores SIGHUP) is left so.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        taken = {}
        for signum, default in _STOP_SIGNALS.items():
            if signal.getsignal(signum) is default:
                taken[signum] = signal.signal(signum, lambda signum, frame: self.stop.set())
        try:
            yield
        finally:
            for signum, previous in taken.items():
                signal.signal(signum, previous)

    def _stop_if_asked(self) -> None:
        if self.stop.is_set() and not self.shared.cancel.is_set():
            self.interrupt()

    def interrupt(self) -> None:
        """Ctrl-C: stop every host at once and kill what drp started on them.

        A question open at the terminal is withdrawn first (it runs in a worker
        thread, which Ctrl-C never reaches), so no host waits for an answer.
        """
        self.shared.cancel.set()
        if isinstance(self.shared.operator, Interruptible):
            self.shared.operator.interrupt()
        with self.lock:
            transports = list(self.open.values())
        for transport in [*transports, self.shared.local]:
            transport.cancel()


#: The signals that stop a run as Ctrl-C does, with the handler each has by default.
_STOP_SIGNALS = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGTERM: signal.SIG_DFL,
    signal.SIGHUP: signal.SIG_DFL,
}


def _exceeded(failed: int, total: int, max_fail: float | None, rolling: bool) -> bool:
    if max_fail is None:
        return rolling and failed == total  # a rolling batch that failed whole stops the rollout
    return failed * 100.0 / total > max_fail
