"""The report's sections: the summary over all tracks, wall time per step, and each track's section."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from slm_swap.report.cells import GAP_EPSILON, NOT_RUN, decision_label, duration, gaps, largest_gap, settles_delta, verdict_label
from slm_swap.report.examples import failures_section
from slm_swap.report.inputs import TrackInputs, stale_decision_notes
from slm_swap.report.markdown import code, escape, table
from slm_swap.report.tables import batch_invariance_lines, manifest_lines, metrics_table, models_lines, runs_table
from slm_swap.stats.intervals import Verdict
from slm_swap.tracks.rows.definitions import get_track


def summary_section(all_inputs: list[TrackInputs]) -> list[str]:
    rows = []
    for inputs in all_inputs:
        metrics = get_track(inputs.track).core_metrics
        hosted = inputs.runs.get("hosted")
        rows.append(
            [
                code(inputs.track, in_table=True),
                verdict_label(inputs),
                decision_label(inputs),
                NOT_RUN if inputs.delta is None else f"{inputs.delta:g}",
                largest_gap(gaps(hosted, inputs.runs.get("slm"), metrics), inputs.delta if settles_delta(inputs) else None, inputs),
                largest_gap(gaps(hosted, inputs.runs.get("slm_ft"), metrics), inputs.delta if settles_delta(inputs) else None),
            ]
        )
    header = ["track", "verdict", "decision", "delta", "largest gap hosted \u2212 SLM [95 %]", "largest gap hosted \u2212 SLM + adapter"]
    return ["## Summary", "", *table(header, rows), ""]


def steps_section(step_times: Mapping[str, float] | None) -> list[str]:
    lines = ["## Wall time per step", ""]
    if not step_times:
        return lines + ["Step times: not recorded (this report was built outside the pipeline).", ""]
    rows = [[escape(step), duration(seconds)] for step, seconds in step_times.items()]
    rows.append(["**total**", duration(sum(step_times.values()))])
    return lines + table(["step", "wall time"], rows) + [""]


def verdict_lines(inputs: TrackInputs) -> list[str]:
    """The headline: what the intervals support, in the decision's own words (older decisions have no verdict)."""
    decision = inputs.decision or {}
    verdict = decision.get("verdict")
    if verdict is None:
        return []
    text = str(decision.get("verdict_text") or "no verdict text recorded").removeprefix(f"{verdict}: ")
    lines = [f"Verdict: **{verdict_label(inputs)}** \u2014 {escape(text)}", ""]
    if verdict == Verdict.INCONCLUSIVE.value:
        needed, n = decision.get("rows_needed"), next((run.doc.get("n") for run in inputs.runs.values()), None)
        now = f" (this run has n = {n})" if n is not None else ""
        if isinstance(needed, int):
            lines += [f"Rows needed: about {needed} paired rows would resolve it{now}.", ""]
        else:
            lines += [f"Rows needed: not estimated{now}.", ""]
    return lines


# fine_tune = 0 under a verdict that shows nothing to keep: say why nothing trains, never "keep"
UNSETTLED_ACTIONS = {
    Verdict.NO_BASELINE.value: "no fine-tuning: with no baseline there is nothing to match",
    Verdict.INCONCLUSIVE.value: "no fine-tuning, yet the SLM is not shown to be close enough either",
}


def fine_tune_line(inputs: TrackInputs) -> str:
    decision = inputs.decision or {}
    rule, delta, trails = decision.get("rule"), inputs.delta, bool(decision.get("fine_tune"))
    if rule is None:  # a decision from before the verdict: its own words are the headline
        if trails:
            return f"Decision: **fine-tune** \u2014 the SLM trails the hosted model by more than delta = {delta:g}:"
        return f"Decision: **keep the SLM as is** \u2014 no core metric trails the hosted model by more than delta = {delta:g}."
    action = (
        "fine-tune the SLM"
        if trails
        else "keep the SLM as is"
        if settles_delta(inputs)
        else UNSETTLED_ACTIONS.get(decision.get("verdict"), "")
    )
    return f"Decision: fine\\_tune = {int(trails)} ({action}), set by the {escape(rule)} rule with delta = {delta:g}" + (
        ":" if trails and decision.get("reasons") else "."
    )


def decision_lines(inputs: TrackInputs) -> list[str]:
    """Paragraphs and lists, each followed by a blank line so no list swallows the next paragraph."""
    if inputs.decision is None:
        return ["Decision: not run (no decision.json entry for this track).", ""]
    lines = [*verdict_lines(inputs), fine_tune_line(inputs), ""]
    if inputs.decision.get("fine_tune"):
        lines += [f"- {escape(reason)}" for reason in inputs.decision.get("reasons", [])] + [""]
    after = gaps(inputs.runs.get("hosted"), inputs.runs.get("slm_ft"), get_track(inputs.track).core_metrics)
    if after and not settles_delta(inputs):
        lines += [
            f"After fine-tuning: SLM + adapter measured (below); the verdict ({verdict_label(inputs)}) compares nothing with delta.",
            "",
        ]
    elif after:
        over = [m for m, g in after.items() if g > inputs.delta + GAP_EPSILON]
        verdict = (
            f"still trails by more than delta on {', '.join(code(m) for m in over)}"
            if over
            else "is within delta of the hosted model on every core metric"
        )
        lines += [f"After fine-tuning: SLM + adapter {verdict}.", ""]
    elif inputs.decision.get("fine_tune"):
        lines += ["After fine-tuning: not run (no SLM + adapter metric file).", ""]
    for caveat in inputs.decision.get("caveats", []):
        lines += [f"Caveat: {escape(caveat)}", ""]
    if inputs.decision.get("after_comparison_error"):
        lines += [f"Fine-tuned vs base: no paired comparison ({escape(inputs.decision['after_comparison_error'])}).", ""]
    for note in stale_decision_notes(inputs):
        lines += [f"Note: {escape(note)}", ""]
    return lines


def track_section(inputs: TrackInputs, root: Path | None) -> list[str]:
    lines = [f"## Track {code(inputs.track)}", ""]
    if not inputs.runs and inputs.decision is None:
        return lines + ["Not run: no metric files and no decision for this track.", ""]
    lines += [*decision_lines(inputs), "### Core metrics", "", *metrics_table(inputs), ""]
    lines += ["### Runs", "", *runs_table(inputs, root), "", "Models:", "", *models_lines(inputs), "", *batch_invariance_lines(inputs)]
    lines += [*manifest_lines(inputs), ""]
    return lines + ["### Most common failures", "", *failures_section(inputs, root)]
