"""Fixtures of the evaluation harness: the model that answers, its answer per row, the row's record."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from slm_swap.backends.api import Answer, Model
from slm_swap.backends.journal import JournalError
from slm_swap.backends.retry import CircuitOpen
from slm_swap.data.rows import DatasetError, Row
from slm_swap.harness.context import run_context
from slm_swap.harness.factory import ModelSetupError, build_cached_model
from slm_swap.harness.progress import GenerationProgress
from slm_swap.harness.records import MODEL_PROPERTY, ROW_PROPERTY, make_row_record
from slm_swap.scoring.scorers import RowResult


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
            chosen = {
                item.callspec.id
                for item in self.session.items
                if getattr(item, "module", None) and getattr(item.module, "TRACK", None) == track and hasattr(item, "callspec")
            }
            rows = [row for row in context.selected_rows(track) if row.id in chosen]
            try:
                progress = GenerationProgress(self.session.config, f"{context.settings.model} {track}")
                model = build_cached_model(context.settings, track, context.environ, progress)
                model.prepare(rows)
            except (ModelSetupError, DatasetError, JournalError) as exc:
                pytest.exit(f"error: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
            except Exception as exc:
                self.failures[track] = exc
                raise
            self.models[track] = model
        return self.models[track]

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
        reply = model.answer(row)
    except CircuitOpen as exc:
        # the same failure on row after row is an outage, not a model: stop instead of retrying for hours
        pytest.exit(f"error: stopping the run early: {exc}", returncode=pytest.ExitCode.INTERRUPTED)
    reply.started_at = reply.started_at or started
    return reply


@pytest.fixture
def record_result(request: pytest.FixtureRequest, model: Model, row: Row, answer: Answer) -> Callable[[RowResult], None]:
    def record(result: RowResult) -> None:
        request.node.user_properties.append((ROW_PROPERTY, make_row_record(row, answer, result).to_json()))
        request.node.user_properties.append((MODEL_PROPERTY, model.describe()))

    return record
