"""What the engine learns about each function's imports, for the zygote to preload.

A child reports the modules its task imported that it did not have (a LEARNED frame);
the next fork request for the same function asks the zygote to import them first, so
the child after that starts with them loaded (numpy: 100-200 ms a child, saved). Kept
per function (by ``module.qualname``), bounded, the least recently used forgotten.
The zygote decides what is safe to import (``isolator._child.preload``).
"""

from __future__ import annotations

from collections import OrderedDict

MAX_FUNCTIONS = 512
MAX_PER_FUNCTION = 256


class Learning:
    """Modules by function; engine thread only."""

    def __init__(self) -> None:
        self._by_function: OrderedDict[str, dict[str, None]] = OrderedDict()

    def learn(self, function: str, modules: list[str]) -> None:
        known = self._by_function.setdefault(function, {})
        self._by_function.move_to_end(function)
        for module in modules:
            if len(known) >= MAX_PER_FUNCTION:
                break
            known[module] = None
        while len(self._by_function) > MAX_FUNCTIONS:
            self._by_function.popitem(last=False)

    def modules_for(self, function: str) -> tuple[str, ...]:
        known = self._by_function.get(function)
        return tuple(known) if known else ()
