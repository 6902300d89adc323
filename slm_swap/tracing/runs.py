"""Recording finished runs in Langfuse: an evaluation run, a training run, the decision step.

Each `record_*` call opens its own client, records one trace with the run's real
start and end times, flushes within `settings.flush_timeout_s`, checks that
Langfuse took every span and score, and returns the trace id and URL. Any
shortfall raises `TracingError`, which callers turn into a loud non-zero exit.
Every value passes through `redact` with the Langfuse secret and the caller's
`secrets` before it leaves the process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langfuse import LangfuseEvent, LangfuseGeneration, LangfuseSpan

from slm_swap.data.rows import Row
from slm_swap.formats.jsontext import is_number
from slm_swap.prompts import build_messages
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.session import Observation, TracingSession

USAGE_NAMES = {"prompt_tokens": "input", "completion_tokens": "output", "total_tokens": "total"}
RECORD_METADATA = ("passed", "failure", "detail", "error_class", "finish_reason", "retries", "cached")


@dataclass(frozen=True)
class RowTrace:
    """One evaluated row; becomes a generation named after the row id, its checks 0/1 scores on it."""

    row_id: str
    messages: Sequence[Mapping[str, str]]
    output: str | None
    gold: str
    started_at: float  # unix seconds
    latency_s: float
    checks: Mapping[str, bool]
    usage: Mapping[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    error: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # failure kind, error class, finish reason, ...


@dataclass(frozen=True)
class EvalRunTrace:
    """One evaluation run (one pytest session, one track, one model); becomes trace `eval:<track>:<model_name>`."""

    track: str
    model_name: str
    model: Mapping[str, Any]  # the model's describe(): identity and settings, never secrets
    dataset_path: str
    dataset_sha256: str
    metric_path: str
    predictions_path: str
    pytest_args: Sequence[str]
    started_at: float
    ended_at: float
    rates: Mapping[str, float]  # become trace scores
    summary: Mapping[str, Any] = field(default_factory=dict)  # n, errors, failures, usage totals, ...
    tags: Sequence[str] = ()
    intervals: Mapping[str, Sequence[float]] = field(default_factory=dict)  # rate -> 95 % [low, high], on its score


@dataclass(frozen=True)
class TrainingRunTrace:
    """One fine-tuning run; becomes trace `train:<track>:<base_model>`, final losses as trace scores."""

    track: str
    base_model: str
    backend: str
    settings: Mapping[str, Any]
    train_path: str
    val_path: str
    dataset_sha256: Mapping[str, str]  # split name -> sha256
    adapter_path: str
    started_at: float
    ended_at: float
    loss_curve: Sequence[Mapping[str, Any]]  # e.g. {"step": 10, "train_loss": 1.9}
    final_losses: Mapping[str, float]  # e.g. {"train_loss": 1.2, "val_loss": 1.4}
    details: Mapping[str, Any] = field(default_factory=dict)  # tokens/s, peak memory, manifest path, ...


def usage_details(usage: Mapping[str, Any]) -> dict[str, int]:
    """OpenAI-style token counts under the names Langfuse uses (input, output, total). A count that is not a finite
    number is left out: replay refuses such files before a run, and a trace is never the place a run dies."""
    return {USAGE_NAMES.get(key, key): int(value) for key, value in usage.items() if is_number(value) and math.isfinite(value)}


def row_trace_from_record(row: Row, record: RowRecord, *, started_at: float) -> RowTrace:
    """The trace view of one harness row record (`slm_swap.harness.records.make_row_record`) and its dataset row."""
    plain = record.to_json()  # enums as their values: the metadata stays plain JSON
    extra = {key: plain[key] for key in RECORD_METADATA if plain[key] not in (None, "", {})}
    return RowTrace(
        row_id=record.id,
        messages=build_messages(row.prompt),
        output=record.output,
        gold=row.completion,
        started_at=started_at,
        latency_s=float(record.latency_s) if is_number(record.latency_s) and math.isfinite(record.latency_s) else 0.0,
        checks=dict(record.flags),
        usage=dict(record.usage or {}),
        error=record.error,
        metadata=extra,
    )


def interval_note(run: EvalRunTrace, rate: str) -> dict[str, Any]:
    """A rate score's 95 % interval, as its comment and metadata (nothing when the run has none)."""
    bounds = run.intervals.get(rate)
    if bounds is None:
        return {}
    low, high = bounds
    n = run.summary.get("n")
    return {"comment": f"95% CI [{low:.3f}, {high:.3f}] over n={n} rows", "metadata": {"ci95": [low, high], "n": n}}


def record_trace(settings: LangfuseSettings, secrets: Sequence[str], build: Callable[[TracingSession], str]) -> TraceRef:
    with TracingSession(settings, secrets) as session:
        trace_id = build(session)
        url = session.trace_url(trace_id)
        session.finish()
    return TraceRef(trace_id=trace_id, url=url)


