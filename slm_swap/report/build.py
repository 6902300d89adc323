"""The pipeline's report: `report.md` and `report.png` from the metric files, predictions and decision.

    write_report(Path("slm_swap/05_eval"), Path("slm_swap/04_ft"), step_times, out_md, out_png)

Per track: hosted vs SLM vs SLM + adapter on every core metric, the decision with its
gaps and delta, n and errors, dataset and model identities, wall times, Langfuse links,
and the most common failure kinds with one example each. Whatever did not run is
written as "not run". The report carries no clock time of its own, so the same inputs
give the same bytes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slm_swap.data.rows import Row
from slm_swap.files import write_bytes_atomic, write_text_atomic
from slm_swap.prompts import TRACKS, load_templates
from slm_swap.report.chart import ChartTrack, render_chart
from slm_swap.report.inputs import (
    ROLE_LABELS,
    ROLES,
    Run,
    RunNames,
    TrackInputs,
    load_dataset_rows,
    load_decision,
    load_track,
    stale_decision_notes,
)
from slm_swap.report.markdown import code, escape, table
from slm_swap.scoring.metrics import CORE_METRICS

NOT_RUN = "not run"
TOP_FAILURES = 5
EXCERPT_CHARS = {"request": 200, "gold": 200, "output": 240}
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


def summary_section(all_inputs: list[TrackInputs]) -> list[str]:
    rows = []
    for inputs in all_inputs:
        metrics = CORE_METRICS[inputs.track]
        hosted = inputs.runs.get("hosted")
        rows.append(
            [
                code(inputs.track, in_table=True),
                decision_label(inputs),
                NOT_RUN if inputs.delta is None else f"{inputs.delta:g}",
                largest_gap(gaps(hosted, inputs.runs.get("slm"), metrics), inputs.delta),
                largest_gap(gaps(hosted, inputs.runs.get("slm_ft"), metrics), inputs.delta),
            ]
        )
    return [
        "## Summary",
        "",
        *table(["track", "decision", "delta", "largest gap hosted \u2212 SLM", "largest gap hosted \u2212 SLM + adapter"], rows),
        "",
    ]


def steps_section(step_times: Mapping[str, float] | None) -> list[str]:
    lines = ["## Wall time per step", ""]
    if not step_times:
        return lines + ["Step times: not recorded (this report was built outside the pipeline).", ""]
    rows = [[escape(step), duration(seconds)] for step, seconds in step_times.items()]
    rows.append(["**total**", duration(sum(step_times.values()))])
    return lines + table(["step", "wall time"], rows) + [""]


def metrics_table(inputs: TrackInputs) -> list[str]:
    metrics = CORE_METRICS[inputs.track]
    hosted = inputs.runs.get("hosted")
    slm_gaps = gaps(hosted, inputs.runs.get("slm"), metrics) or {}
    ft_gaps = gaps(hosted, inputs.runs.get("slm_ft"), metrics) or {}
    rows = []
    for metric in metrics:
        values = [rate(run.metrics[metric]) if (run := inputs.runs.get(role)) else NOT_RUN for role in ROLES]
        rows.append([code(metric, in_table=True), *values, gap_text(slm_gaps.get(metric)), gap_text(ft_gaps.get(metric))])
    header = ["metric", *ROLE_LABELS.values(), "gap hosted \u2212 SLM", "gap hosted \u2212 SLM + adapter"]
    return table(header, rows)


def decision_lines(inputs: TrackInputs) -> list[str]:
    """Paragraphs and lists, each followed by a blank line so no list swallows the next paragraph."""
    if inputs.decision is None:
        return ["Decision: not run (no decision.json entry for this track).", ""]
    if inputs.decision.get("fine_tune"):
        lines = [f"Decision: **fine-tune** \u2014 the SLM trails the hosted model by more than delta = {inputs.delta:g}:", ""]
        lines += [f"- {escape(reason)}" for reason in inputs.decision.get("reasons", [])] + [""]
    else:
        lines = [
            f"Decision: **keep the SLM as is** \u2014 no core metric trails the hosted model by more than delta = {inputs.delta:g}.",
            "",
        ]
    after = gaps(inputs.runs.get("hosted"), inputs.runs.get("slm_ft"), CORE_METRICS[inputs.track])
    if after:
        over = [m for m, g in after.items() if g > inputs.delta + GAP_EPSILON]
        verdict = (
            f"still trails by more than delta on {', '.join(code(m) for m in over)}"
            if over
            else "is within delta of the hosted model on every core metric"
        )
        lines += [f"After fine-tuning: SLM + adapter {verdict}.", ""]
    elif inputs.decision.get("fine_tune"):
        lines += ["After fine-tuning: not run (no SLM + adapter metric file).", ""]
    for note in stale_decision_notes(inputs):
        lines += [f"Note: {escape(note)}", ""]
    return lines


def runs_table(inputs: TrackInputs, root: Path | None) -> list[str]:
    rows = []
    for role in ROLES:
        run = inputs.runs.get(role)
        if run is None:
            rows.append([ROLE_LABELS[role], NOT_RUN, "", "", "", "", "", "", ""])
            continue
        doc, dataset = run.doc, run.doc.get("dataset") or {}
        errors = str(doc.get("errors", "?"))
        if doc.get("error_classes"):
            errors += " (" + ", ".join(f"{escape(k)}: {v}" for k, v in doc["error_classes"].items()) + ")"
        rows.append(
            [
                run.label,
                code(run.path.name, in_table=True),
                str(doc.get("n", "?")),
                errors,
                escape(doc.get("split", "?")),
                code(display_path(dataset.get("path", "unknown"), root), in_table=True),
                short_sha(dataset.get("sha256")),
                duration(doc.get("duration_s")),
                trace_link(doc),
            ]
        )
    return table(["run", "metric file", "n", "errors", "split", "dataset", "sha256", "eval wall time", "Langfuse"], rows)


def models_lines(inputs: TrackInputs) -> list[str]:
    return [
        f"- {ROLE_LABELS[role]}: " + (identity(run.doc.get("model_description") or {}) if (run := inputs.runs.get(role)) else NOT_RUN)
        for role in ROLES
    ]


def manifest_lines(inputs: TrackInputs) -> list[str]:
    if inputs.manifest is None:
        return [
            "Training manifest: "
            + ("not run" if inputs.decision is None or inputs.decision.get("fine_tune") else "not needed (decision: keep)")
            + "."
        ]
    lines = [f"Training manifest: {code(inputs.manifest_path)}"]
    for key, value in inputs.manifest.items():
        if key == "langfuse":
            lines.append(f"- Langfuse: {trace_link(inputs.manifest)}")
        elif isinstance(value, (str, int, float, bool)) and len(str(value)) <= 100:
            lines.append(f"- {escape(key)}: {code(str(value)[:12] if key.endswith('sha256') else value)}")
        elif isinstance(value, dict) and value and len(value) <= 6 and all(isinstance(v, (int, float, str)) for v in value.values()):
            shown = {k: str(v)[:12] if key.endswith("sha256") else v for k, v in value.items()}
            lines.append(f"- {escape(key)}: " + code(", ".join(f"{k}={v}" for k, v in shown.items())))
    return lines


def request_excerpt(prompt: str, track: str) -> str:
    """The user's request, which ends every prompt; the tool list before it is the same for many rows."""
    marker = load_templates()[track].split("{user_text}")[0].split("{tools}")[-1]
    position = prompt.rfind(marker) if marker.strip() else -1
    return prompt[position + len(marker) :] if position >= 0 else "\u2026" + prompt[-EXCERPT_CHARS["request"] :]


