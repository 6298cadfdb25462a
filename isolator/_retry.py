"""Retries: tenacity's strategies decide, isolator supplies the conditions and escalation.

``retry``, ``stop`` and ``wait`` are tenacity strategies, used as tenacity uses them:
each one is called with a ``tenacity.RetryCallState`` after a failed attempt. isolator
adds conditions about how a child ended and ``escalate_memory``, which gives the next
attempt a larger cap. A policy is normalised once, where the user gives it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tenacity

from ._errors import ConfigurationError, MemoryLimitExceeded, WorkerLost
from ._options import Limits, default_soft_limit
from ._units import parse_size


class retry_if_memory_exceeded(tenacity.retry_if_exception_type):
    """Retry when the attempt ended in ``MemoryLimitExceeded`` (any layer)."""

    def __init__(self) -> None:
        super().__init__(MemoryLimitExceeded)


class retry_if_worker_lost(tenacity.retry_if_exception_type):
    """Retry when the child died without a result (a memory breach is one such death)."""

    def __init__(self) -> None:
        super().__init__(WorkerLost)


@dataclass(frozen=True)
class escalate_memory:
    """Give each retry after a memory breach a larger cap:
    ``min(ceiling, max(factor * cap, 1.25 * observed peak))``."""

    factor: float = 2.0
    ceiling: int | str | None = "8GB"  # None: no ceiling

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, float)) \
                or self.factor < 1:
            raise ConfigurationError(f"escalate_memory(factor={self.factor!r}): must be >= 1")
        if self.ceiling is not None:
            object.__setattr__(self, "ceiling", parse_size(self.ceiling, name="ceiling"))

    def next_cap(self, cap: int, peak: int) -> int:
        grown = max(int(self.factor * cap), int(1.25 * peak))
        return grown if self.ceiling is None else min(grown, int(self.ceiling))


@dataclass(frozen=True)
class RetryPolicy:
    """The normalised retry options of a function or a pool."""

    retry: Any
    stop: Any
    wait: Any
    escalate: escalate_memory | None

    def new_state(self) -> tenacity.RetryCallState:
        retrying = tenacity.Retrying(stop=self.stop, wait=self.wait, retry=self.retry)
        return tenacity.RetryCallState(retrying, None, (), {})

    def after_failure(self, state: tenacity.RetryCallState, exc: BaseException,
                      limits: Limits) -> tuple[float, Limits] | None:
        """None to give up, else the delay before the next attempt and its limits."""
        state.set_exception((type(exc), exc, exc.__traceback__))
        if not self.retry(state) or self.stop(state):
            return None
        delay = float(self.wait(state))
        state.prepare_for_next_attempt()
        return delay, self._escalated(limits, exc)

    def _escalated(self, limits: Limits, exc: BaseException) -> Limits:
        if self.escalate is None or limits.max_mem is None or \
                not isinstance(exc, MemoryLimitExceeded):
            return limits
        cap = self.escalate.next_cap(limits.max_mem, exc.peak)
        return dataclasses.replace(limits, max_mem=cap, soft_mem=default_soft_limit(cap))


def make_retry_policy(retry: Any = None, stop: Any = None, wait: Any = None,
                      escalate: escalate_memory | None = None) -> RetryPolicy | None:
    """None when nothing asks for retries; escalation alone implies retrying breaches."""
    if retry is None and escalate is None:
        if stop is not None or wait is not None:
            raise ConfigurationError("stop= and wait= need retry= (or escalate=)")
        return None
    for name, value in (("retry", retry), ("stop", stop), ("wait", wait)):
        if value is not None and not callable(value):
            raise ConfigurationError(f"{name}={value!r} is not a tenacity strategy")
    if escalate is not None and not isinstance(escalate, escalate_memory):
        raise ConfigurationError(f"escalate={escalate!r}; expected escalate_memory(...)")
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
