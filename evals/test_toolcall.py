"""Track B, tool calling: one case per dataset row; passes when valid, right name and exact arguments."""

import pytest

from slm_swap.harness.explain import explain_failure
from slm_swap.scoring.scorers import score_toolcall

TRACK = "toolcall"


def test_toolcall(row, answer, record_result):
    result = score_toolcall(answer.text, row.completion)
    record_result(result)
    if not result.passed:
        pytest.fail(explain_failure(row, answer, result), pytrace=False)
