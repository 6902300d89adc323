"""An episode's verdict by BFCL's multi-turn checker, and the agent metrics over many episodes.

The checker (`multi_turn_checker`) gets, per turn, the steps that executed calls, each step a list of
call strings written by `render_call` from the recorded names and parsed values; it builds its own
environment instances from the task's initial config, replays those calls and the ground truth's turn
by turn, and after each turn whose ground truth has calls compares the instances' public state and
checks that every ground-truth call's result appears among the model's results so far.

A turn passes when the checker accepts every turn up to and including it, so the turns after the first
failing one fail too. Turns whose ground truth is empty (the turn before a held-out function arrives, a
missing parameter) are not checked, as in BFCL's own runner, which does not call its irrelevance checker.

The checker keeps its instances in its module's globals under the model name it is given; each check
uses a fresh name and removes its entries afterwards, so checks never share state and memory stays flat.
Given the same trajectory the verdict is the same: no I/O, no clock, no model name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.episodes.environments import CallRefused, RecordedCall, checked_call, render_call
from slm_swap.tracks.agent.episodes.trajectory import Trajectory

_CHECKER_KINDS = {
    "multi_turn:empty_turn_model_response": AgentFailure.EMPTY_TURN,
    "multi_turn:instance_state_mismatch": AgentFailure.STATE_MISMATCH,
    "multi_turn:execution_response_mismatch": AgentFailure.MISSING_RESULT,
}
_ENDED_KINDS = {"step_limit": AgentFailure.STEP_LIMIT, "model_error": AgentFailure.MODEL_ERROR}


def checker_detail(verdict: dict[str, Any]) -> str:
    """The checker's message, in our words where BFCL's mislead: its "Model response list is empty" means the turn
    ran no tool call, though the model did reply (in prose, or with actions that failed before any call ran)."""
    if verdict.get("error_type") == "multi_turn:empty_turn_model_response":
        return "no tool call ran in this turn (the replies held no action that ran a call); its ground truth calls tools"
    return str(verdict.get("error_message", ""))


@dataclass(frozen=True)
class TaskResult:
    """One task's verdict. On failure, `first_failing_turn` is the first turn the checker rejects (or the turn
    the episode stopped in) and `first_failing_step` the first failed action of that turn, else its last step
    (where the agent left the turn in the wrong state); `failure` is that action's kind when it has one, else
    the checker's or the ending's. `actions` counts replies that tried to act, `valid_actions` those that ran cleanly.
    """

    task_id: str
    passed: bool
    turns_passed: list[bool]
    first_failing_turn: int | None = None
    first_failing_step: int | None = None
    failure: AgentFailure | None = None
    detail: str = ""
    actions: int = 0
    valid_actions: int = 0
    steps: int = 0
    usage: dict[str, int] = field(default_factory=dict)


def checker_input(trajectory: Trajectory, turns: int) -> list[list[list[str]]]:
    """Per turn, per step that ran calls, the calls as BFCL's call strings; turns never reached are empty.
    Only calls that passed `first_forged_call` may come here: `render_call` refuses anything else."""
    decoded = [
        [[render_call(RecordedCall(c["name"], c["arguments"])) for c in step.calls] for step in turn.steps if step.calls]
        for turn in trajectory.turns[:turns]
    ]
    return decoded + [[] for _ in range(turns - len(decoded))]


def first_forged_call(task: MultiTurnTask, trajectory: Trajectory) -> tuple[int, int, str] | None:
    """(turn, step, why) of the first recorded call that is not a tool offered in its turn with JSON arguments.
    A stored or journalled trajectory is untrusted data: such a call is never rendered, so never run."""
    for index, turn in enumerate(trajectory.turns):
        offered = {doc["name"] for doc in task.functions_at(index)} if index < len(task.turns) else set()
        for step in turn.steps:
            for call in step.calls:
                try:
                    checked_call(call, offered)
                except CallRefused as refused:
                    return index, step.step, str(refused)
    return None


def run_checker(task: MultiTurnTask, decoded: list[list[list[str]]], turns: int) -> dict[str, Any]:
    """BFCL's verdict on the first `turns` turns."""
    model_name = f"slm_swap_{uuid.uuid4().hex}"
    entry = {"id": task.id, "initial_config": task.initial_config, "involved_classes": task.involved_classes}
    try:
        return multi_turn_checker(decoded[:turns], task.ground_truth_text[:turns], entry, task.category, model_name)
    finally:
        for name in [n for n in vars(multi_turn_utils) if n.startswith(model_name)]:
            del vars(multi_turn_utils)[name]


def first_failing_turn(task: MultiTurnTask, decoded: list[list[list[str]]], limit: int) -> tuple[int | None, dict[str, Any]]:
    """The first turn (below `limit`) the checker rejects, with its verdict; (None, {}) when all pass."""
    verdict = run_checker(task, decoded, limit)
    if verdict["valid"]:
        return None, {}
    for turn in range(limit):
        prefix = run_checker(task, decoded, turn + 1)
        if not prefix["valid"]:
            return turn, prefix
    return limit - 1, verdict


