"""A corpus of leaks written the way ETL code leaks, for the heap forensics.

Each scenario is a function ``<module>.<name>()`` that processes an endless stream of
records and keeps something of each by mistake, until the isolated child it runs in
crosses its soft limit. :func:`run` is what a test isolates: it runs one scenario and,
when the breach arrives, notes on the exception how many bytes the scenario's holder
held at that moment (each scenario counts what it keeps as it keeps it: the ground
truth a report's retained size is checked against). The note travels in the report's
traceback text; nothing else about the scenario is shaped for the collector.
"""

from __future__ import annotations

import importlib

from isolator import MemoryLimitExceeded

NOTE = "corpus-held-bytes="


def run(name: str) -> None:
    """Run scenario ``module.function`` of this package until the memory cap stops it."""
    module_name, _, function = name.partition(".")
    module = importlib.import_module(f"{__name__}.{module_name}")
    try:
        getattr(module, function)()
    except MemoryLimitExceeded as exc:
        exc.add_note(f"{NOTE}{module.held(function)}")
        raise
