"""The terminal summary's line of rates: a rate over a zero denominator reads n/a, never 0.000."""

from __future__ import annotations

from pathlib import Path

from slm_swap.harness.summary import run_summary_lines
from slm_swap.tracks.agent.episodes.scoring import TaskResult
from slm_swap.tracks.agent.episodes.trajectory import Trajectory
from slm_swap.tracks.agent.run.records import TaskRecord, summarize_tasks


def test_a_rate_over_no_actions_is_na_in_the_summary() -> None:
    result = TaskResult("multi_turn_base_3", True, [True], actions=0, steps=1)  # answered without acting
    records = [TaskRecord(result, Trajectory("multi_turn_base_3", "multi_turn_base", "toolcall", ended="complete"))]
    document = {"track": "agent", "model": "slm", "arm": "toolcall", **summarize_tasks(records, {}), "model_description": {}}
    first = run_summary_lines(document, Path("agent_slm_toolcall.json"))[0]
    assert first == (
        "agent toolcall [slm] n=1 errors=0  task_success_rate=1.000 [0.206, 1.000]  "
        "turn_success_rate=1.000 [0.206, 1.000]  valid_action_rate=n/a"
    )
