"""Each report covers its own runs: the chart's legend lists only what is drawn; report.md leaves out replays of
agent runs, report_phase2.md shows only the loop's own runs; the pipeline times only its own steps."""

from __future__ import annotations

import json
from pathlib import Path

from slm_swap.report.chart import ChartTrack, chart_figure
from slm_swap.report.inputs import RunNames
from slm_swap.tracks.agent.report.arms import agent_report
from slm_swap.tracks.agent.report.section import agent_section


def legend_labels(track: ChartTrack) -> list[str]:
    figure = chart_figure([track])
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_legend_lists_no_delta_line_that_no_panel_draws() -> None:
    # the hosted model passes nothing (no_baseline): hosted - delta is below 0, off the chart
    nothing = ChartTrack("toolcall", ("valid_call_rate",), {"hosted": {"valid_call_rate": 0.0}, "SLM": {"valid_call_rate": 0.0}}, 0.02, 8)
    assert not [label for label in legend_labels(nothing) if "delta" in label]
    drawn = ChartTrack("toolcall", ("valid_call_rate",), {"hosted": {"valid_call_rate": 0.5}, "SLM": {"valid_call_rate": 0.4}}, 0.02, 8)
    assert any("delta" in label for label in legend_labels(drawn))


def test_legend_lists_no_run_that_did_not_run() -> None:
    track = ChartTrack("toolcall", ("valid_call_rate",), {"hosted": {"valid_call_rate": 0.5}, "SLM + adapter": None}, None, 8)
    assert legend_labels(track) == ["hosted"]


def agent_metric(eval_dir: Path, model: str, arm: str, tag: str | None = None) -> Path:
    name = f"agent_{model}_{arm}" + (f"_{tag}" if tag else "")
    document = {
        "track": "agent",
        "model": model,
        "arm": arm,
        "n": 0,
        "metrics": {},
        "intervals": {},
        "failures": {},
        "dataset": {"path": "d.jsonl", "sha256": "a" * 64},
    }
    (eval_dir / f"{name}.json").write_text(json.dumps(document))
    (eval_dir / f"{name}.predictions.jsonl").write_text("")
    return eval_dir / f"{name}.json"


def test_report_md_leaves_out_agent_replays(tmp_path: Path) -> None:
    agent_metric(tmp_path, "slm", "toolcall")
    agent_metric(tmp_path, "replay", "toolcall")
    shown = "\n".join(agent_section(tmp_path))
    assert "### agent\\_slm\\_toolcall" in shown and "replay" not in shown


def test_phase2_report_shows_only_the_loops_runs(tmp_path: Path) -> None:
    for model, tag in (("gold", None), ("slm", None), ("slm", "ft"), ("replay", None), ("azure", None)):
        agent_metric(tmp_path, model, "toolcall", tag)
    report = agent_report(tmp_path, RunNames(hosted_model="gold"), {"toolcall": tmp_path / "decision_agent_toolcall.json"}, None)
    runs = [line for line in report.splitlines() if line.startswith("### agent")]
    assert runs == ["### agent\\_gold\\_toolcall", "### agent\\_slm\\_toolcall", "### agent\\_slm\\_toolcall\\_ft"]
