"""The v0 pipeline's report times only its own steps: the state file it shares with the Phase II loop also holds
the loop's steps, which belong to report_phase2.md (after the Phase II demo they made report.md say 40 min)."""

from __future__ import annotations

import json
from pathlib import Path

from slm_swap.pipeline.state import PipelineState
from slm_swap.pipeline.steps import Pipeline, PipelineConfig


def test_report_times_only_this_pipelines_steps(tmp_path: Path) -> None:
    eval_dir = tmp_path / "slm_swap" / "05_eval"
    eval_dir.mkdir(parents=True)
    pipeline = Pipeline(PipelineConfig(tmp_path, tmp_path / "model", {"model": "m"}), tools={"report": lambda argv: 0})
    pipeline.state.mark_done("capture toolcall", "f", [], 600.0)  # a Phase II step, recorded in the same state file
    output = eval_dir / "prepared.txt"
    pipeline.step("prepare data", {"a": 1}, [output], lambda: output.write_text("x"))
    pipeline.report()
    assert list(json.loads((eval_dir / "step_times.json").read_text())) == ["prepare data"]
    assert "capture toolcall" in PipelineState.load(eval_dir / "pipeline_state.json").wall_times()  # kept for the loop
