"""The gold policy through the runner, the sandbox, the dispatch and BFCL's checker: every scored task passes.

All 800 tasks pass by hand (agent.md gives the command and how long it takes); here a deterministic subset of every
category, with the two 34-call turns of long_context (several calls in one step) and the one task whose
ground truth the offering rules make unreachable.
"""

from __future__ import annotations

import pytest

from slm_swap.prompts import AGENT_ARMS, gold_text
from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, PolicyReply, run_episodes
from slm_swap.tracks.agent.episodes.gold import gold_policy, gold_reply, gold_steps
from slm_swap.tracks.agent.episodes.scoring import agent_metrics, ground_truth_rejection, score_trajectory

EVERY = 25  # tasks 0, 25, 50, ... of each category
LONG_TURNS = ("multi_turn_long_context_38", "multi_turn_long_context_46")


@pytest.fixture(scope="module")
def tasks():
    data = load_multi_turn()
    return [t for t in data.tasks if int(t.id.rpartition("_")[2]) % EVERY == 0 or t.id in LONG_TURNS or t.id == "multi_turn_miss_func_49"]


def test_only_the_task_that_calls_a_held_out_tool_early_is_excluded(tasks) -> None:
    rejected = {t.id: reason for t in tasks if (reason := ground_truth_rejection(t))}
    assert rejected == {"multi_turn_miss_func_49": "ground truth calls tail in turn 1, before it is offered"}


@pytest.mark.parametrize("arm", AGENT_ARMS)
def test_gold_policy_passes_every_scored_task(tasks, arm: str) -> None:
    scored = [t for t in tasks if ground_truth_rejection(t) is None]
    settings = EpisodeSettings(arm, max_active=8)
    trajectories = run_episodes(scored, gold_policy(arm, settings.max_steps_per_turn), settings)
    results = [score_trajectory(task, trajectory) for task, trajectory in zip(scored, trajectories)]
    failed = {r.task_id: (r.failure, r.first_failing_turn, r.detail[:200]) for r in results if not r.passed}
    assert failed == {}
    metrics = agent_metrics(results)
    assert (metrics["task_success_rate"], metrics["turn_success_rate"], metrics["valid_action_rate"]) == (1.0, 1.0, 1.0)
    assert {t.messages[-1]["content"] for t in trajectories} == {gold_text(None)}  # labelled, never passed off as a model


def test_a_34_call_turn_fits_the_step_cap_with_several_calls_per_step(tasks) -> None:
    task = next(t for t in tasks if t.id == LONG_TURNS[0])
    turn = next(i for i, calls in enumerate(task.ground_truth) if len(calls) == 34)
    steps = gold_steps(task.ground_truth[turn], 10)
    assert len(steps) == 9 and sum(len(s) for s in steps) == 34


def test_gold_that_skips_each_turns_last_call_fails_by_the_checker(tasks) -> None:
    """The negative control: the same runner and checker reject a policy one call short."""
    task = next(t for t in tasks if t.id == "multi_turn_base_0")

    def short_gold(requests):
        replies = []
        for request in requests:
            steps = gold_steps(request.task.ground_truth[request.turn], 10)
            last = request.step >= len(steps) - 1
            replies.append(PolicyReply("nothing more") if last else gold_reply("toolcall", request, 10))
        return replies

    trajectory = run_episodes([task], short_gold, EpisodeSettings("toolcall"))[0]
    result = score_trajectory(task, trajectory)
    assert (result.passed, result.first_failing_turn) == (False, 0)
    assert result.failure in (AgentFailure.STATE_MISMATCH, AgentFailure.MISSING_RESULT)
