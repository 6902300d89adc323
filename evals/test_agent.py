"""The agent track: one case per BFCL multi-turn task, run as an episode; passes when BFCL's checker accepts every turn."""

import pytest

from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.episodes.scoring import score_trajectory
from slm_swap.tracks.agent.run.explain import explain_task_failure

TRACK = AGENT.name


def test_agent(task, trajectory, record_task):
    result = score_trajectory(task, trajectory)
    record_task(result)
    if not result.passed:
        pytest.fail(explain_task_failure(task, trajectory, result), pytrace=False)
