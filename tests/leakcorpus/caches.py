"""Leaks in the user's own caches and objects: defaults, decorators, classes, frames."""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ._data import Tally, footprint, line, records

TALLY = Tally()

# -- a mutable default argument used as a "seen" memo -----------------------------------


def normalize(row: dict[str, Any], _seen: dict[int, dict[str, Any]] = {}) -> dict[str, Any]:
    clean = {key: value.strip() if isinstance(value, str) else value
             for key, value in row.items()}
    _seen[row["id"]] = clean  # to skip duplicates; never emptied
    return clean


def function_default() -> None:
    for row in records():
        clean = normalize(row)
        TALLY.add("function_default", footprint(clean))


# -- lru_cache on a method: the cache keeps every result (and self) ---------------------


class Geocoder:
    def __init__(self, region: str) -> None:
        self.region = region

    @functools.cache
    def lookup(self, address: str) -> dict[str, Any]:
        return {"address": address, "lat": len(address) * 0.1, "lon": len(address) * 0.2,
                "label": f"{address} ({self.region}) " + "·" * 40}


def lru_cache_method() -> None:
    coder = Geocoder("eu-west")
    for row in records():
        place = coder.lookup(f"{row['city']} {row['id']}")
        TALLY.add("lru_cache_method", footprint(place) + 72 + footprint(place["address"]))


# -- a memoizing decorator: its cache is a closure cell ---------------------------------


def memoize(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    cache: dict[str, Any] = {}

    @functools.wraps(fn)
    def wrapper(key: str) -> Any:
        if key not in cache:
            cache[key] = fn(key)
        return cache[key]

    return wrapper


@memoize
def parse_address(text: str) -> dict[str, Any]:
    street, _, city = text.partition(",")
    return {"street": street.strip(), "city": city.strip(), "raw": text}


def closure_memo() -> None:
    for row in records():
        text = f"{row['id']} Main Street, {row['city']}"
        parsed = parse_address(text)
        TALLY.add("closure_memo", footprint(parsed) - sys.getsizeof(text) + footprint(text))


# -- every instance registers itself in a class attribute -------------------------------


class Record:
    _instances: list[Record] = []  # noqa: RUF012 - "for debugging"

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.valid = bool(row["email"])
        Record._instances.append(self)


def class_registry() -> None:
    for row in records():
        Record(row)
        # the instance, its two attribute slots (kept inline on 3.11) and the row
        TALLY.add("class_registry", sys.getsizeof(Record._instances[-1]) + 16 + footprint(row))


# -- a dict of partitions, each a dict of encoded rows: hundreds of 1 MiB dicts ---------

_PARTITIONS: dict[str, dict[int, bytes]] = {}


def dict_of_dicts() -> None:
    source = records()
    for day in itertools.count():
        partition = _PARTITIONS.setdefault(f"2026-{day // 28 + 1:02d}-{day % 28 + 1:02d}", {})
        for row in itertools.islice(source, 4000):
            partition[row["id"]] = line(row).encode() * 2
            TALLY.add("dict_of_dicts", sys.getsizeof(partition[row["id"]])
                      + sys.getsizeof(row["id"]))


# -- rows staged for a bulk insert that is never flushed: many small dicts ----------------

_STAGED: list[dict[str, Any]] = []


def staged_rows() -> None:
    for row in records():
        _STAGED.append(row)
        TALLY.add("staged_rows", footprint(row))


# -- failures kept per file: each traceback keeps the frame and its raw bytes ------------

_ERRORS_BY_FILE: dict[str, BaseException] = {}


def _parse(path: str, raw: bytes) -> list[str]:
    if raw[:1] != b"{":
        raise ValueError(f"{path}: not JSON")
    return []


def kept_tracebacks() -> None:
    for n in itertools.count():
        path = f"/data/in/part-{n:05d}.json"
        raw = b"id,name\n" + b"x" * 256 * 1024  # a CSV where JSON was expected
        try:
            _parse(path, raw)
        except ValueError as exc:
            _ERRORS_BY_FILE[path] = exc  # reported at the end of the run
            TALLY.add("kept_tracebacks", sys.getsizeof(raw))
        del raw


# -- generators started for every input and never finished: each holds its read-ahead ----

_READERS: dict[str, Iterator[list[str]]] = {}


def read_chunks(path: str, start: int) -> Iterator[list[str]]:
    buffer = [line(row) for row in itertools.islice(records(start), 600)]  # read ahead
    TALLY.add("suspended_generators", footprint(buffer))
    while buffer:
        yield buffer[:100]
        del buffer[:100]


def suspended_generators() -> None:
    for n in itertools.count():
        path = f"/data/in/part-{n:05d}.csv"
        reader = read_chunks(path, n * 600)
        first = next(reader)  # peek at the header chunk, the rest "later"
        _READERS[path] = reader
        del first


def held(name: str) -> int:
    """What the scenario ``name`` holds now, in bytes."""
    if name == "function_default":
        return TALLY.get(name) + sys.getsizeof(normalize.__defaults__[0])  # type: ignore[index]
    if name == "lru_cache_method":
        return TALLY.get(name)
    if name == "closure_memo":
        cache = parse_address.__closure__[0].cell_contents  # type: ignore[index]
        return TALLY.get(name) + sys.getsizeof(cache)
    if name == "class_registry":
        return TALLY.get(name) + sys.getsizeof(Record._instances)
    if name == "dict_of_dicts":
        return TALLY.get(name) + sum(map(sys.getsizeof, _PARTITIONS.values()))
    if name == "staged_rows":
        return TALLY.get(name) + sys.getsizeof(_STAGED)
    if name == "kept_tracebacks":
        return TALLY.get(name)
    if name == "suspended_generators":
        return TALLY.get(name)
    raise KeyError(name)
