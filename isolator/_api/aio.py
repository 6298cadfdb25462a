"""``await isolated_fn.aio(...)``: one isolated call from asyncio code.

The engine's future is wrapped with ``asyncio.wrap_future``, so the event loop goes on
while the child runs and the outcome arrives on the loop's thread. A cancelled await
is not left running behind the caller's back, as it would be with ``run_in_executor``
(a running ``concurrent.futures`` task cannot be cancelled): its child is killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .._model.settings import CallSettings
from .._model.values import Limits, Reporting
from .decorator import function_name, task_payload, warm_modules


async def run_isolated_async(fn: Callable[..., Any], args: tuple[Any, ...],
                             kwargs: dict[str, Any], settings: CallSettings) -> Any:
    """``run_isolated``, awaited: the retries' waits are ``asyncio.sleep``s."""
    payload = task_payload(fn, args, kwargs, getattr(fn, "by_value_cache", None))
    warm = warm_modules(fn, args, payload, settings.preload)
    name = function_name(fn)
    if settings.retry is None:
        return await _run_once(payload, settings.limits, settings.reporting, warm, name,
                               settings.learn)
    from .._model.retry import Attempts

    attempts = Attempts(settings.retry, settings.limits)
    while True:
        try:
            return await _run_once(payload, attempts.limits, settings.reporting, warm, name,
                                   settings.learn)
        except Exception as exc:
            delay = attempts.failed(exc)
            if delay is None:
                raise
            if delay > 0:
                await asyncio.sleep(delay)


async def _run_once(payload: bytes, limits: Limits, reporting: Reporting,
                    warm: tuple[str, ...], name: str, learn: bool) -> Any:
    from .._engine.engine import get_engine

    engine = get_engine()
    future = engine.submit(payload, limits, reporting, warm, name, learn)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        engine.cancel(future)  # SIGTERM, kill_grace, SIGKILL: the engine does not wait here
        raise
