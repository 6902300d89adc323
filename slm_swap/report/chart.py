"""The report's chart: per track, grouped bars of every core metric for hosted, SLM and SLM + adapter.

Drawn with matplotlib's Agg backend (no display needed) into PNG bytes, which the
caller writes atomically beside the Markdown report.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

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


def draw_track(ax: Axes, chart: ChartTrack) -> None:
    labels = list(chart.series)
    width = 0.8 / max(len(labels), 1)
    ax.set_title(chart.track + (f" (n={chart.n})" if chart.n is not None else ""))
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("rate")
    ax.set_xticks(range(len(chart.metrics)), [m.removesuffix("_rate") for m in chart.metrics])
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    nothing_ran = all(values is None for values in chart.series.values())
    if nothing_ran:
        ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", fontsize=14, color="grey")
    for index, label in enumerate(labels):
        values = chart.series[label]
        offsets = [m + (index - (len(labels) - 1) / 2) * width for m in range(len(chart.metrics))]
        heights = [values[m] for m in chart.metrics] if values is not None else [0.0] * len(chart.metrics)
        bars = ax.bar(offsets, heights, width * 0.95, label=label, color=SERIES_COLORS[index % len(SERIES_COLORS)])
        if values is not None:
            ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
        elif not nothing_ran:
            for x in offsets:
                ax.text(x, 0.02, "not run", rotation=90, ha="center", va="bottom", fontsize=7, color="grey")
    hosted = chart.series.get(labels[0]) if labels else None
    if chart.delta is not None and hosted is not None:
        for m, metric in enumerate(chart.metrics):
            line = ax.hlines(hosted[metric] - chart.delta, m - 0.42, m + 0.42, colors="black", linestyles="dashed", linewidth=1)
        line.set_label(f"hosted \u2212 delta ({chart.delta:g}): the decision's bar")


def render_chart(tracks: Sequence[ChartTrack]) -> bytes:
    """PNG bytes with one panel per track, side by side; a bare Figure keeps pyplot's global state out."""
    figure = Figure(figsize=(5.5 * max(len(tracks), 1), 4.6), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, max(len(tracks), 1), squeeze=False)[0]
    for ax, chart in zip(axes, tracks):
        draw_track(ax, chart)
    figure.suptitle("SLM Swap: hosted vs SLM vs SLM + adapter (core metrics, higher is better)")
    # one legend below the panels: a legend inside an axes hides the bars it explains
    legend: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    runs = {label for chart in tracks for label in chart.series}
    labels = sorted(legend, key=lambda label: label not in runs)  # the runs first, then the delta line
    if labels:
        figure.legend([legend[label] for label in labels], labels, loc="outside lower center", ncols=len(labels), fontsize=9, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
