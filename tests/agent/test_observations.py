"""A reply that writes an observation line is counted; the environment's own observations never are."""

from __future__ import annotations

import pytest

from slm_swap.prompts import agent_observation
from slm_swap.tracks.agent.episodes.observations import writes_observation, written_observations
from slm_swap.tracks.agent.episodes.trajectory import StepRecord, Trajectory, TurnRecord


@pytest.mark.parametrize(
    ("reply", "writes"),
    [
        ('<tool_call name="ls">{}</tool_call>', False),  # an action alone
        ("The observation said: two files.", False),  # talks about an observation, does not write one
        ('<tool_call name="ls">{}</tool_call>\nObservation:\n["a.txt"]', True),  # invents the tool's answer
        ("```python\nls()\n```\n  Observation: done", True),  # indented still counts
    ],
)
def test_a_reply_writes_an_observation_only_with_the_marker_line(reply: str, writes: bool) -> None:
    assert writes_observation(reply) is writes


def test_the_environments_observation_starts_with_the_marker() -> None:
    # the marker is read from the same prompt text the episode runner writes observations with
    assert writes_observation(agent_observation(["[1]"], "", None, None, ""))


def test_rate_over_every_step_of_a_run() -> None:
    def trajectory(task: str, replies: list[str]) -> Trajectory:
        steps = [StepRecord(i, text, None) for i, text in enumerate(replies)]
        return Trajectory(task, "multi_turn_base", "toolcall", turns=[TurnRecord(0, "do it", steps)])

    runs = [trajectory("a", ["x", "y\nObservation: z"]), trajectory("b", ["x", "y", "w"])]
    assert written_observations(runs) == {"steps": 5, "steps_writing_observations": 1, "rate": 0.2, "tasks": ["a"]}
    assert written_observations([])["rate"] == 0.0