def score_trajectory(task: MultiTurnTask, trajectory: Trajectory) -> TaskResult:
    if trajectory.task_id != task.id:
        raise ValueError(f"trajectory of {trajectory.task_id} scored against task {task.id}")
    steps = [step for turn in trajectory.turns for step in turn.steps]
    counts = {"actions": sum(s.action is not None for s in steps), "valid_actions": sum(s.valid for s in steps), "steps": len(steps)}
    usage: dict[str, int] = {}
    for step in steps:
        for key, value in step.usage.items():
            usage[key] = usage.get(key, 0) + value
    total = len(task.turns)
    forged = first_forged_call(task, trajectory)
    if forged is not None:
        turn, step_index, detail = forged
        failing, verdict = first_failing_turn(task, checker_input(trajectory, turn), turn) if turn else (None, {})
        kind = AgentFailure.BAD_ACTION
        if failing is None:
            failing, step = turn, step_index
        else:
            kind = _CHECKER_KINDS.get(verdict.get("error_type", ""), AgentFailure.STATE_MISMATCH)
            detail, step = checker_detail(verdict), None
        turns_passed = [index < failing for index in range(total)]
        return TaskResult(task.id, False, turns_passed, failing, step, kind, detail, usage=usage, **counts)
    cut = None if trajectory.ended == "complete" else len(trajectory.turns) - 1  # the turn the episode stopped in
    decoded = checker_input(trajectory, total)
    failing, verdict = first_failing_turn(task, decoded, total if cut is None else cut)
    if failing is None and cut is None:
        return TaskResult(task.id, True, [True] * total, usage=usage, **counts)
    if failing is None:
        failing, kind, detail = cut, _ENDED_KINDS[trajectory.ended], trajectory.detail
    else:
        kind, detail = _CHECKER_KINDS.get(verdict.get("error_type", ""), AgentFailure.STATE_MISMATCH), checker_detail(verdict)
    turn_steps = trajectory.turns[failing].steps if failing < len(trajectory.turns) else []
    bad = next((s for s in turn_steps if s.failure is not None), None)
    if bad is not None and kind not in _ENDED_KINDS.values():
        kind, detail = AgentFailure(bad.failure), f"{bad.detail} (then {detail})"
    step = bad.step if bad is not None else (len(turn_steps) - 1 if turn_steps else None)
    turns_passed = [index < failing for index in range(total)]
    return TaskResult(task.id, False, turns_passed, failing, step, kind, detail, usage=usage, **counts)


def ground_truth_rejection(task: MultiTurnTask) -> str | None:
    """Why the task cannot be scored: its ground truth calls a tool before it is offered (BFCL's own runner
    lets a model call any method, we dispatch only offered tools; `multi_turn_miss_func_49` holds `tail`
    back until turn 3 but calls it in turn 1), or BFCL's checker rejects its ground truth replayed as the
    model's calls. None when it can be scored."""
    for turn, calls in enumerate(task.ground_truth):
        offered = {doc["name"] for doc in task.functions_at(turn)}
        early = sorted({call.name for call in calls} - offered)
        if early:
            return f"ground truth calls {', '.join(early)} in turn {turn}, before it is offered"
    decoded = [[[call] for call in turn] for turn in task.ground_truth_text]
    verdict = run_checker(task, decoded, len(task.turns))
    return None if verdict["valid"] else f"{verdict.get('error_type')}: {verdict.get('error_message')}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _share(values: list[bool]) -> float | None:
    """A rate over `values`; None (n/a) when there is nothing to count (no tasks, no turns): no rate at all, not 0."""
    return sum(values) / len(values) if values else None


def agent_metrics(results: list[TaskResult]) -> dict[str, Any]:
    """task_success_rate, turn_success_rate, valid_action_rate, mean steps and usage (tokens) per task, failures by kind."""
    turns = [passed for r in results for passed in r.turns_passed]
    actions = sum(r.actions for r in results)
    failures: dict[str, int] = {}
    for r in results:
        if r.failure is not None:
            failures[r.failure.value] = failures.get(r.failure.value, 0) + 1
    return {
        "tasks": len(results),
        "task_success_rate": _share([r.passed for r in results]),
        "turn_success_rate": _share(turns),
        "valid_action_rate": sum(r.valid_actions for r in results) / actions if actions else None,
        "mean_steps_per_task": _mean([float(r.steps) for r in results]),
        "mean_usage_per_task": {
            key: _mean([float(r.usage.get(key, 0)) for r in results]) for key in sorted({k for r in results for k in r.usage})
        },
        "failures": dict(sorted(failures.items())),
    }
