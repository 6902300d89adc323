"""Fixtures of the evaluation harness: the model that answers, its answer per row, the row's record; for the agent
track, the episodes run up front, a task's trajectory and its record."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from slm_swap.backends.api import Answer, HarnessError, Model, answer_row
from slm_swap.backends.journal import JournalError
from slm_swap.backends.retry import CircuitOpen
from slm_swap.data.rows import DatasetError, Row
from slm_swap.harness.context import run_context
from slm_swap.harness.factory import ModelSetupError, build_cached_model
from slm_swap.harness.invariance import ALONE_PROPERTY, choose_check_rows
from slm_swap.harness.progress import RowProgress
from slm_swap.harness.records import MODEL_PROPERTY, ROW_PROPERTY, make_row_record
from slm_swap.harness.shares import rows_to_run
from slm_swap.harness.stops import stop_run
from slm_swap.scoring.scorers import RowResult
from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.episodes.scoring import TaskResult
from slm_swap.tracks.agent.episodes.trajectory import Trajectory
from slm_swap.tracks.agent.run.capture import CAPTURE_PROPERTY, capture_lines
from slm_swap.tracks.agent.run.policy import build_policy
from slm_swap.tracks.agent.run.pool import EpisodePool
from slm_swap.tracks.agent.run.records import TASK_PROPERTY, TaskRecord


class ModelPool:
    """One model per track, built and prepared with the track's selected rows on first use."""

    def __init__(self, session: pytest.Session) -> None:
        self.session = session
        self.models: dict[str, Model] = {}
        self.failures: dict[str, BaseException] = {}

    def get(self, track: str) -> Model:
        if track in self.failures:
            raise self.failures[track]  # a model that failed to load is not loaded again for every row
        if track not in self.models:
            context = run_context(self.session.config)
            rows = rows_to_run(self.session, track)  # all selected rows; under xdist, this worker's queue
            progress = self.progress(context.settings.model, track)
            try:
                model = build_cached_model(context.settings, track, context.environ, progress, lambda: rows_to_run(self.session, track))
                model.prepare(rows)
                if context.settings.check_batch_invariance:
                    progress.emit(f"{context.settings.model} {track}: batch invariance check, rows again one at a time:")
                    model.generate_alone(choose_check_rows(rows, context.settings.check_batch_invariance))  # type: ignore[attr-defined]
            except (ModelSetupError, DatasetError, JournalError) as exc:
                stop_run(str(exc))
            except Exception as exc:
                self.failures[track] = exc
                raise
            self.models[track] = model
        return self.models[track]

    def progress(self, model: str | None, track: str) -> RowProgress:
        if model == "azure":
            return RowProgress(self.session.config, f"{model} {track}", verb="answered", min_interval_s=1.0)
        return RowProgress(self.session.config, f"{model} {track}")

    def close(self) -> None:
        for model in self.models.values():
            model.close()


@pytest.fixture(scope="session")
def models(request: pytest.FixtureRequest) -> Iterator[ModelPool]:
    pool = ModelPool(request.session)
    yield pool
    pool.close()


@pytest.fixture
def model(models: ModelPool, row: Row) -> Model:
    return models.get(row.track)


@pytest.fixture
def answer(model: Model, row: Row) -> Answer:
    started = time.time()
    try:
        reply = answer_row(model, row)
    except CircuitOpen as exc:
        # the same failure on row after row is an outage, not a model: stop instead of retrying for hours
        stop_run(f"stopping the run early: {exc}", pytest.ExitCode.INTERRUPTED)
    except HarnessError as exc:
        # not the model's failure, so never scored as one: the run stops with the cause (answers so far are journalled)
        stop_run(f"stopping the run: the harness failed: {exc}", pytest.ExitCode.INTERNAL_ERROR)
    except DatasetError as exc:  # replay holds no answer for this row
        stop_run(str(exc))
    reply.started_at = reply.started_at or started
    return reply


@pytest.fixture
def record_result(request: pytest.FixtureRequest, model: Model, row: Row, answer: Answer) -> Callable[[RowResult], None]:
    def record(result: RowResult) -> None:
        request.node.user_properties.append((ROW_PROPERTY, make_row_record(row, answer, result).to_json()))
        request.node.user_properties.append((MODEL_PROPERTY, model.describe()))
        alone = model.alone_answer(row) if run_context(request.config).settings.check_batch_invariance else None  # type: ignore[attr-defined]
        if alone is not None:
            request.node.user_properties.append((ALONE_PROPERTY, alone.text))

    return record


@pytest.fixture(scope="session")
def episodes(request: pytest.FixtureRequest) -> Iterator[EpisodePool]:
    pool = EpisodePool(request.session, build_policy)
    yield pool
    pool.close()


@pytest.fixture
def trajectory(episodes: EpisodePool, task: MultiTurnTask) -> Trajectory:
    return episodes.trajectory(task)


@pytest.fixture
def record_task(
    request: pytest.FixtureRequest, episodes: EpisodePool, task: MultiTurnTask, trajectory: Trajectory
) -> Callable[[TaskResult], None]:
    def record(result: TaskResult) -> None:
        request.node.user_properties.append((TASK_PROPERTY, TaskRecord(result, trajectory).to_json()))
        request.node.user_properties.append((MODEL_PROPERTY, episodes.describe()))
        settings = run_context(request.config).settings
        if settings.capture:
            samples = episodes.samples.get(task.id, [])
            lines = capture_lines(task, trajectory, samples, str(settings.model), settings.temperature)
            request.node.user_properties.append((CAPTURE_PROPERTY, lines))

    return record
