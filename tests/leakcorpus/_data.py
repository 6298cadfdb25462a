"""Synthetic input records, and the ground truth of what a scenario keeps."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

_CITIES = ("Lyon", "Porto", "Gdansk", "Tampere", "Ghent", "Bergen", "Brno", "Cork")


def records(start: int = 0) -> Iterator[dict[str, Any]]:
    """Rows as a CSV or JSON reader yields them: every value a fresh object."""
    i = start
    while True:
        yield {
            "id": i * 7 + 100_003,
            "customer": f"customer-{i:08d}",
            "email": f"user{i}@example-{i % 97}.org",
            "city": _CITIES[i % len(_CITIES)] + f"-{i % 1000}",
            "amount": i * 0.37 + 0.5,
            "note": f"order {i} shipped from warehouse {i % 13} with {i % 7} parcels",
        }
        i += 1


def line(row: dict[str, Any]) -> str:
    """A row as the CSV line an export writes."""
    return (f"{row['id']},{row['customer']},{row['email']},{row['city']},"
            f"{row['amount']:.2f},{row['note']}\n")


def footprint(obj: object) -> int:
    """Bytes of ``obj`` and what it holds (dict values, sequence items), as
    ``sys.getsizeof`` counts them; dict keys are left out (literals shared by every
    row). Used on each item as a scenario keeps it: the scenario's own count."""
    size = sys.getsizeof(obj)
    if type(obj) is dict:
        size += sum(footprint(value) for value in obj.values())
    elif type(obj) in (list, tuple):
        size += sum(footprint(item) for item in obj)  # type: ignore[attr-defined]
    return size


class Tally:
    """What a scenario has kept so far, in bytes, by holder name."""

    def __init__(self) -> None:
        self.kept: dict[str, int] = {}

    def add(self, name: str, size: int) -> None:
        self.kept[name] = self.kept.get(name, 0) + size

    def get(self, name: str) -> int:
        return self.kept.get(name, 0)
