"""The pipeline's report: `report.md` and `report.png` from the metric files, predictions and decision.

    write_report(Path("slm_swap/05_eval"), Path("slm_swap/04_ft"), step_times, out_md, out_png)

Per track: the decision's verdict in words, hosted vs SLM vs SLM + adapter on every core metric with
95 % intervals, the paired gaps with their intervals and McNemar p, the decision with its rule and
delta, n and errors, dataset and model identities, wall times, Langfuse links, and the most common
failure kinds with one example each. Whatever did not run is
written as "not run". The report carries no clock time of its own, so the same inputs
give the same bytes. The pieces: `cells` (one value), `tables` (a track's tables),
`examples` (failure kinds and examples), `sections` (the summary and each track); then each track's own
section (`Track.report_section`: the agent track's runs, each failure kind shown at the step where its episode
went wrong), after the row tracks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from slm_swap.files import write_bytes_atomic, write_text_atomic
from slm_swap.report.chart import ChartTrack, render_chart
from slm_swap.report.inputs import ROLE_LABELS, ROLES, RunNames, TrackInputs, load_decision, load_track
from slm_swap.report.routing import routing_section
from slm_swap.report.sections import steps_section, summary_section, track_section
from slm_swap.tracks import registry
from slm_swap.tracks.rows.definitions import TRACK_NAMES, get_track

DEFAULT_NAMES = RunNames()


def chart_track(inputs: TrackInputs) -> ChartTrack:
    metrics = get_track(inputs.track).core_metrics
    series = {ROLE_LABELS[role]: (dict(run.metrics) if (run := inputs.runs.get(role)) else None) for role in ROLES}
    intervals = {run.label: {m: run.interval(m) for m in metrics} for run in inputs.runs.values()}
    n = next((run.doc.get("n") for run in inputs.runs.values()), None)
    return ChartTrack(inputs.track, metrics, series, inputs.delta, n, intervals)


def render_markdown(
    all_inputs: list[TrackInputs],
    step_times: Mapping[str, float] | None,
    chart_name: str,
    root: Path | None,
    track_lines: list[str] = (),
    routing: list[str] = (),
) -> str:
    lines = [
        "# SLM Swap report",
        "",
        "Can the local small model replace the hosted one? Rates are shares of the evaluated rows (higher is better); "
        "a gap is hosted minus the other model, so a positive gap means the hosted model is ahead. "
        "Brackets are 95 % intervals: Wilson's for a rate, the paired (Bonett & Price) interval for a gap between "
        "two models on the same rows; p is the exact McNemar test on the rows where the two disagree.",
        "",
        f"![core metrics per track](<{chart_name}>)",
        "",
    ]
    lines += summary_section(all_inputs) + steps_section(step_times)
    for inputs in all_inputs:
        lines += track_section(inputs, root)
    lines += list(routing)
    lines += list(track_lines)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(
    eval_dir: Path,
    ft_dir: Path,
    step_times: dict[str, float] | None,
    out_md: Path,
    out_png: Path,
    *,
    names: RunNames = DEFAULT_NAMES,
    tracks: tuple[str, ...] = TRACK_NAMES,
    root: Path | None = None,
) -> None:
    """Write the Markdown report and its chart; `root` resolves dataset paths recorded relative to the repository.

    Raises ReportInputError when an input file exists but is unusable; missing inputs are reported as not run.
    """
    decision_doc = load_decision(Path(eval_dir))
    all_inputs = [load_track(Path(eval_dir), Path(ft_dir), track, decision_doc, names) for track in tracks]
    png = render_chart([chart_track(inputs) for inputs in all_inputs])
    chart_name = Path(os.path.relpath(Path(out_png).resolve(), Path(out_md).resolve().parent)).as_posix()
    routing = routing_section(Path(eval_dir), tracks)
    markdown = render_markdown(all_inputs, step_times, chart_name, root, track_sections(Path(eval_dir)), routing)
    # chart first, report last: a report on disk always has its chart beside it
    write_bytes_atomic(out_png, png)
    write_text_atomic(out_md, markdown)


def track_sections(eval_dir: Path) -> list[str]:
    """Every track's own report section (`Track.report_section`), in the registry's order."""
    return [line for name in registry.track_names() for line in registry.get_track(name).report_section(eval_dir)]
