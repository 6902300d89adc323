"""An evaluation run's Langfuse trace, built in the controller from the rows' records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from slm_swap.data.rows import Row
from slm_swap.harness.settings import EvalSettings
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.runs import EvalRunTrace, record_eval_run, row_trace_from_record

SUMMARY_KEYS = ("n", "errors", "passed", "failures", "error_classes", "retries", "usage", "cached_rows", "content_filtered")


def unix_time(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def trace_eval_run(
    langfuse: LangfuseSettings,
    settings: EvalSettings,
    document: dict[str, Any],
    records: Sequence[RowRecord],
    rows: Mapping[str, Row],
    secrets: Sequence[str],
) -> TraceRef:
    track = document["track"]
    row_traces = []
    for record in records:
        row = rows.get(record.id) or Row(record.id, -1, track, "", "")
        started = record.started_at or unix_time(document["started_at"])
        row_traces.append(row_trace_from_record(row, record, started_at=started))
    return record_eval_run(langfuse, eval_run_trace(settings, document), row_traces, secrets=secrets)


def eval_run_trace(
    settings: EvalSettings, document: dict[str, Any], tags: Sequence[str] = (), summary_keys: Sequence[str] = SUMMARY_KEYS
) -> EvalRunTrace:
    """The run's trace root, from its metric document; `tags` go after the track and model ones."""
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
