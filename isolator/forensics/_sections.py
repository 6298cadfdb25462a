"""Runs one collector per section of the document; a failure becomes a reason."""

from __future__ import annotations

import time
from typing import Any

from ._common import Budget, Skipped, error_text


class Sections:
    """Runs one collector per section; failures become reasons under ``missing``."""

    def __init__(self, result: dict[str, Any], budget: Budget, values: bool) -> None:
        self.result, self.budget, self.values = result, budget, values
        self.missing: dict[str, str] = result["missing"]

    def run(self, name: str, collector: Any, *args: Any, cheap: bool = False) -> Any:
        """Run ``collector(*args)`` as section ``name`` (``cheap`` ones run even when
        the budget is spent: they only format what was already gathered)."""
        if self.budget.expired() and not cheap:
            self.missing[name] = f"time budget of {self.budget.seconds:g} s exhausted before it"
            return None
        started = time.monotonic()
        try:
            value = collector(*args)
        except Skipped as exc:
            self.missing[name] = str(exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a report without one section beats none
            self.missing[name] = error_text(exc, self.values)
            return None
        if type(value) is dict:
            value["elapsed"] = round(time.monotonic() - started, 4)
            self.result[name] = value
        return value


def absent(sections: Sections, names: tuple[str, ...], why: str) -> None:
    """Sections that will not be made, and why (an earlier reason is kept)."""
    for name in names:
        sections.missing.setdefault(name, why)