def eval_run_span(session: TracingSession, name: str, run: EvalRunTrace, n: int) -> Observation:
    """The run's root span: the model, dataset and pytest arguments in, the rates and summary out."""
    identity = {
        "track": run.track,
        "model_name": run.model_name,
        "dataset_path": run.dataset_path,
        "dataset_sha256": run.dataset_sha256,
        "metric_path": run.metric_path,
        "predictions_path": run.predictions_path,
        "pytest_args": list(run.pytest_args),
        "n": n,
    }
    return session.start(
        LangfuseSpan,
        name,
        at=run.started_at,
        input={
            "model": dict(run.model),
            "dataset": {"path": run.dataset_path, "sha256": run.dataset_sha256},
            "pytest_args": list(run.pytest_args),
        },
        output={
            "rates": dict(run.rates),
            "summary": dict(run.summary),
            "metric_path": run.metric_path,
            "predictions_path": run.predictions_path,
        },
        metadata=identity,
    )


def _record_row(session: TracingSession, root: Observation, model_name: str, row: RowTrace) -> None:
    """One row as a generation under the run's span, each of its checks a 0/1 score on it."""
    ended_at = row.started_at + row.latency_s
    generation = session.start(
        LangfuseGeneration,
        row.row_id,
        at=row.started_at,
        parent=root,
        input=[dict(m) for m in row.messages],
        output=row.output,
        model=model_name,
        usage_details=usage_details(row.usage),
        metadata={"gold_completion": row.gold, "latency_s": row.latency_s, "error": row.error, **row.metadata},
        level="ERROR" if row.error else None,
        status_message=row.error,
    )
    session.end(generation, at=ended_at)
    for check, passed in row.checks.items():
        session.score(
            trace_id=root.trace_id,
            observation_id=generation.id,
            name=check,
            value=1.0 if passed else 0.0,
            data_type="BOOLEAN",
            at=ended_at,
        )


def record_eval_run(settings: LangfuseSettings, run: EvalRunTrace, rows: Sequence[RowTrace], *, secrets: Sequence[str] = ()) -> TraceRef:
    name = f"eval:{run.track}:{run.model_name}"

    def build(session: TracingSession) -> str:
        with session.trace(name, run.tags):
            root = eval_run_span(session, name, run, len(rows))
            for row in rows:
                _record_row(session, root, run.model_name, row)
            session.end(root, at=run.ended_at)
        for rate, value in run.rates.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                session.score(
                    trace_id=root.trace_id, name=rate, value=value, data_type="NUMERIC", at=run.ended_at, **interval_note(run, rate)
                )
        return root.trace_id

    return record_trace(settings, secrets, build)


def record_training_run(settings: LangfuseSettings, run: TrainingRunTrace, *, secrets: Sequence[str] = ()) -> TraceRef:
    name = f"train:{run.track}:{run.base_model}"

    def build(session: TracingSession) -> str:
        with session.trace(name):
            root = session.start(
                LangfuseSpan,
                name,
                at=run.started_at,
                input={
                    "base_model": run.base_model,
                    "backend": run.backend,
                    "settings": dict(run.settings),
                    "datasets": {"train": run.train_path, "val": run.val_path, "sha256": dict(run.dataset_sha256)},
                },
                output={
                    "adapter_path": run.adapter_path,
                    "final_losses": dict(run.final_losses),
                    "loss_curve": [dict(p) for p in run.loss_curve],
                    **run.details,
                },
                metadata={
                    "track": run.track,
                    "backend": run.backend,
                    "train_path": run.train_path,
                    "val_path": run.val_path,
                    "adapter_path": run.adapter_path,
                },
            )
            session.end(root, at=run.ended_at)
        for loss, value in run.final_losses.items():
            session.score(trace_id=root.trace_id, name=loss, value=value, data_type="NUMERIC", at=run.ended_at)
        return root.trace_id

    return record_trace(settings, secrets, build)


def record_decisions(
    settings: LangfuseSettings, decisions: Mapping[str, Mapping[str, Any]], *, at: float, secrets: Sequence[str] = ()
) -> TraceRef:
    """One trace `decide` holding one event `decision:<track>` per track, each carrying its payload."""

    def build(session: TracingSession) -> str:
        with session.trace("decide"):
            root = session.start(
                LangfuseSpan, "decide", at=at, input={"tracks": sorted(decisions)}, output={t: dict(p) for t, p in decisions.items()}
            )
            for track, payload in decisions.items():
                event = session.start(LangfuseEvent, f"decision:{track}", at=at, parent=root, input={"track": track}, output=dict(payload))
                session.end(event, at=at)
            session.end(root, at=at)
        return root.trace_id

    return record_trace(settings, secrets, build)
