"""The agent track's golden runs: gold episodes and a replay of committed trajectories give the committed files.

Written before the track abstraction (issue 31) by the harness as it stood then, so moving the agent track into
its own slice must leave its metric file and its predictions unchanged, byte for byte, once what differs per run
by design is masked (timestamps and durations, the trace, paths under the temporary folder).

- `gold`: six test tasks per arm answered by the ground truth inside the sandbox; every task passes.
- `replay`: those six tasks' gold trajectories (`tests/fixtures/agent_golden/<arm>.replay.jsonl`) with three edits, so
  the re-scoring is seen failing too: task 2's first call has a wrong argument, task 4's last turn stops after its
  first step, task 5's steps carry token usage.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "agent_golden"
PER_RUN = ("started_at", "finished_at", "duration_s", "langfuse", "pytest_args", "predictions_path")
PER_STEP = ("started_at", "generation_s", "execution_s")


def masked_metric_text(path: Path) -> str:
    document = json.loads(path.read_text(encoding="utf-8"))
    for key in PER_RUN:
        document[key] = "<per run>"
    document["dataset"]["path"] = Path(document["dataset"]["path"]).relative_to(REPO).as_posix()
    description = document.get("model_description") or {}
    if "path" in description:  # replay names the file it read (inside the checkout)
        description["path"] = Path(description["path"]).resolve().relative_to(REPO).as_posix()
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def masked_step(step: dict[str, Any]) -> dict[str, Any]:
    return {key: "<per run>" if key in PER_STEP else value for key, value in step.items()}


def masked_predictions_text(path: Path) -> str:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for turn in record["trajectory"]["turns"]:
            turn["steps"] = [masked_step(step) for step in turn["steps"]]
        lines.append(json.dumps(record, sort_keys=True))
    return "\n".join(lines) + "\n"


def run_agent(arm: str, model: str, out_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider", "-k", "agent"]
    command += [f"--model={model}", f"--arm={arm}", "--limit=6", f"--out-dir={out_dir}", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("arm", ["codeact", "toolcall"])
@pytest.mark.parametrize("model", ["gold", "replay"])
def test_agent_run_is_byte_identical_to_the_committed_one(arm: str, model: str, tmp_path: Path, langfuse_env: object) -> None:
    extra = [f"--predictions={(FIXTURES / f'{arm}.replay.jsonl').relative_to(REPO)}"] if model == "replay" else []
    done = run_agent(arm, model, tmp_path, *extra)
    assert done.returncode == (0 if model == "gold" else 1), done.stdout + done.stderr  # replay holds failing tasks by design
    expected = FIXTURES / "expected"
    name = f"agent_{model}_{arm}"
    got_predictions = masked_predictions_text(tmp_path / f"{name}.predictions.jsonl")
    assert got_predictions == (expected / f"{name}.predictions.jsonl").read_text(encoding="utf-8")
    assert masked_metric_text(tmp_path / f"{name}.json") == (expected / f"{name}.json").read_text(encoding="utf-8")
