"""Retry policy as data, applied in one place: :class:`RetryPolicy` → tenacity.

Whether a failure is retried depends on its kind (connection loss, timeout,
non-zero exit, failed verification) and on what the policy names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_exponential_jitter,
)

from drp.errors import Cancelled, DrpError
from drp.results import CommandResult
from drp.runbook.model import RetryPolicy

FailureKind = Literal["connection", "timeout", "exit", "verify", "capture"]


class AttemptFailed(DrpError):
    """One attempt of a step failed; ``kind`` decides whether the policy retries it."""

    def __init__(
        self, kind: FailureKind, message: str, result: CommandResult | None = None
    ) -> None:
        self.kind = kind
        self.result = result
        super().__init__(message)


CONNECT_ATTEMPTS = 3


def connect_policy(defaults: RetryPolicy) -> RetryPolicy:
    """How to open a host's connection: no command has been sent, so retrying is always safe.

    The runbook's default policy when it retries connections at least
    ``CONNECT_ATTEMPTS`` times, else ``CONNECT_ATTEMPTS`` tries with backoff.
    """
    if "connection" in defaults.failures and defaults.attempts >= CONNECT_ATTEMPTS:
        return defaults
    return RetryPolicy(
        attempts=CONNECT_ATTEMPTS, delay=1.0, backoff=2.0, max_delay=10.0, failures=["connection"]
    )


def is_retryable(error: BaseException, policy: RetryPolicy) -> bool:
    """True when ``policy`` names the kind of ``error`` (or its exit code)."""
    if not isinstance(error, AttemptFailed):
        return False
    if error.kind in policy.failures:
        return True
    if error.kind == "exit" and error.result is not None:
        return error.result.exit_code in [f for f in policy.failures if isinstance(f, int)]
    return False


@dataclass(frozen=True)
class RetryHooks:
    """What the engine wants to hear between attempts, and how it sleeps (cancellably)."""

    before_sleep: Callable[[int, float, BaseException], None]
    cancel: threading.Event


def retrying(policy: RetryPolicy, hooks: RetryHooks) -> Retrying:
    """A tenacity ``Retrying`` that follows ``policy`` and stops sleeping on Ctrl-C."""
    wait: wait_exponential | wait_exponential_jitter
    if policy.jitter:
        wait = wait_exponential_jitter(
            multiplier=policy.delay,
            max=policy.max_delay,
            exp_base=policy.backoff,
            jitter=policy.delay,
        )
    else:
        wait = wait_exponential(
            multiplier=policy.delay, max=policy.max_delay, exp_base=policy.backoff, min=policy.delay
        )

    def sleep(seconds: float) -> None:
        if hooks.cancel.wait(seconds):
            raise Cancelled("interrupted while waiting to retry")

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        if error is not None:
            hooks.before_sleep(state.attempt_number, delay, error)

    return Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_exception(lambda e: is_retryable(e, policy)),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
