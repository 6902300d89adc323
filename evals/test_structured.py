"""Track A, structured output: one case per dataset row; passes on an exact canonical match."""

import pytest

from slm_swap.harness.explain import explain_failure
from slm_swap.scoring.scorers import score_structured

TRACK = "structured"


def test_structured(row, answer, record_result):
    result = score_structured(answer.text, row.completion)
    record_result(result)
    if not result.passed:
        pytest.fail(explain_failure(row, answer, result), pytrace=False)
