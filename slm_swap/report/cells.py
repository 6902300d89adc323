"""One cell or phrase of the report: rates, gaps, wall times, dataset paths, model identities, trace links."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slm_swap.report.inputs import Run, TrackInputs
from slm_swap.report.markdown import code, escape

NOT_RUN = "not run"
# the decision's own tolerance, so the report never calls a gap "within delta" that the decision would not
GAP_EPSILON = 1e-9
# the identity fields of the hosted, local SLM and replay models' describe(); the rest are settings
IDENTITY_KEYS = (
    "name",
    "deployment",
    "model",
    "api_version",
    "endpoint",
    "model_path",
    "base",
    "adapter",
    "quantization",
    "dtype",
    "device",
    "predictions",
)


def rate(value: float | None) -> str:
    return NOT_RUN if value is None else f"{value:.3f}"


def gap_text(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NOT_RUN
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def short_sha(value: str | None) -> str:
    return code(value[:12], in_table=True) if value else "unknown"


def display_path(path_text: str, root: Path | None) -> str:
    """Dataset paths are recorded absolute; inside the repository the relative path says the same, shorter."""
    if root is not None and Path(path_text).is_absolute():
        try:
            return Path(path_text).relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path_text


def trace_link(doc: Mapping[str, Any] | None) -> str:
    langfuse = (doc or {}).get("langfuse") or {}
    url, trace_id = langfuse.get("trace_url"), langfuse.get("trace_id")
    if url and re.fullmatch(r"https?://[^\s<>]+", url):
        return f"[trace](<{url}>)"
    return f"trace {code(trace_id, in_table=True)}" if trace_id else "not traced"


def identity(description: Mapping[str, Any]) -> str:
    """The fields that say which model answered; settings such as timeouts stay in the metric file."""
    shown = []
    for key in IDENTITY_KEYS:
        value = description.get(key)
        if isinstance(value, dict):
            value = value.get("method")  # the SLM's quantization is a dict headed by its method
        if value not in (None, ""):
            shown.append(f"{key}={value}")
    shown += [f"{key}={str(value)[:12]}" for key, value in description.items() if key.endswith("sha256") and value]
    return code(", ".join(shown)) if shown else "not recorded"


def gaps(hosted: Run | None, other: Run | None, metrics: tuple[str, ...]) -> dict[str, float] | None:
    if hosted is None or other is None:
        return None
    return {m: hosted.metrics[m] - other.metrics[m] for m in metrics}


def largest_gap(values: dict[str, float] | None, delta: float | None) -> str:
    if not values:
        return NOT_RUN
    metric = max(values, key=lambda m: values[m])
    text = f"{values[metric]:+.3f} ({escape(metric.removesuffix('_rate'))})"
    if delta is None:
        return text
    return text + (" within delta" if values[metric] <= delta + GAP_EPSILON else " exceeds delta")


def decision_label(inputs: TrackInputs) -> str:
    if inputs.decision is None:
        return NOT_RUN
    return "fine-tune" if inputs.decision.get("fine_tune") else "keep SLM as is"
