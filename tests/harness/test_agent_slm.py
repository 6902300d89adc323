"""`--model=slm` on the agent track with the embedded tiny checkpoint: every open episode's chat rendered with
the checkpoint's template and generated in one batch per step; the run completes and names each failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.scoring.outcomes import AgentFailure

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT_NAME = "smollm2-135m-instruct"
TASKS = ["multi_turn_base_100", "multi_turn_base_64"]  # two turns each and the shortest tool lists of the test split


@pytest.mark.slow
def test_slm_runs_two_tasks_to_the_end_and_records_their_failure_kinds(tmp_path: Path, monkeypatch, langfuse_env) -> None:
    checkpoint = ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)
    monkeypatch.setenv("SLM_MODEL_PATH", str(checkpoint))
    command = [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-k", "agent and (base_100 or base_64)"]
    command += ["--model=slm", "--arm=toolcall", "--max-steps-per-turn=1", "--max-new-tokens=4", "--quantization=none"]
    done = subprocess.run([*command, f"--out-dir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads((tmp_path / "agent_slm_toolcall.json").read_text(encoding="utf-8"))
    assert document["n"] == 2 and document["model_description"]["model_path"] == str(checkpoint)
    assert sum(document["failures"].values()) == 2 - document["passed"]
    assert all(kind in {k.value for k in AgentFailure} for kind in document["failures"])
    records = [json.loads(line) for line in (tmp_path / "agent_slm_toolcall.predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == sorted(TASKS)
    steps = [s for r in records for t in r["trajectory"]["turns"] for s in t["steps"]]
    # one batched generation per step: both tasks' first steps were asked in the same policy call
    assert steps and all(s["usage"]["completion_tokens"] <= 4 and s["usage"]["prompt_tokens"] > 0 for s in steps)
    first = [r["trajectory"]["turns"][0]["steps"][0]["started_at"] for r in records]
    assert first[0] == first[1]
    for record in records:
        if not record["passed"]:
            assert record["failure"] and record["first_failing_turn"] is not None
            assert f"agent task {record['id']} (toolcall) failed: {record['failure']} in turn {record['first_failing_turn']}" in done.stdout
