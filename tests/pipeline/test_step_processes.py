"""Each pipeline step runs its tool as a process of its own: what one step sets in its environment never reaches the next."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from slm_swap.layout import Layout, dataset_manifest_path, decision_path, split_path
from slm_swap.pipeline.steps import Pipeline, PipelineConfig, StepFailed
from slm_swap.tracks.rows.definitions import TRACK_NAMES

MARK = "SLM_SWAP_TEST_STEP_MARK"

# Tools shaped like the real ones (build_parser, main, the __main__ guard), so that running them
# in the pipeline's own process, as tools/pipeline.py once did, would let the mark through. They stand in for
# slm_swap.cli.<name> in a package of the same name under the repo, which the steps' processes import first.
PREPARE_DATA = f"""
import argparse, os, sys
from pathlib import Path

def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("outputs", nargs="*")
    return parser

def main(args):
    os.environ[{MARK!r}] = "set by prepare_data"  # as finetune sets NCCL_* and HF_HUB_OFFLINE
    for name in args.outputs:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("{{}}")
    print("prepare_data wrote", len(args.outputs), "files")
    return 0

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
"""

DECIDE = f"""
import argparse, json, os, sys
from pathlib import Path

def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracks", nargs="+")
    parser.add_argument("--delta")
    parser.add_argument("--eval-dir", type=Path)
    return parser

def main(args):
    seen = {{"mark": os.environ.get({MARK!r}), "given": os.environ.get("SLM_SWAP_TEST_GIVEN")}}
    args.eval_dir.mkdir(parents=True, exist_ok=True)
    (args.eval_dir / "decision.json").write_text(json.dumps(seen))
    return 0

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
"""

REFUSING = """
import argparse, sys

def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--track")
    return parser

def main(args):
    print("refused: bad input", file=sys.stderr)
    return 3

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    tools = tmp_path / "slm_swap" / "cli"
    tools.mkdir(parents=True)
    for package in (tools.parent, tools):
        (package / "__init__.py").write_text("", encoding="utf-8")
    for name, text in (("prepare_data", PREPARE_DATA), ("decide", DECIDE), ("finetune", REFUSING), ("report", REFUSING)):
        (tools / f"{name}.py").write_text(text, encoding="utf-8")
    return tmp_path


def pipeline(repo: Path) -> Pipeline:
    dataset_dir = Layout(repo).dataset_dir
    outputs = [dataset_manifest_path(dataset_dir)] + [
        split_path(dataset_dir, track, split) for track in TRACK_NAMES for split in ("train", "val", "test")
    ]
    config = PipelineConfig(
        repo=repo,
        slm_model_path=repo / "no-model",
        hosted_identity={},
        prepare_args=tuple(str(p) for p in outputs),
        environ={**os.environ, "SLM_SWAP_TEST_GIVEN": "yes"},
    )
    return Pipeline(config)  # the default tools: `python -m slm_swap.cli.<name>` of <repo>, as tools/pipeline.py runs them


def test_an_environment_change_of_one_step_does_not_reach_the_next(repo: Path, monkeypatch, capfd):
    monkeypatch.delenv(MARK, raising=False)
    steps = pipeline(repo)
    steps.prepare()
    decision = steps.decide()
    assert decision == decision_path(Layout(repo).eval_dir)
    seen = json.loads(decision.read_text(encoding="utf-8"))
    assert seen == {"mark": None, "given": "yes"}  # the pipeline's environment reaches the step; the earlier step's change does not
    assert MARK not in os.environ
    assert f"prepare_data wrote {1 + 3 * len(TRACK_NAMES)} files" in capfd.readouterr().out  # the step's output goes to the terminal


def test_a_failing_tool_stops_the_pipeline_with_its_status(repo: Path, capfd):
    with pytest.raises(StepFailed, match=r"^finetune --track toolcall exited with status 3$"):
        pipeline(repo).run_tool("finetune", ["--track", "toolcall"])
    assert "refused: bad input" in capfd.readouterr().err
