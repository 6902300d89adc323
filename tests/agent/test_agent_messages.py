"""What the agent track tells its user: a turn answered in prose only is said to have run no tool call (BFCL's
"Model response list is empty" reads as if there were no reply), and the runner reports every batched step."""

from __future__ import annotations

import pytest

from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, run_episodes
from slm_swap.tracks.agent.episodes.gold import gold_reply
from slm_swap.tracks.agent.episodes.scoring import score_trajectory


@pytest.fixture(scope="module")
def base_task():
    return next(t for t in load_multi_turn(categories=("multi_turn_base",)).tasks if t.id == "multi_turn_base_0")


def test_a_turn_answered_in_prose_is_no_tool_call_not_an_empty_response(base_task) -> None:
    def policy(requests):
        return ["I would look at the files first." if r.turn == 0 else gold_reply("toolcall", r, 10) for r in requests]

    trajectory = run_episodes([base_task], policy, EpisodeSettings("toolcall"))[0]
    assert trajectory.turns[0].steps[0].text == "I would look at the files first."  # the reply exists
    result = score_trajectory(base_task, trajectory)
    assert (result.failure, result.first_failing_turn) == (AgentFailure.EMPTY_TURN, 0)
    assert "Model response list is empty" not in result.detail and result.detail.startswith("no tool call ran in this turn")


def test_the_runner_reports_each_batched_step(base_task) -> None:
    seen: list[tuple[int, int, int, int]] = []
    trajectory = run_episodes(
        [base_task],
        lambda requests: [gold_reply("toolcall", r, 10) for r in requests],
        EpisodeSettings("toolcall"),
        on_step=lambda *a: seen.append(a),
    )[0]
    steps = sum(len(turn.steps) for turn in trajectory.turns)
    assert [s[0] for s in seen] == list(range(1, steps + 1))  # steps run so far
    assert seen[0][1:] == (1, 0, 1) and seen[-1][1:] == (0, 1, 1)  # (episodes open, tasks finished, tasks in all)
