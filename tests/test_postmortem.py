"""Every memory breach leaves a report: on the exception, on disk, and to the hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _workloads as w
import pytest

from isolator import IsolatedExecutor, MemoryLimitExceeded, isolated
from isolator.reports import Report, load

CAP = "64MiB"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fn", "options"),
    [
        (w.grow_python_objects, {}),
        (w.grow_numpy, {}),
        (w.grow_in_c_holding_gil, {}),
        (w.need_mib, {"rlimit_data": True}),
    ],
    ids=["python", "numpy", "c-holds-gil", "rlimit"],
)
def test_every_breach_has_a_written_report(tmp_path: Path, fn: Any,
                                           options: dict[str, Any]) -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem=CAP, report_dir=tmp_path, **options)(fn)(64)
    report = info.value.report
    assert isinstance(report, Report)
    assert report.kind == info.value.kind and report.limit == 64 * w.MiB
    assert report.function.endswith(fn.__name__)
    assert report.path is not None and Path(report.path).parent == tmp_path
    files = {p.name for p in Path(report.path).iterdir()}
    assert files - {"backrefs.dot"} == {"report.json", "report.txt", "report.html"}
    assert ("backrefs.dot" in files) == ("backrefs" in report.sections.get("heap", {}))
    assert load(report.path).to_dict() == report.to_dict()
    if info.value.kind in ("hard", "kernel-oom"):
        assert "heap" in report.missing  # the child could not walk its heap: say why
    else:
        assert "heap" in report.sections  # it could, and did


@pytest.mark.timeout(60)
def test_report_dir_none_keeps_it_in_memory_and_the_hook_gets_it(tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    seen: list[Report] = []
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem=CAP, report_dir=None, on_report=seen.append)(w.grow_numpy)(64)
    assert seen == [info.value.report]
    assert info.value.report.path is None
    assert not list(tmp_path.iterdir())


@pytest.mark.timeout(60)
def test_a_failing_hook_does_not_hide_the_breach(tmp_path: Path) -> None:
    def broken(report: Report) -> None:
        raise RuntimeError("monitoring is down")

    with pytest.raises(MemoryLimitExceeded):
        isolated(max_mem=CAP, report_dir=tmp_path, on_report=broken)(w.grow_numpy)(64)


@pytest.mark.timeout(60)
def test_pool_breaches_have_reports(tmp_path: Path) -> None:
    with IsolatedExecutor(2, max_mem=CAP, report_dir=tmp_path) as ex:
        future = ex.submit(w.grow_numpy, 64)
        exc = future.exception(timeout=60)
    assert isinstance(exc, MemoryLimitExceeded) and isinstance(exc.report, Report)
    assert exc.report.function.endswith("grow_numpy")
    assert exc.report.path is not None


@pytest.mark.timeout(60)
def test_the_report_names_who_keeps_the_memory_alive() -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem=CAP, report_dir=None)(w.leak_into_module_cache)(64, "row")
    report = info.value.report
    if info.value.kind != "soft":
        pytest.skip("the hard cap acted first: no heap walk to check this time")
    text = str(report)
    assert "_workloads._CACHE" in text
    assert "who keeps it alive" in text and "bytearray" in text
    assert "_workloads._CACHE" in report.to_html()


@pytest.mark.timeout(60)
def test_types_level_records_no_values_from_the_data() -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem=CAP, report_dir=None, forensics="types")(
            w.leak_into_module_cache)(64, "SECRET-VALUE-123")
    if info.value.kind != "soft":
        pytest.skip("the hard cap acted first: no heap walk to check this time")
    import json

    heap = json.dumps(info.value.report.sections["heap"])
    assert "SECRET-VALUE-123" not in heap
    assert "_workloads._CACHE" in heap


@pytest.mark.timeout(60)
def test_forensics_off_sends_no_heap() -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem=CAP, report_dir=None, forensics="off")(w.grow_python_objects)(64)
    assert "heap" not in info.value.report.sections


@pytest.mark.timeout(90)
def test_deep_level_names_allocation_sites_even_after_sigkill() -> None:
    pytest.importorskip("memray")
    # One C call past the cap: the soft signal cannot be handled, the tree is SIGKILLed,
    # and the sites still come from the capture the child left behind.
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem=CAP, report_dir=None, forensics="deep")(w.hoard)(256)
    report = info.value.report
    assert info.value.kind in ("hard", "soft")
    sites = report.sections["native"]["high_water_mark"]
    assert any("hoard (_workloads.py" in frame for site in sites for frame in site["stack"])
    assert "where it was allocated" in str(report)
    page = report.to_html()
    assert 'class="flame"' in page and "hoard (_workloads.py" in page  # offline icicle chart
    import re

    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing fetched
    if info.value.kind == "hard":
        assert "heap" in report.missing


@pytest.mark.timeout(120)
@pytest.mark.parametrize("task, args", [(w.hoard, (256,)), (w.grow_python_objects, (64,))])
def test_deep_level_tracks_each_task_of_a_reused_worker(task: Any, args: tuple[Any, ...]) -> None:
    pytest.importorskip("memray")
    with IsolatedExecutor(1, max_tasks_per_child=100, max_mem=CAP, report_dir=None,
                          forensics="deep") as ex:
        pid = ex.submit(w.my_pid).result()
        assert [ex.submit(w.my_pid).result() for _ in range(2)] == [pid, pid]  # reused
        failed = ex.submit(task, *args)
        assert ex.submit(w.square, 3).result() == 9  # the next task runs (elsewhere)
    error = failed.exception()
    assert isinstance(error, MemoryLimitExceeded)
    sites = error.report.sections["native"]["high_water_mark"]
    name = f"{task.__name__} (_workloads.py"
    assert any(name in frame for site in sites for frame in site["stack"])
    # The tracked tasks before it are not in its capture: each task has its own.
    assert not any("my_pid" in frame for site in sites for frame in site["stack"])


@pytest.mark.timeout(60)
def test_a_breach_inside_one_c_call_still_leaves_a_report(tmp_path: Path) -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem=CAP, report_dir=tmp_path)(w.one_big_c_call)(256)
    assert info.value.kind == "hard" and info.value.signal == "SIGKILL"
    report = info.value.report
    assert report.path is not None and "heap" in report.missing and report.timeline


@pytest.mark.timeout(60)
def test_rlimit_data_counts_from_the_childs_start_as_the_cap_does() -> None:
    # A zygote holding numpy hands every child ~90 MiB of data segment that BLAS reserved
    # and never touched: counted from zero, a 64 MiB RLIMIT_DATA refused even the task's
    # unpickling. Counted from the child's start, the task has its 64 MiB.
    pytest.importorskip("numpy")
    call = isolated(max_mem="64MiB", rlimit_data=True, preload=["numpy"], report_dir=None)
    assert call(w.need_mib)(40) == 40
    with pytest.raises(MemoryLimitExceeded) as info:
        call(w.need_mib)(96)
    assert info.value.kind == "rlimit"
