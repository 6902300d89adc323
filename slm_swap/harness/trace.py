"""An evaluation run's Langfuse trace root, built in the controller from the run's metric document; every track
hangs its cases under it (`slm_swap.tracks.rows.trace`, the agent track's `run.trace`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from slm_swap.harness.settings import EvalSettings
from slm_swap.tracing.runs import EvalRunTrace


def unix_time(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def eval_run_trace(settings: EvalSettings, document: dict[str, Any], summary_keys: Sequence[str], tags: Sequence[str] = ()) -> EvalRunTrace:
    """The run's trace root, from its metric document: the document's `summary_keys` as its summary; `tags` go after
    the track and model ones."""
    track = document["track"]
    return EvalRunTrace(
        track=track,
        model_name=settings.run_name(track).split("_", 1)[1],
        model=document["model_description"],
        dataset_path=document["dataset"]["path"],
        dataset_sha256=document["dataset"]["sha256"],
        metric_path=str(settings.metric_path(track)),
        predictions_path=str(settings.predictions_path(track)),
        pytest_args=document["pytest_args"],
        started_at=unix_time(document["started_at"]),
        ended_at=unix_time(document["finished_at"]),
        rates=document["metrics"],
        intervals=document.get("intervals", {}),
        summary={key: document[key] for key in summary_keys},
        tags=[track, str(settings.model), *tags] + ([settings.tag] if settings.tag else []),
    )
