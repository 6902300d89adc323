"""The terminal summary's lines for one written metric file: rates with intervals, trace, the track's own lines
(`Track.summary_lines`), errors, connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slm_swap.tracks.registry import get_track


def format_interval(bounds: list[float]) -> str:
    """`[0.409, 0.929]`: a rate's 95 % interval as the summary prints it."""
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def rate_text(value: float | None, bounds: list[float] | None) -> str:
    """`0.750 [0.409, 0.929]`, or `n/a` for a rate over a zero denominator (no actions: no rate at all)."""
    return "n/a" if value is None else f"{value:.3f} {format_interval(bounds)}" if bounds else f"{value:.3f}"


def run_summary_lines(doc: dict[str, Any], metric_path: Path) -> list[str]:
    rates = "  ".join(f"{k}={rate_text(v, doc['intervals'].get(k))}" for k, v in doc["metrics"].items())
    arm = f" {doc['arm']}" if "arm" in doc else ""
    lines = [f"{doc['track']}{arm} [{doc['model']}] n={doc['n']} errors={doc['errors']}  {rates}"]
    trace = doc.get("langfuse", {})
    if "trace_id" in trace:
        lines.append(f"  langfuse trace {trace['trace_id']}: {trace['trace_url']}")
    lines += get_track(doc["track"]).summary_lines(doc)
    if doc["errors"] or doc.get("retries") or doc.get("cached_rows"):
        lines.append(
            f"  errors by class {doc['error_classes']}  retries by class {doc.get('retries', {})}"
            f"  rows from cache {doc.get('cached_rows', 0)}"
        )
    concurrency = doc["model_description"].get("concurrency")
    if concurrency:
        lines.append(
            f"  hosted connections: start {concurrency['start']}, minimum {concurrency['minimum']}, "
            f"final {concurrency['final']} (most in flight {concurrency['max_in_flight']})"
        )
    lines.append(f"  -> {metric_path}")
    return lines
