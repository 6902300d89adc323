"""A track's tables and lists: core metrics per run with gaps, the runs, the models, the training manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slm_swap.report.cells import (
    NOT_RUN,
    decision_metric,
    display_path,
    duration,
    gap_text,
    gaps,
    identity,
    paired_cell,
    rate_cell,
    settles_delta,
    short_sha,
    trace_link,
)
from slm_swap.report.inputs import ROLE_LABELS, ROLES, TrackInputs
from slm_swap.report.markdown import code, escape, table
from slm_swap.tracks.rows.definitions import get_track


def slm_gap_cell(inputs: TrackInputs, metric: str, point: float | None) -> str:
    """Hosted - SLM: the decision's paired gap with its interval and McNemar p, else the point gap."""
    entry = decision_metric(inputs, metric)
    if "gap_ci95" in entry:
        return paired_cell(entry.get("gap"), entry["gap_ci95"], entry.get("mcnemar_p"))
    return gap_text(point)


def after_gain_cell(inputs: TrackInputs, metric: str) -> str:
    """SLM + adapter - SLM on the same rows, paired, as the decision recorded it."""
    entry = decision_metric(inputs, metric)
    return paired_cell(entry.get("after_gain"), entry.get("after_gain_ci95"), entry.get("after_mcnemar_p"))


def metrics_table(inputs: TrackInputs) -> list[str]:
    metrics = get_track(inputs.track).core_metrics
    hosted = inputs.runs.get("hosted")
    slm_gaps = gaps(hosted, inputs.runs.get("slm"), metrics) or {}
    ft_gaps = gaps(hosted, inputs.runs.get("slm_ft"), metrics) or {}
    rows = []
    for metric in metrics:
        rows.append(
            [
                code(metric, in_table=True),
                *(rate_cell(inputs.runs.get(role), metric) for role in ROLES),
                slm_gap_cell(inputs, metric, slm_gaps.get(metric)),
                gap_text(ft_gaps.get(metric)),
                after_gain_cell(inputs, metric),
            ]
        )
    header = [
        "metric",
        *(f"{label} [95 %]" for label in ROLE_LABELS.values()),
        "gap hosted \u2212 SLM [95 %], McNemar p",
        "gap hosted \u2212 SLM + adapter",
        "fine-tuned vs base [95 %], McNemar p",
    ]
    return table(header, rows)


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


def batch_invariance_lines(inputs: TrackInputs) -> list[str]:
    """One line per run that checked batch invariance (`--check-batch-invariance`): rows alone vs batched, what flipped."""
    lines = []
    for role in ROLES:
        run = inputs.runs.get(role)
        block = run.doc.get("batch_invariance") if run is not None else None
        if not isinstance(block, dict) or "rows_compared" not in block:
            continue
        n = block["rows_compared"]
        mode = "batch-invariant" if block.get("batch_invariant") else "default"
        per_check = ", ".join(f"{escape(check)} {count}" for check, count in block.get("flag_flips", {}).items())
        flipped = ", ".join(code(row_id) for row_id in block.get("flag_flipped_rows", []))
        lines.append(
            f"- {ROLE_LABELS[role]}: {n} rows generated again one at a time ({escape(block.get('engine', '?'))} engine, {mode} mode): "
            f"text differs on {block.get('text_flips', '?')}/{n}, flags on {block.get('rows_with_flag_flips', '?')}/{n} ({per_check})"
            + (f"; flag flips on {flipped}" if flipped else "")
        )
    return ["Batch invariance (batched vs one row at a time):", "", *lines, ""] if lines else []


def manifest_lines(inputs: TrackInputs) -> list[str]:
    if inputs.manifest is None:
        return [
            "Training manifest: "
            + (
                "not run"
                if inputs.decision is None or inputs.decision.get("fine_tune")
                else ("not needed (decision: keep)" if settles_delta(inputs) else "not needed (decision: no fine-tuning)")
            )
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
    return lines + training_lines(inputs.manifest)


CURVE_POINTS_SHOWN = 12  # a longer validation curve shows its first and last points


def training_lines(manifest: dict[str, Any]) -> list[str]:
    """The run's size and speed, and its train and validation losses (`training` / `validation` in the manifest)."""
    lines = []
    training, validation = manifest.get("training"), manifest.get("validation")
    if isinstance(training, dict) and isinstance(training.get("optimizer_steps"), int):
        parts = [f"{training['optimizer_steps']} steps"]
        if isinstance(training.get("rows_trained"), int):
            parts.append(f"{training['rows_trained']:,} rows")
        if isinstance(training.get("tokens_per_s"), (int, float)):
            parts.append(f"{training['tokens_per_s']:,.0f} tokens/s")
        if isinstance(training.get("final_train_loss"), (int, float)):
            parts.append(f"final train loss {training['final_train_loss']:.4f}")
        lines.append("- training: " + ", ".join(parts))
    if isinstance(validation, dict) and isinstance(validation.get("loss"), (int, float)):
        text = f"- validation loss: {validation['loss']:.4f}"
        if isinstance(validation.get("rows"), int):
            text += f" on {validation['rows']} val rows"
        curve = [p for p in validation.get("curve") or [] if isinstance(p, dict) and "step" in p and "val_loss" in p]
        if curve:
            points = [f"step {p['step']}: {p['val_loss']:.4f}" for p in curve]
            if len(points) > CURVE_POINTS_SHOWN:
                half = CURVE_POINTS_SHOWN // 2
                points = [*points[:half], f"... {len(points) - 2 * half} more", *points[-half:]]
            text += "; by step: " + ", ".join(points)
        lines.append(text)
    return lines
