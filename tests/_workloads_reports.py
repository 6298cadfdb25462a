"""Functions that test_reports.py runs in isolated children (importable by name)."""

from __future__ import annotations

from isolator import isolated

MiB = 1024 * 1024
CAP_MIB = 64

# Module-level, like a real leak: state that outlives the call that filled it.
_CACHE: list[bytearray] = []


@isolated(max_mem=f"{CAP_MIB}MB")
def leak_past_the_cap() -> int:
    """Append touched 1 MiB chunks; gives up at 8x the cap so a broken cap cannot eat the host."""
    while len(_CACHE) < 8 * CAP_MIB:
        _CACHE.append(bytearray(b"\x01") * MiB)
    return len(_CACHE)
