"""A replay that selects rows or tasks its predictions do not hold stops with the likely fix: the `--limit` of
the run that wrote them (the demo's 8 rows), or the `--dataset` its metric file names (the Phase II loop's tasks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from slm_swap.tracks.agent.episodes.scoring import TaskResult
from slm_swap.tracks.agent.episodes.trajectory import Trajectory
from slm_swap.tracks.agent.run.records import TaskRecord

REPO = Path(__file__).resolve().parents[2]


def run_evals(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider", "--model=replay", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_replay_of_the_first_rows_names_the_limit(tmp_path: Path, langfuse_env: object) -> None:
    predictions = tmp_path / "toolcall_slm.predictions.jsonl"
    lines = (REPO / "tests" / "fixtures" / "replay" / "toolcall.predictions.jsonl").read_text(encoding="utf-8").splitlines()
    predictions.write_text("\n".join(lines[:8]) + "\n", encoding="utf-8")  # the demo's 8 rows
    done = run_evals("-k", "toolcall", f"--predictions={predictions}", f"--out-dir={tmp_path / 'out'}")
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no prediction for 192 selected row(s)" in done.stdout + done.stderr
    assert "run with `--limit 8`: the predictions cover 8 rows" in done.stdout + done.stderr
    again = run_evals("-k", "toolcall", f"--predictions={predictions}", f"--out-dir={tmp_path / 'out'}", "--limit", "8")
    assert again.returncode in (0, 1), again.stdout[-2000:]  # 1: rows that fail, a result


def test_agent_replay_names_the_dataset_of_the_stored_run(tmp_path: Path, langfuse_env: object) -> None:
    task_id = "multi_turn_base_0"
    record = TaskRecord(TaskResult(task_id, True, [True], steps=1), Trajectory(task_id, "multi_turn_base", "toolcall", ended="complete"))
    predictions = tmp_path / "agent_slm_toolcall.predictions.jsonl"
    predictions.write_text(json.dumps(record.to_json()) + "\n", encoding="utf-8")
    tasks = "slm_swap/05_eval/agent_tasks_test.jsonl"
    (tmp_path / "agent_slm_toolcall.json").write_text(json.dumps({"track": "agent", "metrics": {}, "dataset": {"path": tasks}}))
    done = run_evals("-k", "agent", "--arm", "toolcall", f"--predictions={predictions}", f"--out-dir={tmp_path / 'out'}")
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "selected task(s)" in output and f"from a run over `--dataset {tasks}`: run with `--dataset {tasks}`" in output
