"""isolator as a joblib backend, scikit-learn included.

Each test runs its Parallel calls in a subprocess of its own: the backend preloads the
functions' modules (and with them joblib, numpy, scikit-learn) into the zygote, and the
session's zygote must stay small for the other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from isolator import ConfigurationError

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}"}

PRELUDE = """
import json, os, sys, threading, warnings
import joblib
from joblib import Parallel, delayed
import _joblib_tasks as t
from isolator.joblib import register
from isolator._engine.engine import get_engine

register()

def task_children():
    pid = get_engine().zygote_pid
    found = []
    for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
        try:
            if open(f"/proc/{child}/comm").read().strip() == "isolator-task":
                found.append(int(child))
        except OSError:
            pass
    return found

def overlapped(spans):
    return max(start for start, _ in spans) < min(end for _, end in spans)
"""


def run(body: str, timeout: float = 150) -> Any:
    """Run ``body`` after the prelude in a fresh interpreter; what it printed last, as
    JSON."""
    script = PRELUDE + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=str(TESTS))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.timeout(120)
def test_each_batch_runs_in_a_fresh_child_with_its_module_preloaded() -> None:
    facts = run("""
        with joblib.parallel_backend("isolator", max_mem="256MB", n_jobs=2):
            got = Parallel(batch_size=1)(delayed(t.where)(x) for x in range(6))
        print(json.dumps({"got": got, "zygote": get_engine().zygote_pid}))
    """)
    got = facts["got"]
    assert [item["x"] for item in got] == list(range(6))  # in order, as joblib returns
    assert len({item["pid"] for item in got}) == 6  # a fresh child for every batch
    assert {item["ppid"] for item in got} == {facts["zygote"]}
    # The zygote imported the function's module, though joblib sent BatchedCalls.
    assert all(item["preloaded"] for item in got)


@pytest.mark.timeout(120)
def test_a_breach_fails_the_call_with_its_report_and_kills_the_other_batches() -> None:
    facts = run("""
        from isolator import MemoryLimitExceeded
        calls = [delayed(t.sleep_then)(60), delayed(t.grow)(400)]
        try:
            with joblib.parallel_backend("isolator", max_mem="128MB", n_jobs=2):
                Parallel(batch_size=1)(calls)
        except MemoryLimitExceeded as exc:
            import time
            end = time.monotonic() + 5
            while task_children() and time.monotonic() < end:
                time.sleep(0.01)
            print(json.dumps({"kind": exc.kind, "report": exc.report is not None,
                              "limit": exc.limit, "left": task_children()}))
    """)
    assert facts["kind"] in {"soft", "hard"} and facts["report"]
    assert facts["limit"] == 128 * 1024 * 1024
    assert facts["left"] == []  # the sleeping batch's child was killed with the call


@pytest.mark.timeout(150)
def test_it_runs_in_parallel_in_a_thread_and_in_a_daemonic_process() -> None:
    # loky gives up (n_jobs=1, with a warning) in a daemonic process, such as a Dask
    # worker; isolator's children are forked by its zygote, so it need not.
    facts = run("""
        import multiprocessing

        def spans(backend):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with joblib.parallel_backend(backend, n_jobs=2):
                    got = Parallel(batch_size=1)(delayed(t.span)(1.0) for _ in range(2))
            return overlapped(got), [str(w.message) for w in caught]

        found = {}
        thread = threading.Thread(target=lambda: found.update(thread=spans("isolator")))
        thread.start()
        thread.join()

        def in_daemon(queue):
            queue.put({"isolator": spans("isolator"), "loky": spans("loky")})

        queue = multiprocessing.get_context("fork").Queue()
        daemon = multiprocessing.get_context("fork").Process(target=in_daemon,
                                                             args=(queue,), daemon=True)
        daemon.start()
        found.update(queue.get(timeout=120))
        daemon.join(30)
        print(json.dumps(found))
    """)
    assert facts["thread"][0] is True
    assert facts["isolator"] == [True, []]
    loky_overlapped, loky_warnings = facts["loky"]
    assert loky_overlapped is False
    assert any("n_jobs=1" in message for message in loky_warnings)


@pytest.mark.timeout(150)
def test_scikit_learns_cross_val_score_under_the_backend() -> None:
    facts = run("""
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_score

        X, y = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=500)
        with joblib.parallel_backend("isolator", max_mem="1GB"):
            isolated = cross_val_score(model, X, y, cv=4, n_jobs=2)
        alone = cross_val_score(model, X, y, cv=4, n_jobs=1)
        print(json.dumps({"isolated": list(isolated), "alone": list(alone)}))
    """)
    assert facts["isolated"] == facts["alone"]
    assert len(facts["isolated"]) == 4


def test_the_backends_options_are_checked_where_they_are_given() -> None:
    import joblib

    from isolator.joblib import IsolatorBackend, register

    register()
    with pytest.raises(ConfigurationError, match="max_mem"):
        IsolatorBackend(max_mem="a lot")
    with pytest.raises(ConfigurationError, match="no_such_option"):
        with joblib.parallel_backend("isolator", no_such_option=1):
            pass
    assert IsolatorBackend().effective_n_jobs(-1) == os.cpu_count()
