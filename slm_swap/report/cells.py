"""One cell or phrase of the report: rates, gaps, wall times, dataset paths, model identities, trace links."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slm_swap.report.inputs import Run, TrackInputs
from slm_swap.report.markdown import code, escape
from slm_swap.stats.intervals import Verdict

NOT_RUN = "not run"
VERDICT_NAMES = {
    Verdict.NO_BASELINE.value: "no baseline",
    Verdict.SLM_TRAILS.value: "SLM trails",
    Verdict.SLM_MATCHES.value: "SLM matches",
    Verdict.INCONCLUSIVE.value: "inconclusive",
}
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


def gap_text(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def rate_cell(run: Run | None, metric: str) -> str:
    """A run's rate with its 95 % interval, e.g. `0.750 [0.409, 0.929]`."""
    if run is None:
        return NOT_RUN
    low, high = run.interval(metric)
    return f"{run.metrics[metric]:.3f} [{low:.3f}, {high:.3f}]"


def p_text(value: object) -> str:
    if not isinstance(value, (int, float)):
        return ""
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def paired_cell(value: object, ci: object, p: object) -> str:
    """A paired difference with its 95 % interval and exact McNemar p, e.g. `+0.120 [+0.050, +0.190], p=0.003`."""
    if not isinstance(value, (int, float)):
        return ""
    text = f"{value:+.3f}"
    if isinstance(ci, list) and len(ci) == 2:
        text += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
    return text + (f", {p_text(p)}" if p_text(p) else "")


def decision_metric(inputs: TrackInputs, metric: str) -> dict[str, Any]:
    """This metric's entry in the track's decision, {} when there is none."""
    entry = ((inputs.decision or {}).get("metrics") or {}).get(metric)
    return entry if isinstance(entry, dict) else {}


def verdict_label(inputs: TrackInputs) -> str:
    if inputs.decision is None:
        return NOT_RUN
    verdict = inputs.decision.get("verdict")
    return "not recorded" if verdict is None else VERDICT_NAMES.get(str(verdict), escape(verdict))


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


def largest_gap(values: dict[str, float] | None, delta: float | None, inputs: TrackInputs | None = None) -> str:
    """The largest point gap, with its paired 95 % interval from the decision when `inputs` has one."""
    if not values:
        return NOT_RUN
    metric = max(values, key=lambda m: values[m])
    ci = decision_metric(inputs, metric).get("gap_ci95") if inputs is not None else None
    interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if isinstance(ci, list) and len(ci) == 2 else ""
    text = f"{values[metric]:+.3f}{interval} ({escape(metric.removesuffix('_rate'))})"
    if delta is None:
        return text
    return text + (" within delta" if values[metric] <= delta + GAP_EPSILON else " exceeds delta")


def settles_delta(inputs: TrackInputs) -> bool:
    """Whether the verdict lets the report compare gaps with delta: `no_baseline` (nothing to match) and
    `inconclusive` (the rows cannot tell) do not, so no "keep" or "within delta" is written beside them."""
    verdict = (inputs.decision or {}).get("verdict")
    return verdict not in (Verdict.NO_BASELINE.value, Verdict.INCONCLUSIVE.value)


def decision_label(inputs: TrackInputs) -> str:
    if inputs.decision is None:
        return NOT_RUN
    if inputs.decision.get("fine_tune"):
        return "fine-tune"
    return "keep SLM as is" if settles_delta(inputs) else "no fine-tuning"
