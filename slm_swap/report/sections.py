"""The report's sections: the summary over all tracks, wall time per step, and each track's section."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from slm_swap.report.cells import GAP_EPSILON, NOT_RUN, decision_label, duration, gaps, largest_gap
from slm_swap.report.examples import failures_section
from slm_swap.report.inputs import TrackInputs, stale_decision_notes
from slm_swap.report.markdown import code, escape, table
from slm_swap.report.tables import manifest_lines, metrics_table, models_lines, runs_table
from slm_swap.tracks import get_track


def summary_section(all_inputs: list[TrackInputs]) -> list[str]:
    rows = []
    for inputs in all_inputs:
        metrics = get_track(inputs.track).core_metrics
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
    after = gaps(inputs.runs.get("hosted"), inputs.runs.get("slm_ft"), get_track(inputs.track).core_metrics)
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


def track_section(inputs: TrackInputs, root: Path | None) -> list[str]:
    lines = [f"## Track {code(inputs.track)}", ""]
    if not inputs.runs and inputs.decision is None:
        return lines + ["Not run: no metric files and no decision for this track.", ""]
    lines += ["### Core metrics", "", *metrics_table(inputs), "", *decision_lines(inputs)]
    lines += ["### Runs", "", *runs_table(inputs, root), "", "Models:", "", *models_lines(inputs), "", *manifest_lines(inputs), ""]
    return lines + ["### Most common failures", "", *failures_section(inputs, root)]
