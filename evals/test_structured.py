"""Track A, structured output: one case per dataset row; passes on an exact canonical match."""

import pytest

from slm_swap.harness.explain import explain_failure
from slm_swap.tracks.rows.definitions import STRUCTURED

TRACK = STRUCTURED.name


def test_structured(row, answer, record_result):
    result = STRUCTURED.score(answer.text, row.completion)
    record_result(result)
    if not result.passed:
        pytest.fail(explain_failure(row, answer, result), pytrace=False)
