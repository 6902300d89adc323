"""Pipeline state: a step is skipped only when its outputs are the ones it wrote; an overwritten output runs it again.

The steps here are real `Pipeline.step`s whose action writes the file a step would (the full demo takes minutes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.files import write_json_atomic
from slm_swap.layout import pipeline_state_path
from slm_swap.pipeline.state import PipelineState
from slm_swap.pipeline.steps import Pipeline, PipelineConfig

STEP = "evaluate toolcall_slm"


def pipeline(repo: Path) -> Pipeline:
    """A pipeline over `repo` as a fresh `tools/pipeline.py` run would load it (its state read from disk)."""
    return Pipeline(PipelineConfig(repo=repo, slm_model_path=repo / "model", hosted_identity={}), tools={})


def evaluate(repo: Path, n: int = 8) -> bool:
    """The evaluation step: writes an n-row metric file; True when it ran."""
    metric = pipeline(repo).config.eval_dir / "toolcall_slm.json"
    return pipeline(repo).step(STEP, {"limit": None}, [metric], lambda: write_json_atomic(metric, {"n": n}))


@pytest.fixture
def evaluated(tmp_path: Path) -> Path:
    assert evaluate(tmp_path) is True
    return tmp_path / "slm_swap" / "05_eval" / "toolcall_slm.json"


def test_a_step_with_the_same_inputs_and_untouched_outputs_is_skipped(evaluated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert evaluate(evaluated.parents[2]) is False
    assert f"==== {STEP}: skipped, outputs exist for the same inputs ====" in capsys.readouterr().out


def test_an_output_another_run_overwrote_runs_the_step_again_and_says_why(evaluated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evaluated.write_text(json.dumps({"n": 2}))  # a gate run's `--limit 2` result over the pipeline's own file
    capsys.readouterr()
    assert evaluate(evaluated.parents[2]) is True
    assert f"==== {STEP}: running ({evaluated} changed since this step wrote it) ====" in capsys.readouterr().out
    assert json.loads(evaluated.read_text()) == {"n": 8}
    assert evaluate(evaluated.parents[2]) is False  # what it wrote this time is recorded


def test_a_deleted_output_runs_the_step_again(evaluated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evaluated.unlink()
    capsys.readouterr()
    assert evaluate(evaluated.parents[2]) is True
    assert f"==== {STEP}: running ({evaluated} is missing) ====" in capsys.readouterr().out


def test_a_state_file_without_output_hashes_runs_the_step_again(evaluated: Path) -> None:
    state_path = pipeline_state_path(evaluated.parent)
    state = json.loads(state_path.read_text())
    state["steps"][STEP]["outputs"] = [str(evaluated)]  # as an older pipeline recorded them: paths only
    state_path.write_text(json.dumps(state))
    assert PipelineState.load(state_path).why_run(STEP, pipeline(evaluated.parents[2]).state.steps[STEP]["fingerprint"]) == (
        "its outputs were recorded without their hashes"
    )


def test_the_pipeline_rewriting_its_own_output_is_recorded_not_rerun(evaluated: Path) -> None:
    state = PipelineState.load(pipeline_state_path(evaluated.parent))
    fingerprint = state.steps[STEP]["fingerprint"]
    evaluated.write_text(json.dumps({"n": 8, "after": True}))  # as decide_after completes decision.json
    assert state.why_run(STEP, fingerprint) == f"{evaluated} changed since this step wrote it"
    state.refresh_outputs(STEP)
    assert PipelineState.load(state.path).why_run(STEP, fingerprint) is None
