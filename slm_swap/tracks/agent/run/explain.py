"""How a failed agent task reads in pytest's output: the turn and step where the episode went wrong, the failure
kind, that turn's request, the step's reply and observation, and the turn's ground truth."""

from __future__ import annotations

from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.episodes.scoring import TaskResult
from slm_swap.tracks.agent.episodes.trajectory import Trajectory


def explain_task_failure(task: MultiTurnTask, trajectory: Trajectory, result: TaskResult) -> str:
    """The first failing turn and step, the failure kind, that turn's request, the step's reply and observation."""
    turn, step = result.first_failing_turn, result.first_failing_step
    cause = result.failure.value if result.failure else "none"
    verdicts = "  ".join(f"{i}={'ok' if ok else 'FAIL'}" for i, ok in enumerate(result.turns_passed))
    lines = [
        f"agent task {task.id} ({trajectory.arm}) failed: {cause} in turn {turn}, step {step}"
        + (f": {result.detail}" if result.detail else ""),
        f"turns: {verdicts}",
        f"episode ended: {trajectory.ended}" + (f" ({trajectory.detail})" if trajectory.detail else ""),
    ]
    record = trajectory.turns[turn] if turn is not None and turn < len(trajectory.turns) else None
    if record is not None:
        lines += [f"--- turn {turn}: user ---", record.user]
        shown = record.steps[step] if step is not None and step < len(record.steps) else None
        if shown is not None:
            lines += [f"--- turn {turn}, step {step}: reply ---", shown.text, f"--- turn {turn}, step {step}: observation ---"]
            lines.append(shown.observation if shown.observation is not None else "<none: the reply did not act>")
    if turn is not None and turn < len(task.ground_truth_text):
        lines += [f"--- turn {turn}: ground truth ---", "\n".join(task.ground_truth_text[turn]) or "<no calls>"]
    return "\n".join(lines)
