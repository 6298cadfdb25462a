"""Memory escalation: each retry after a breach gets a larger cap.

Kept apart from the retry machinery (``retry``, which needs tenacity) so that a user's
module that only names ``escalate_memory`` does not load tenacity into the zygote.
"""

from __future__ import annotations

from typing import Any

from .._errors import ConfigurationError
from .._units import parse_size


class escalate_memory:
    """Give each retry after a memory breach a larger cap:
    ``min(ceiling, max(factor * cap, 1.25 * observed peak))``; ``ceiling=None``: none."""

    __slots__ = ("ceiling", "factor")
    factor: float
    ceiling: int | None

    def __init__(self, factor: float = 2.0, ceiling: int | str | None = "8GB") -> None:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 1:
            raise ConfigurationError(f"escalate_memory(factor={factor!r}): must be >= 1")
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "ceiling",
                           None if ceiling is None else parse_size(ceiling, name="ceiling"))

    def next_cap(self, cap: int, peak: int) -> int:
        """The cap of the attempt after one that breached ``cap`` and peaked at ``peak``."""
        grown = max(int(self.factor * cap), int(1.25 * peak))
        return grown if self.ceiling is None else min(grown, self.ceiling)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("escalate_memory is frozen")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, escalate_memory) and \
            (self.factor, self.ceiling) == (other.factor, other.ceiling)

    def __hash__(self) -> int:
        return hash((self.factor, self.ceiling))

    def __repr__(self) -> str:
        return f"escalate_memory(factor={self.factor!r}, ceiling={self.ceiling!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (escalate_memory, (self.factor, self.ceiling))
