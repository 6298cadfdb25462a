"""The opt-in cap layers: RLIMIT_DATA and the kernel memory cgroup."""

from __future__ import annotations

import _workloads as w
import pytest

from isolator import ConfigurationError, MemoryLimitExceeded, isolated
from isolator._engine.cgroups.manager import CgroupManager


def _has_cgroup() -> bool:
    manager = CgroupManager.detect()
    if manager is None:
        return False
    manager.close()
    return True


HAS_CGROUP = _has_cgroup()


@pytest.mark.timeout(60)
def test_rlimit_data_refuses_a_big_allocation_before_touching_it() -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem="128MiB", rlimit_data=True)(w.grow_numpy)(128)
    assert info.value.kind == "rlimit"
    assert info.value.peak < 128 * w.MiB  # refused up front: nothing was touched


@pytest.mark.timeout(60)
@pytest.mark.skipif(not HAS_CGROUP, reason="no writable memory cgroup on this machine")
def test_cgroup_catches_what_no_process_rss_shows_and_names_the_kernel() -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem="64MiB", cgroup=True)(w.fill_tmpfs)(64)
    assert info.value.kind == "kernel-oom"
    assert info.value.signal == "SIGKILL"


@pytest.mark.timeout(60)
@pytest.mark.skipif(not HAS_CGROUP, reason="no writable memory cgroup on this machine")
def test_cgroup_slots_are_reused_and_calls_still_succeed() -> None:
    call = isolated(max_mem="64MiB", cgroup="auto")(w.use_a_little)
    assert [call(4) for _ in range(3)] == [4 * w.MiB] * 3


@pytest.mark.skipif(HAS_CGROUP, reason="this machine has a writable memory cgroup")
def test_cgroup_true_without_a_cgroup_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        isolated(max_mem="64MiB", cgroup=True)(w.echo)(1)