def example_run(inputs: TrackInputs, kind: str) -> Run:
    """The run with the most rows of this kind; ties go to the SLM side, which the decision is about."""
    order = [inputs.runs[role] for role in reversed(ROLES) if role in inputs.runs]
    return max(order, key=lambda run: run.failures.get(kind, 0))


def failure_example(inputs: TrackInputs, kind: str, datasets: dict[str, tuple[dict[str, Row], str | None]], root: Path | None) -> list[str]:
    """One failed row of this kind; `datasets` caches each run's rows, so a dataset is read and hashed once."""
    run = example_run(inputs, kind)
    if run.predictions is None:
        return [f"- example: not available ({code(run.predictions_path.name)} not found)"]
    record = next((p for p in sorted(run.predictions, key=lambda p: p["id"]) if p.get("failure") == kind), None)
    if record is None:
        return ["- example: not available (no prediction row carries this failure)"]
    lines = [f"- example from {run.label}, row {code(record['id'])}:"]
    if run.role not in datasets:
        datasets[run.role] = load_dataset_rows(run, root)
    rows, problem = datasets[run.role]
    row = rows.get(record["id"])
    if row is not None:
        lines.append(f"  - request: {code(request_excerpt(row.prompt, inputs.track), limit=EXCERPT_CHARS['request'])}")
        lines.append(f"  - gold: {code(row.completion, limit=EXCERPT_CHARS['gold'])}")
    else:
        lines.append(f"  - request and gold: not available ({escape(problem or 'row not in the dataset')})")
    if record.get("output") is None:
        lines.append(
            f"  - output: none \u2014 {escape(record.get('error_class') or 'error')}: {code(record.get('error') or 'no detail', limit=EXCERPT_CHARS['output'])}"
        )
    else:
        lines.append(f"  - output: {code(record['output'], limit=EXCERPT_CHARS['output'])}")
    return lines


