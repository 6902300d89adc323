"""What each kind of finished run puts in its Langfuse trace: an evaluation run, a training run, the decision step
and the routing evaluation, each described as a `TraceTree` and recorded by the one recorder
(`slm_swap.tracing.recorder.record_tree`: bounded flush, proof of delivery, secrets redacted).

An evaluation run's root span, its rate scores and their intervals are written here once for every track; what a
case looks like under it (a row's generation, an agent task's span with its turns and steps) is the track's own
part, supplied by the track's slice as a `CaseTrace`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from slm_swap.formats.jsontext import is_number
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.recorder import Score, SpanTree, TraceTree, record_tree


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
    rates: Mapping[str, float | None]  # become trace scores; None (a rate over nothing) gets none
    summary: Mapping[str, Any] = field(default_factory=dict)  # n, errors, failures, usage totals, ...
    tags: Sequence[str] = ()
    intervals: Mapping[str, Sequence[float]] = field(default_factory=dict)  # rate -> 95 % [low, high], on its score


class CaseTrace(Protocol):
    """One evaluated case, as its track traces it: a span (with its own children and scores) under the run's root."""

    def span(self, model_name: str, fallback_at: float) -> SpanTree:
        """The case's span tree; `fallback_at` stands in for a time the case's record lacks (the run's start)."""
        ...


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


def rate_score(run: EvalRunTrace, rate: str, value: float) -> Score:
    """A rate as a trace score, its 95 % interval (when the run has one) as the score's comment and metadata."""
    bounds = run.intervals.get(rate)
    if bounds is None:
        return Score(rate, value, "NUMERIC", run.ended_at)
    low, high = bounds
    n = run.summary.get("n")
    return Score(rate, value, "NUMERIC", run.ended_at, f"95% CI [{low:.3f}, {high:.3f}] over n={n} rows", {"ci95": [low, high], "n": n})


def eval_run_tree(run: EvalRunTrace, cases: Sequence[CaseTrace]) -> TraceTree:
    """The run's root span (the model, dataset and pytest arguments in, the rates and summary out), a case's span
    under it for every case, and the rates as trace scores."""
    name = f"eval:{run.track}:{run.model_name}"
    root = SpanTree(
        name,
        run.started_at,
        run.ended_at,
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
        metadata={
            "track": run.track,
            "model_name": run.model_name,
            "dataset_path": run.dataset_path,
            "dataset_sha256": run.dataset_sha256,
            "metric_path": run.metric_path,
            "predictions_path": run.predictions_path,
            "pytest_args": list(run.pytest_args),
            "n": len(cases),
        },
        children=[case.span(run.model_name, run.started_at) for case in cases],
    )
    scores = [rate_score(run, rate, value) for rate, value in run.rates.items() if is_number(value)]
    return TraceTree(name, root, run.tags, scores)


def record_eval_run(settings: LangfuseSettings, run: EvalRunTrace, cases: Sequence[CaseTrace], *, secrets: Sequence[str] = ()) -> TraceRef:
    return record_tree(settings, eval_run_tree(run, cases), secrets=secrets)


def record_training_run(settings: LangfuseSettings, run: TrainingRunTrace, *, secrets: Sequence[str] = ()) -> TraceRef:
    name = f"train:{run.track}:{run.base_model}"
    root = SpanTree(
        name,
        run.started_at,
        run.ended_at,
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
    scores = [Score(loss, value, "NUMERIC", run.ended_at) for loss, value in run.final_losses.items()]
    return record_tree(settings, TraceTree(name, root, scores=scores), secrets=secrets)


def per_track_tree(name: str, prefix: str, outputs: Mapping[str, Any], at: float, root_output: Any = None) -> TraceTree:
    """One trace `name`: a root span and, under it, one event `<prefix>:<track>` per track carrying its output."""
    events = [
        SpanTree(f"{prefix}:{track}", at, at, kind="event", input={"track": track}, output=output) for track, output in outputs.items()
    ]
    return TraceTree(name, SpanTree(name, at, at, input={"tracks": sorted(outputs)}, output=root_output, children=events))


def record_decisions(
    settings: LangfuseSettings, decisions: Mapping[str, Mapping[str, Any]], *, at: float, secrets: Sequence[str] = ()
) -> TraceRef:
    """One trace `decide` holding one event `decision:<track>` per track, each carrying its payload."""
    payloads = {track: dict(payload) for track, payload in decisions.items()}
    return record_tree(settings, per_track_tree("decide", "decision", payloads, at, root_output=payloads), secrets=secrets)


def route_summary(document: Mapping[str, Any]) -> dict[str, Any]:
    """A track's routing document without its per-row routes, which stay in the file."""
    variants = {
        name: {key: value for key, value in variant.items() if key != "routes"} for name, variant in document.get("variants", {}).items()
    }
    return {**{key: value for key, value in document.items() if key != "variants"}, "variants": variants}


def record_routes(
    settings: LangfuseSettings, documents: Mapping[str, Mapping[str, Any]], *, at: float, secrets: Sequence[str] = ()
) -> TraceRef:
    """One trace `route` holding one event `route:<track>` per track, each carrying its shares, rates and verdicts."""
    summaries = {track: route_summary(document) for track, document in documents.items()}
    return record_tree(settings, per_track_tree("route", "route", summaries, at), secrets=secrets)
