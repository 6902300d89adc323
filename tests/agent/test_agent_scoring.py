"""Scoring an episode: which turn and step failed, and why; the metrics; re-scoring a stored trajectory."""

from __future__ import annotations

import json

import pytest

from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn, parse_call
from slm_swap.tracks.agent.episodes.environments import RecordedCall, render_call
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, PolicyReply, run_episodes
from slm_swap.tracks.agent.episodes.gold import gold_reply
from slm_swap.tracks.agent.episodes.scoring import TaskResult, agent_metrics, score_trajectory
from slm_swap.tracks.agent.episodes.trajectory import Trajectory

UNKNOWN = '<tool_call name="send_money">{"to": "mallory"}</tool_call>'
LS = '<tool_call name="ls">{}</tool_call>'


@pytest.fixture(scope="module")
def task():
    return next(t for t in load_multi_turn(categories=("multi_turn_base",)).tasks if t.id == "multi_turn_base_0")


def scripted(script: dict[tuple[int, int], PolicyReply | str], shift_turn: int | None = None):
    """Replies from `script` by (turn, step); gold otherwise (shifted by one step in `shift_turn`, after a scripted step)."""

    def policy(requests):
        replies = []
        for r in requests:
            scripted_reply = script.get((r.turn, r.step))
            if scripted_reply is None:
                shifted = r if r.turn != shift_turn else type(r)(r.task, r.turn, r.step - 1, r.messages)
                scripted_reply = gold_reply("toolcall", shifted, 10)
            replies.append(scripted_reply)  # a plain string is a reply too
        return replies

    return policy


def run(task, policy, max_steps: int = 10) -> tuple[Trajectory, TaskResult]:
    trajectory = run_episodes([task], policy, EpisodeSettings("toolcall", max_steps_per_turn=max_steps))[0]
    return trajectory, score_trajectory(task, trajectory)


def test_a_failed_action_the_agent_recovers_from_costs_validity_not_success(task) -> None:
    _, result = run(task, scripted({(0, 0): UNKNOWN}, shift_turn=0))
    assert (result.passed, result.actions - result.valid_actions) == (True, 1)


def test_a_turn_left_undone_after_an_unknown_tool_fails_there_with_that_kind(task) -> None:
    _, result = run(task, scripted({(1, 0): UNKNOWN, (1, 1): "I cannot do that."}))
    assert (result.passed, result.first_failing_turn, result.first_failing_step) == (False, 1, 0)
    assert result.failure == AgentFailure.UNKNOWN_TOOL and result.turns_passed == [True, False, False, False]


def test_an_agent_that_never_stops_acting_hits_the_step_limit(task) -> None:
    trajectory, result = run(task, scripted({(0, s): LS for s in range(3)}), max_steps=3)
    assert (trajectory.ended, len(trajectory.turns)) == ("step_limit", 1)
    assert (result.failure, result.first_failing_turn, result.turns_passed) == (AgentFailure.STEP_LIMIT, 0, [False] * 4)


def test_a_model_error_ends_the_episode_after_the_turns_it_passed(task) -> None:
    trajectory, result = run(task, scripted({(2, 0): PolicyReply("", error="timeout")}))
    assert (trajectory.ended, result.failure, result.turns_passed) == ("model_error", AgentFailure.MODEL_ERROR, [True, True, False, False])


def test_a_stored_trajectory_rescored_without_a_model_gets_the_same_verdict(task) -> None:
    trajectory, result = run(task, scripted({(1, 0): UNKNOWN, (1, 1): "I cannot do that."}))
    stored = json.loads(json.dumps(trajectory.to_json()))
    assert score_trajectory(task, Trajectory.from_json(stored)) == result


@pytest.mark.parametrize(
    "arguments",
    [
        {"content": "'); __import__('os').system('id'); ('", "file_name": "a.txt"},  # a quote cannot end the literal
        {"content": 'line\nbreak "double" \\ back', "file_name": "ü.txt"},
        {"content": "x", "file_name": "a", "extra": [1, 2.5, None, True, {"k": "v"}]},
    ],
    ids=["injection", "escapes", "nested"],
)
def test_a_rendered_call_reads_back_as_exactly_the_recorded_values(arguments: dict) -> None:
    docs = {"echo": {"parameters": {"properties": {"content": {}, "file_name": {}, "extra": {}}}}}
    call = parse_call(render_call(RecordedCall("echo", arguments)), docs)
    assert (call.name, call.arguments) == ("echo", arguments)


def test_rates_over_no_results_are_na_not_zero() -> None:
    assert agent_metrics([]) == {
        "tasks": 0,
        "task_success_rate": None,
        "turn_success_rate": None,
        "valid_action_rate": None,
        "mean_steps_per_task": 0.0,
        "mean_usage_per_task": {},
        "failures": {},
    }


def test_metrics_count_tasks_turns_actions_and_failures() -> None:
    results = [
        TaskResult("a", True, [True, True], actions=4, valid_actions=4, steps=6, usage={"completion_tokens": 10}),
        TaskResult("b", False, [True, False], 1, 0, AgentFailure.STATE_MISMATCH, actions=4, valid_actions=2, steps=4),
    ]
    metrics = agent_metrics(results)
    assert (metrics["task_success_rate"], metrics["turn_success_rate"], metrics["valid_action_rate"]) == (0.5, 0.75, 0.75)
    assert (metrics["mean_steps_per_task"], metrics["mean_usage_per_task"]) == (5.0, {"completion_tokens": 5.0})
    assert metrics["failures"] == {"state_mismatch": 1}


def test_checks_leave_nothing_behind_in_the_checkers_globals(task) -> None:
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    before = set(vars(multi_turn_utils))
    run(task, scripted({(1, 0): UNKNOWN, (1, 1): "I cannot do that."}))  # a failing task: several prefix checks
    assert set(vars(multi_turn_utils)) == before
