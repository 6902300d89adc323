"""The report's chart: per track, grouped bars of every core metric for hosted, SLM and SLM + adapter,
each bar with its 95 % interval as an error bar.

Drawn with matplotlib's Agg backend (no display needed) into PNG bytes, which the
caller writes atomically beside the Markdown report.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
from matplotlib.axes import Axes  # noqa: E402  (the backend is chosen before any drawing module loads)
from matplotlib.figure import Figure  # noqa: E402

SERIES_COLORS = ("#4c72b0", "#dd8452", "#55a868")
DPI = 110


@dataclass(frozen=True)
class ChartTrack:
    track: str
    metrics: tuple[str, ...]
    series: dict[str, dict[str, float] | None]  # label -> metric -> rate; None: that run did not happen
    delta: float | None  # draws the "hosted - delta" line the decision uses, when there was a decision
    n: int | None
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # label -> metric -> 95 % [low, high]


def draw_series(ax: Axes, chart: ChartTrack, index: int, label: str, nothing_ran: bool) -> None:
    """One run's bars, each with its 95 % interval as an error bar and its rate written above the bar's top."""
    width = 0.8 / max(len(chart.series), 1)
    values = chart.series[label]
    offsets = [m + (index - (len(chart.series) - 1) / 2) * width for m in range(len(chart.metrics))]
    color = SERIES_COLORS[index % len(SERIES_COLORS)]
    if values is None:  # nothing drawn, so nothing in the legend: the panel says "not run" instead
        ax.bar(offsets, [0.0] * len(chart.metrics), width * 0.95, color=color)
        if not nothing_ran:
            for x in offsets:
                ax.text(x, 0.02, "not run", rotation=90, ha="center", va="bottom", fontsize=7, color="grey")
        return
    heights = [values[m] for m in chart.metrics]
    bounds = [chart.intervals.get(label, {}).get(m, (values[m], values[m])) for m in chart.metrics]
    # asymmetric: how far the interval reaches below and above each bar (never negative, whatever the rounding)
    yerr = [[max(h - low, 0.0) for h, (low, _) in zip(heights, bounds)], [max(high - h, 0.0) for h, (_, high) in zip(heights, bounds)]]
    ax.bar(offsets, heights, width * 0.95, label=label, color=color, yerr=yerr, capsize=3, error_kw={"elinewidth": 1, "ecolor": "#333333"})
    for x, height, (_, high) in zip(offsets, heights, bounds):
        ax.text(x, max(height, high) + 0.01, f"{height:.2f}", ha="center", va="bottom", fontsize=7)


def draw_track(ax: Axes, chart: ChartTrack) -> None:
    labels = list(chart.series)
    ax.set_title(chart.track + (f" (n={chart.n})" if chart.n is not None else ""))
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("rate (whiskers: 95 % interval)")
    ax.set_xticks(range(len(chart.metrics)), [m.removesuffix("_rate") for m in chart.metrics])
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    nothing_ran = all(values is None for values in chart.series.values())
    if nothing_ran:
        ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", fontsize=14, color="grey")
    for index, label in enumerate(labels):
        draw_series(ax, chart, index, label, nothing_ran)
    hosted = chart.series.get(labels[0]) if labels else None
    if chart.delta is not None and hosted is not None:
        # only where the bar is on the chart (a hosted rate below delta puts it under 0), and labelled only if drawn,
        # so the legend never lists a line no panel shows
        drawn = [
            ax.hlines(hosted[metric] - chart.delta, m - 0.42, m + 0.42, colors="black", linestyles="dashed", linewidth=1)
            for m, metric in enumerate(chart.metrics)
            if hosted[metric] - chart.delta >= 0
        ]
        if drawn:
            drawn[-1].set_label(f"hosted \u2212 delta ({chart.delta:g}): the decision's bar")


def chart_figure(tracks: Sequence[ChartTrack]) -> Figure:
    """One panel per track, side by side; a bare Figure keeps pyplot's global state out."""
    figure = Figure(figsize=(5.5 * max(len(tracks), 1), 4.6), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, max(len(tracks), 1), squeeze=False)[0]
    for ax, chart in zip(axes, tracks):
        draw_track(ax, chart)
    figure.suptitle("SLM Swap: hosted vs SLM vs SLM + adapter (core metrics with 95 % intervals, higher is better)")
    # one legend below the panels: a legend inside an axes hides the bars it explains
    legend: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    runs = {label for chart in tracks for label in chart.series}
    labels = sorted(legend, key=lambda label: label not in runs)  # the runs first, then the delta line
    if labels:
        figure.legend([legend[label] for label in labels], labels, loc="outside lower center", ncols=len(labels), fontsize=9, frameon=False)
    return figure


def render_chart(tracks: Sequence[ChartTrack]) -> bytes:
    """PNG bytes of `chart_figure`."""
    buffer = io.BytesIO()
    chart_figure(tracks).savefig(buffer, format="png")
    return buffer.getvalue()
