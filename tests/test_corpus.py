"""The leak corpus, each case three times: the report names the holder the user wrote,
its retained size, and nothing of isolator's own (see ``_corpus``)."""

from __future__ import annotations

from pathlib import Path

import _corpus
import pytest


@pytest.mark.timeout(150)
@pytest.mark.parametrize("attempt", [1, 2, 3])
@pytest.mark.parametrize("scenario", [case.scenario for case in _corpus.CASES])
def test_the_report_names_the_holder(scenario: str, attempt: int, tmp_path: Path) -> None:
    case = _corpus.BY_NAME[scenario]
    report = _corpus.run_case(case, str(tmp_path))
    assert _corpus.problems(case, report) == [], str(report)
