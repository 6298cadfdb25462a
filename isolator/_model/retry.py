"""Retries: tenacity's strategies decide, isolator supplies the conditions and escalation.

``retry``, ``stop`` and ``wait`` are tenacity strategies, used as tenacity uses them:
each one is called with a ``tenacity.RetryCallState`` after a failed attempt. isolator
adds conditions about how a child ended and ``escalate_memory`` (``escalation``), which
gives the next attempt a larger cap. A policy is normalised once, where the user gives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import tenacity

from .._errors import ConfigurationError, MemoryLimitExceeded, WorkerLost
from .escalation import escalate_memory
from .values import Limits


class retry_if_memory_exceeded(tenacity.retry_if_exception_type):
    """Retry when the attempt ended in ``MemoryLimitExceeded`` (any layer)."""

    def __init__(self) -> None:
        super().__init__(MemoryLimitExceeded)


class retry_if_worker_lost(tenacity.retry_if_exception_type):
    """Retry when the child died without a result (a memory breach is one such death)."""

    def __init__(self) -> None:
        super().__init__(WorkerLost)


class Decision(NamedTuple):
    """Run the unit again after ``delay`` seconds, under ``limits``."""

    delay: float
    limits: Limits


class RetryPolicy(NamedTuple):
    """The normalised retry options of a function or a pool."""

    retry: Any
    stop: Any
    wait: Any
    escalate: escalate_memory | None

    def new_state(self) -> tenacity.RetryCallState:
        retrying = tenacity.Retrying(stop=self.stop, wait=self.wait, retry=self.retry)
        return tenacity.RetryCallState(retrying, None, (), {})

    def after_failure(self, state: tenacity.RetryCallState, exc: BaseException,
                      limits: Limits) -> Decision | None:
        """None to give up, else when and under which limits the next attempt runs."""
        state.set_exception((type(exc), exc, exc.__traceback__))
        if not self.retry(state) or self.stop(state):
            return None
        delay = float(self.wait(state))
        state.prepare_for_next_attempt()
        return Decision(delay, self._escalated(limits, exc))

    def _escalated(self, limits: Limits, exc: BaseException) -> Limits:
        if self.escalate is None or limits.max_mem is None or \
                not isinstance(exc, MemoryLimitExceeded):
            return limits
        return limits.with_cap(self.escalate.next_cap(limits.max_mem, exc.peak))


def make_retry_policy(retry: Any = None, stop: Any = None, wait: Any = None,
                      escalate: escalate_memory | None = None) -> RetryPolicy | None:
    """None when nothing asks for retries; escalation alone implies retrying breaches."""
    if retry is None and escalate is None:
        if stop is not None or wait is not None:
            raise ConfigurationError("stop= and wait= need retry= (or escalate=)")
        return None
    return RetryPolicy(
        retry=retry or retry_if_memory_exceeded(),
        stop=stop or tenacity.stop_after_attempt(3),
        wait=wait or tenacity.wait_none(),
        escalate=escalate,
    )


def record_attempts(final: BaseException, earlier: Sequence[BaseException]) -> BaseException:
    """The caller sees the last real error; ``attempts`` holds every attempt's error."""
    try:
        final.attempts = [*earlier, final]  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__: nothing to attach to
        pass
    return final


class Attempts:
    """One call's attempts under a policy: the limits the next one runs under, and the
    errors so far. The loop that runs them (blocking or awaited) only waits."""

    def __init__(self, policy: RetryPolicy, limits: Limits) -> None:
        self.limits = limits
        self._policy = policy
        self._state = policy.new_state()
        self._earlier: list[BaseException] = []

    def failed(self, exc: BaseException) -> float | None:
        """The seconds to wait before the next attempt, or None to give up: ``exc``, the
        last real error, then carries every attempt's error in ``attempts``."""
        decision = self._policy.after_failure(self._state, exc, self.limits)
        if decision is None:
            record_attempts(exc, self._earlier)
            return None
        self._earlier.append(exc)
        self.limits = decision.limits
        return decision.delay
