"""Re-checking stored trajectory records before they are trained on: their own `accepted` is a claim, not a fact.

A record holds the chat, not the calls, so the check replays it: the record's assistant replies, in order, are
the policy of a fresh episode of its task (`run_episodes`, so every action runs again in the sandbox boundary and
every call read back passes the call gate), and BFCL's checker scores what ran. The record is accepted only when
that verdict passes; otherwise the reason is its failure kind and detail. A record whose replies run out before
the episode ends fails with `model_error`. No reply text is ever evaluated here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.data.trajectories import TrajectoryRecord
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, PolicyReply, PolicyRequest, run_episodes
from slm_swap.tracks.agent.episodes.scoring import score_trajectory


def recheck_records(
    records: Sequence[TrajectoryRecord], tasks: Mapping[str, MultiTurnTask], settings: EpisodeSettings
) -> dict[int, str | None]:
    """For each record (by position) that claims acceptance in `settings.arm`: None when BFCL's checker accepts
    it replayed, else why not. A rejected record stays rejected and is not replayed."""
    verdicts: dict[int, str | None] = {}
    claimed = [i for i, r in enumerate(records) if r.accepted and r.arm == settings.arm]
    known = [i for i in claimed if records[i].task_id in tasks]
    for i in claimed:
        if records[i].task_id not in tasks:
            verdicts[i] = f"task {records[i].task_id} is not in BFCL's multi-turn data"
    replies = {i: [m["content"] for m in records[i].messages if m["role"] == "assistant"] for i in known}
    by_task: dict[str, list[int]] = {}
    for i in known:
        by_task.setdefault(records[i].task_id, []).append(i)
    # one task may have several records: each is its own episode, run in rounds of distinct tasks
    rounds: list[list[int]] = []
    for indices in by_task.values():
        for depth, index in enumerate(indices):
            if depth == len(rounds):
                rounds.append([])
            rounds[depth].append(index)
    for round_indices in rounds:
        cursor = {records[i].task_id: (i, 0) for i in round_indices}

        def policy(requests: list[PolicyRequest], cursor: dict = cursor) -> list[PolicyReply | str]:
            answers: list[PolicyReply | str] = []
            for request in requests:
                index, used = cursor[request.task.id]
                texts = replies[index]
                cursor[request.task.id] = (index, used + 1)
                answers.append(texts[used] if used < len(texts) else PolicyReply("", error="the record has no more replies"))
            return answers

        trajectories = run_episodes([tasks[records[i].task_id] for i in round_indices], policy, settings)
        for index, trajectory in zip(round_indices, trajectories, strict=True):
            result = score_trajectory(tasks[records[index].task_id], trajectory)
            verdicts[index] = None if result.passed else f"{result.failure.value if result.failure else 'failed'}: {result.detail}"
    return verdicts
