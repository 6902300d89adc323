"""The agent sandbox's cost per episode: gold demonstrations over a split's tasks, and the worker's start time.

`run_gold` runs the gold policy over the split's tasks through `run_episodes` (the episode runner, one
sandbox worker per episode, `max_active` at once) and scores every trajectory with BFCL's checker, leaving
out the tasks whose ground truth cannot be scored (`ground_truth_rejection`). Wall time per episode is the
run's wall time over its episodes, so it includes the overlap of `max_active` episodes on the machine's cores.
`time_worker_starts` times constructing an `EpisodeSandbox` until its worker's first reply (the start
request: imports, confinement, environments), one worker at a time.

Only arguments that the sandbox had before its operating-system boundary are passed (classes, initial
config, long context, arm, limits, positionally), so one script measures the tree before and after it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap.options import MAX_ACTIVE, MAX_STEPS_PER_TURN
from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask, load_multi_turn
from slm_swap.tracks.agent.data.splits import load_split_tasks
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, run_episodes
from slm_swap.tracks.agent.episodes.gold import gold_policy
from slm_swap.tracks.agent.episodes.sandbox import EpisodeSandbox, SandboxLimits
from slm_swap.tracks.agent.episodes.scoring import ground_truth_rejection, score_trajectory


@dataclass(frozen=True)
class GoldRun:
    arm: str
    tasks: int  # in the split
    excluded: dict[str, str]  # task id -> why its ground truth cannot be scored
    scored: int
    passed: int
    failed: list[str]
    steps: int
    sandbox_restarts: int
    wall_seconds: float
    isolation: dict[str, Any] = field(default_factory=dict)  # the first trajectory's, where the tree records it

    @property
    def seconds_per_episode(self) -> float:
        return self.wall_seconds / max(1, self.scored)


@dataclass(frozen=True)
class WorkerStarts:
    arm: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def load_tasks(split_file: Path) -> list[MultiTurnTask]:
    return load_split_tasks(split_file, load_multi_turn())


def run_gold(
    tasks: list[MultiTurnTask], arm: str, max_active: int = MAX_ACTIVE.default, max_steps_per_turn: int = MAX_STEPS_PER_TURN.default
) -> GoldRun:
    excluded = {t.id: reason for t in tasks if (reason := ground_truth_rejection(t))}
    scored = [t for t in tasks if t.id not in excluded]
    settings = EpisodeSettings(arm, max_steps_per_turn, max_active)
    started = time.monotonic()
    trajectories = run_episodes(scored, gold_policy(arm, max_steps_per_turn), settings)
    wall = time.monotonic() - started
    results = [score_trajectory(task, trajectory) for task, trajectory in zip(scored, trajectories, strict=True)]
    return GoldRun(
        arm=arm,
        tasks=len(tasks),
        excluded=excluded,
        scored=len(scored),
        passed=sum(r.passed for r in results),
        failed=[f"{r.task_id}: {r.failure}: {r.detail}" for r in results if not r.passed],
        steps=sum(len(turn.steps) for t in trajectories for turn in t.turns),
        sandbox_restarts=sum(t.sandbox_restarts for t in trajectories),
        wall_seconds=wall,
        isolation=dict(getattr(trajectories[0], "isolation", None) or {}) if trajectories else {},
    )


def time_worker_starts(tasks: list[MultiTurnTask], arm: str, count: int = 20) -> WorkerStarts:
    """`count` starts, one at a time, cycling through `tasks`' environments."""
    seconds = []
    for index in range(count):
        task = tasks[index % len(tasks)]
        started = time.monotonic()
        sandbox = EpisodeSandbox(task.involved_classes, task.initial_config, task.long_context, arm, SandboxLimits())
        try:
            sandbox._ensure_started()  # the new tree waits for the reply in the constructor, the old one at the first step
            seconds.append(time.monotonic() - started)
        finally:
            sandbox.close()
    return WorkerStarts(arm, seconds)
