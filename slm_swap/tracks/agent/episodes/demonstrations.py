"""Episodes as trajectory records (`slm_swap.tracks.agent.data.trajectories`), with the verifier's verdict attached.

`trajectory_record` turns any scored episode into the record a `--capture` run and the trajectory builder
share; `gold_demonstrations` runs the gold policy (the next ground-truth call at every step, a labelled
thought, never a model) over tasks and returns their records: the offline stand-in for a hosted teacher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.data.trajectories import TrajectoryRecord
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, run_episodes
from slm_swap.tracks.agent.episodes.gold import gold_policy
from slm_swap.tracks.agent.episodes.scoring import TaskResult, ground_truth_rejection, score_trajectory
from slm_swap.tracks.agent.episodes.trajectory import Trajectory

VERIFIER = "bfcl_multi_turn_checker"
GOLD_SOURCE = {
    "model": "gold",
    "sample": "gold",
    "temperature": 0.0,
    "label": "gold demonstration: BFCL's ground-truth calls, one per step; not a model",
}


def offered_tools(task: MultiTurnTask) -> list[dict[str, Any]]:
    """Every tool the task offers over its turns: those at the start, then those a later turn adds."""
    return task.functions_at(len(task.turns) - 1)


def trajectory_record(task: MultiTurnTask, trajectory: Trajectory, result: TaskResult, source: Mapping[str, Any]) -> TrajectoryRecord:
    """The episode as a record: its chat, the tools offered over it, the verifier's verdict, where it came from."""
    verifier = {
        "name": VERIFIER,
        "accepted": result.passed,
        "turns_passed": result.turns_passed,
        "failure": result.failure.value if result.failure is not None else None,
        "first_failing_turn": result.first_failing_turn,
        "first_failing_step": result.first_failing_step,
        "detail": result.detail,
    }
    origin = {
        "task_id": task.id,
        "category": task.category,
        "scenario": task.scenario,
        "arm": trajectory.arm,
        **source,
        "ended": trajectory.ended,
        "steps": result.steps,
        "usage": dict(result.usage),
    }
    return TrajectoryRecord(tuple(dict(m) for m in trajectory.messages), tuple(offered_tools(task)), verifier, origin)


def gold_demonstrations(tasks: Sequence[MultiTurnTask], settings: EpisodeSettings) -> list[TrajectoryRecord]:
    """The gold policy's trajectory of every task whose ground truth can be scored, verified like any teacher's."""
    scorable = [task for task in tasks if ground_truth_rejection(task) is None]
    trajectories = run_episodes(scorable, gold_policy(settings.arm, settings.max_steps_per_turn), settings)
    return [
        trajectory_record(task, trajectory, score_trajectory(task, trajectory), GOLD_SOURCE)
        for task, trajectory in zip(scorable, trajectories, strict=True)
    ]