def failures_section(inputs: TrackInputs, root: Path | None) -> list[str]:
    totals: dict[str, int] = {}
    for run in inputs.runs.values():
        for kind, count in run.failures.items():
            totals[kind] = totals.get(kind, 0) + count
    if not totals:
        return ["No failed rows in any run." if inputs.runs else NOT_RUN + "."]
    ranked = sorted(totals, key=lambda kind: (-totals[kind], kind))[:TOP_FAILURES]
    rows = [
        [code(kind, in_table=True), *(str(run.failures.get(kind, 0)) if (run := inputs.runs.get(role)) else NOT_RUN for role in ROLES)]
        for kind in ranked
    ]
    lines = [
        f"Failure kinds over this track's runs, most common first (at most {TOP_FAILURES}; each failed row counts once, by its first failing cause):",
        "",
        *table(["failure kind", *ROLE_LABELS.values()], rows),
        "",
    ]
    datasets: dict[str, tuple[dict[str, Row], str | None]] = {}
    for kind in ranked:
        lines += [f"**{escape(kind)}**", "", *failure_example(inputs, kind, datasets, root), ""]
    return lines


def track_section(inputs: TrackInputs, root: Path | None) -> list[str]:
    lines = [f"## Track {code(inputs.track)}", ""]
    if not inputs.runs and inputs.decision is None:
        return lines + ["Not run: no metric files and no decision for this track.", ""]
    lines += ["### Core metrics", "", *metrics_table(inputs), "", *decision_lines(inputs)]
    lines += ["### Runs", "", *runs_table(inputs, root), "", "Models:", "", *models_lines(inputs), "", *manifest_lines(inputs), ""]
    return lines + ["### Most common failures", "", *failures_section(inputs, root)]


def chart_track(inputs: TrackInputs) -> ChartTrack:
    series = {ROLE_LABELS[role]: (dict(run.metrics) if (run := inputs.runs.get(role)) else None) for role in ROLES}
    n = next((run.doc.get("n") for run in inputs.runs.values()), None)
    return ChartTrack(inputs.track, CORE_METRICS[inputs.track], series, inputs.delta, n)


def render_markdown(all_inputs: list[TrackInputs], step_times: Mapping[str, float] | None, chart_name: str, root: Path | None) -> str:
    lines = [
        "# SLM Swap report",
        "",
        "Can the local small model replace the hosted one? Rates are shares of the evaluated rows (higher is better); "
        "a gap is hosted minus the other model, so a positive gap means the hosted model is ahead.",
        "",
        f"![core metrics per track](<{chart_name}>)",
        "",
    ]
    lines += summary_section(all_inputs) + steps_section(step_times)
    for inputs in all_inputs:
        lines += track_section(inputs, root)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(
    eval_dir: Path,
    ft_dir: Path,
    step_times: dict[str, float] | None,
    out_md: Path,
    out_png: Path,
    *,
    names: RunNames = RunNames(),
    tracks: tuple[str, ...] = TRACKS,
    root: Path | None = None,
) -> None:
    """Write the Markdown report and its chart; `root` resolves dataset paths recorded relative to the repository.

    Raises ReportInputError when an input file exists but is unusable; missing inputs are reported as not run.
    """
    decision_doc = load_decision(Path(eval_dir))
    all_inputs = [load_track(Path(eval_dir), Path(ft_dir), track, decision_doc, names) for track in tracks]
    png = render_chart([chart_track(inputs) for inputs in all_inputs])
    chart_name = Path(os.path.relpath(Path(out_png).resolve(), Path(out_md).resolve().parent)).as_posix()
    markdown = render_markdown(all_inputs, step_times, chart_name, root)
    # chart first, report last: a report on disk always has its chart beside it
    write_bytes_atomic(out_png, png)
    write_text_atomic(out_md, markdown)
