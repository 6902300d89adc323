"""The agent track: one case per BFCL multi-turn task, run as an episode; passes when BFCL's checker accepts every turn."""

import pytest

from slm_swap.agent.scoring import score_trajectory
from slm_swap.harness.explain import explain_task_failure
from slm_swap.tracks import AGENT

TRACK = AGENT.name


def test_agent(task, trajectory, record_task):
    result = score_trajectory(task, trajectory)
    record_task(result)
    if not result.passed:
        pytest.fail(explain_task_failure(task, trajectory, result), pytrace=False)
