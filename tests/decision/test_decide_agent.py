"""The agent track in tools/decide.py: task success paired by task, turn success by turn, valid_action_rate beside
the verdict, runs of different arms refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slm_swap.finetune.guard import FinetuneRefused, check_decision
from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.episodes.scoring import TaskResult
from slm_swap.tracks.agent.episodes.trajectory import Trajectory
from slm_swap.tracks.agent.run.records import TaskRecord, summarize_tasks

REPO = Path(__file__).resolve().parents[2]


def agent_run(folder: Path, model: str, passed: list[bool], arm: str = "toolcall") -> Path:
    """A metric file and its predictions: task i passes when passed[i]; a failed task has one invalid action of two."""
    records = []
    for i, ok in enumerate(passed):
        task_id = f"multi_turn_base_{i}"
        failure = None if ok else AgentFailure.STATE_MISMATCH
        where = None if ok else 0
        result = TaskResult(task_id, ok, [ok], where, where, failure, actions=2, valid_actions=2 if ok else 1, steps=2)
        records.append(TaskRecord(result, Trajectory(task_id, "multi_turn_base", arm, ended="complete")))
    document = {"track": "agent", "model": model, "arm": arm, "split": "test", "dataset": {"path": "agent/test.jsonl", "sha256": "a" * 64}}
    document.update(summarize_tasks(records, {}))
    path = folder / f"agent_{model}_{arm}.json"
    path.write_text(json.dumps(document))
    (folder / f"agent_{model}_{arm}.predictions.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    return path


def decide(folder: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tools" / "decide.py"), "--eval-dir", str(folder), "--tracks", "agent", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_agent_track_pairs_tasks_and_fine_tunes_past_delta(tmp_path: Path, langfuse_env) -> None:
    agent_run(tmp_path, "azure", [True] * 40)
    agent_run(tmp_path, "slm", [True] * 30 + [False] * 10)
    done = decide(tmp_path, "--arm", "toolcall")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["FINE_TUNE_AGENT_TOOLCALL=1"]
    entry = json.loads((tmp_path / "decision.json").read_text())["tracks"]["agent"]
    metrics = entry["metrics"]
    assert metrics["task_success_rate"]["gap"] == 0.25 and "gap_ci95" in metrics["task_success_rate"]
    assert metrics["turn_success_rate"]["gap"] == 0.25 and "gap_ci95" in metrics["turn_success_rate"]  # paired by turn
    # valid actions cannot be paired: beside the verdict, in no rule
    assert "valid_action_rate" not in metrics and entry["reported"]["valid_action_rate"] == {"hosted": 1.0, "slm": 0.875, "gap": 0.125}
    # the decision names its arm, and fine-tuning that arm's records (agent_toolcall) reads it; the other arm is refused
    assert json.loads((tmp_path / "decision.json").read_text())["tracks"]["agent"]["arm"] == "toolcall"
    assert "task_success_rate" in check_decision(tmp_path / "decision.json", "agent_toolcall", force=False)
    with pytest.raises(FinetuneRefused, match="not 'codeact'"):
        check_decision(tmp_path / "decision.json", "agent_codeact", force=False)


def test_agent_runs_of_different_arms_are_refused(tmp_path: Path, langfuse_env) -> None:
    agent_run(tmp_path, "azure", [True] * 4)
    slm = agent_run(tmp_path, "slm", [True] * 4, arm="codeact")
    done = decide(tmp_path, "--arm", "toolcall", "--agent-slm", str(slm))
    assert done.returncode == 2 and "ran different arms" in done.stderr
