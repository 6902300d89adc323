"""Track B, tool calling: one case per dataset row; passes when valid, right name and exact arguments."""

import pytest

from slm_swap.harness.explain import explain_failure
from slm_swap.tracks.rows.definitions import TOOLCALL

TRACK = TOOLCALL.name


def test_toolcall(row, answer, record_result):
    result = TOOLCALL.score(answer.text, row.completion)
    record_result(result)
    if not result.passed:
        pytest.fail(explain_failure(row, answer, result), pytrace=False)
