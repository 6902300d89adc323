"""The agent track's episodes in one pytest process: every selected task answered up front, as the SLM answers rows.

On the first task a test asks for, `EpisodePool` runs all tasks this process will run (under pytest-xdist, the
worker's queue; `cases.tasks_to_run`) through `run_episodes` with the policy the run asked for, so a batched
model generates once per step across every open episode; a task it has not run yet (the worker's queue grew)
starts the next batch. `--model=replay` runs nothing: it hands back the stored trajectories, which scoring
re-executes through BFCL's checker. With `--capture-trajectories --samples k` the teacher also runs every task k more times
at `--temperature` (`samples`); those trajectories are captured, never scored into the metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from slm_swap import layout
from slm_swap.data.rows import DatasetError
from slm_swap.files import sha256_file
from slm_swap.harness.context import run_context
from slm_swap.harness.factory import ModelSetupError
from slm_swap.harness.progress import AgentProgress
from slm_swap.harness.records import load_metric_file
from slm_swap.harness.settings import EvalSettings
from slm_swap.harness.stops import stop_run
from slm_swap.layout import metric_for_predictions
from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, run_episodes
from slm_swap.tracks.agent.episodes.sandbox import SandboxUnavailable
from slm_swap.tracks.agent.episodes.trajectory import Trajectory
from slm_swap.tracks.agent.run.cases import tasks_to_run
from slm_swap.tracks.agent.run.policy import AgentPolicy
from slm_swap.tracks.agent.run.records import TaskRecord, read_task_records

PolicyFactory = Callable[[EvalSettings, Mapping[str, str]], AgentPolicy]


def episode_settings(settings: EvalSettings) -> EpisodeSettings:
    return EpisodeSettings(
        settings.arm,
        max_steps_per_turn=settings.max_steps_per_turn,
        max_active=settings.max_active,
        scratch_root=layout.sandbox_dir(settings.out_dir),
        unsafe_local_executor=settings.unsafe_local_executor,
    )


def stored_trajectories(settings: EvalSettings, tasks: list[MultiTurnTask]) -> dict[str, Trajectory]:
    """Replay's trajectories for `tasks`: every one must be stored, for the run's arm."""
    assert settings.predictions is not None  # the plugin refuses replay without --predictions
    records: dict[str, TaskRecord] = read_task_records(settings.predictions)
    missing = [task.id for task in tasks if task.id not in records]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DatasetError(
            f"{settings.predictions}: no trajectory for {len(missing)} selected task(s): {shown}; {replay_hint(settings, len(records))}"
        )
    arms = {records[task.id].trajectory.arm for task in tasks}
    if arms - {settings.arm}:
        raise DatasetError(f"{settings.predictions}: trajectories of arm {', '.join(sorted(arms))}; this run is --arm {settings.arm}")
    return {task.id: records[task.id].trajectory for task in tasks}


def replay_hint(settings: EvalSettings, stored: int) -> str:
    """Which task list the stored run used: its metric file, written beside the predictions, names it."""
    assert settings.predictions is not None
    try:
        dataset = load_metric_file(metric_for_predictions(settings.predictions))["dataset"]["path"]
    except (ValueError, KeyError, TypeError):
        return f"the predictions hold {stored} task(s): pass the `--dataset` of the run that wrote them"
    return f"the predictions hold {stored} task(s), from a run over `--dataset {dataset}`: run with `--dataset {dataset}`"


class EpisodePool:
    def __init__(self, session: pytest.Session, build_policy: PolicyFactory) -> None:
        self.session = session
        self.build_policy = build_policy
        self.trajectories: dict[str, Trajectory] = {}
        self.samples: dict[str, list[Trajectory]] = {}  # task id -> its sampled trajectories, for --capture-trajectories
        self.policy: AgentPolicy | None = None
        self.description: dict[str, Any] = {}
        self.failure: BaseException | None = None

    def trajectory(self, task: MultiTurnTask) -> Trajectory:
        if self.failure is not None:
            raise self.failure  # a policy that failed is not asked again for every task
        if task.id not in self.trajectories:
            queued = [t for t in tasks_to_run(self.session) if t.id not in self.trajectories]
            if task not in queued:
                queued.insert(0, task)
            try:
                self.trajectories.update(self.run(queued))
            except (ModelSetupError, DatasetError, SandboxUnavailable) as exc:
                stop_run(str(exc))
            except Exception as exc:
                self.failure = exc
                raise
        return self.trajectories[task.id]

    def run(self, tasks: list[MultiTurnTask]) -> dict[str, Trajectory]:
        settings = run_context(self.session.config).settings
        if settings.model == "replay":
            self.description = {
                "name": "replay",
                "predictions": str(settings.predictions),
                "predictions_sha256": sha256_file(settings.predictions),
            }
            return stored_trajectories(settings, tasks)
        if self.policy is None:
            self.policy = self.build_policy(settings, run_context(self.session.config).environ)
        progress = AgentProgress(self.session.config, f"{settings.model} agent {settings.arm}")
        trajectories = run_episodes(tasks, self.policy.act, episode_settings(settings), on_step=progress.step)
        if settings.capture and settings.samples:
            if self.policy.sample is None:
                raise ModelSetupError(f"--samples: --model={settings.model} does not sample; the hosted model (azure) does")
            for _ in range(settings.samples):
                for sampled in run_episodes(tasks, self.policy.sample(settings.temperature), episode_settings(settings)):
                    self.samples.setdefault(sampled.task_id, []).append(sampled)
        return {trajectory.task_id: trajectory for trajectory in trajectories}

    def describe(self) -> dict[str, Any]:
        return self.policy.describe() if self.policy is not None else dict(self.description)

    def close(self) -> None:
        if self.policy is not None:
            self.policy.close()
