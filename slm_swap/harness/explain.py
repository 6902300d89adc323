"""How a failed row or agent task reads in pytest's output: prompt, gold, output and the failing checks; for a
task, the turn and step where the episode went wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slm_swap.backends.api import Answer
from slm_swap.data.rows import Row
from slm_swap.scoring.scorers import RowResult

if TYPE_CHECKING:  # the row tracks' tests import this module: BFCL's checker loads only for the agent track
    from slm_swap.agent.scoring import TaskResult
    from slm_swap.agent.trajectory import Trajectory
    from slm_swap.data.bfcl_multi_turn import MultiTurnTask


def explain_failure(row: Row, answer: Answer, result: RowResult) -> str:
    verdicts = "  ".join(f"{name}={'ok' if ok else 'FAIL'}" for name, ok in result.flags.items())
    cause = result.failure.value if result.failure else "none"
    lines = [
        f"{row.track} row {row.id} failed: {cause}" + (f" ({result.detail})" if result.detail else ""),
        f"checks: {verdicts}",
    ]
    if answer.error:
        lines.append(f"model error [{answer.error_class or 'unknown'}]: {answer.error}")
    if answer.finish_reason == "content_filter":
        lines.append("note: the reply was cut by a content filter (finish_reason=content_filter)")
    lines += ["--- prompt ---", row.prompt, "--- gold ---", row.completion, "--- output ---"]
    lines.append("<no output>" if answer.text is None else answer.text)
    return "\n".join(lines)


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
