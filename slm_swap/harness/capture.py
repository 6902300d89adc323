"""`--capture-trajectories` (pytest owns `--capture`): every trajectory of an agent run, accepted or rejected by the
verifier, in the trajectory row format of docs/phase2.md: `{"messages", "tools", "verifier", "source"}`, one JSON
object per line.

The verifier is BFCL's multi-turn checker (`slm_swap.agent.scoring.score_trajectory`): a trajectory is accepted when
every turn passes, never by asking the model. `tools` are the function docs offered over the episode (the first
turn's and every held-out set added later); `source` names the task, arm, model and which sample it is ("greedy",
the evaluated one, or 1..k at the temperature). A process builds its tasks' lines; the controller writes the file.
"""

from __future__ import annotations

from typing import Any

from slm_swap.agent.scoring import score_trajectory
from slm_swap.agent.trajectory import Trajectory
from slm_swap.data.bfcl_multi_turn import MultiTurnTask

CAPTURE_PROPERTY = "slm_swap_capture"


def capture_line(task: MultiTurnTask, trajectory: Trajectory, model: str, sample: str, temperature: float) -> dict[str, Any]:
    result = score_trajectory(task, trajectory)
    return {
        "messages": [dict(message) for message in trajectory.messages],
        "tools": task.functions_at(len(task.turns) - 1),
        "verifier": {
            "name": "bfcl_multi_turn_checker",
            "accepted": result.passed,
            "turns_passed": result.turns_passed,
            "failure": result.failure.value if result.failure else None,
            "first_failing_turn": result.first_failing_turn,
            "first_failing_step": result.first_failing_step,
            "detail": result.detail,
        },
        "source": {
            "task_id": task.id,
            "category": task.category,
            "scenario": task.scenario,
            "arm": trajectory.arm,
            "model": model,
            "sample": sample,
            "temperature": temperature,
            "ended": trajectory.ended,
            "steps": result.steps,
            "usage": dict(result.usage),
        },
    }


def capture_lines(
    task: MultiTurnTask, greedy: Trajectory, samples: list[Trajectory], model: str, temperature: float
) -> list[dict[str, Any]]:
    """The evaluated (greedy) trajectory first, then each sample in the order it ran."""
    lines = [capture_line(task, greedy, model, "greedy", 0.0)]
    lines += [capture_line(task, sampled, model, str(index), temperature) for index, sampled in enumerate(samples, start=1)]
    return lines
