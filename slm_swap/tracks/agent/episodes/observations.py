"""Whether a model writes observations itself: the check that observation masking worked.

A model trained with loss on observation tokens learns to predict tool output, and then writes it: a reply
that holds a line starting with the observation marker ("Observation:", `prompts.observation_marker`) puts
words in the environment's mouth. The rate of such replies, over every step of a run's trajectories, is
reported beside the agent metrics; for a model fine-tuned with the assistant-only mask it should not rise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slm_swap.prompts import observation_marker
from slm_swap.tracks.agent.episodes.trajectory import Trajectory


def writes_observation(reply: str) -> bool:
    marker = observation_marker()
    return any(line.lstrip().startswith(marker) for line in reply.splitlines())


def written_observations(trajectories: Iterable[Trajectory]) -> dict[str, Any]:
    """Steps whose reply holds an observation line, of all steps, and the tasks where it happened."""
    steps = written = 0
    tasks: list[str] = []
    for trajectory in trajectories:
        found = False
        for turn in trajectory.turns:
            for step in turn.steps:
                steps += 1
                if writes_observation(step.text):
                    written += 1
                    found = True
        if found:
            tasks.append(trajectory.task_id)
    return {"steps": steps, "steps_writing_observations": written, "rate": written / steps if steps else 0.0, "tasks": tasks}
