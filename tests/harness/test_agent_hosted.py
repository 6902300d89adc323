"""`--model=azure` on the agent track against the fault-injecting OpenAI-compatible server: each step's chats go
out concurrently, `--capture-trajectories` writes every trajectory with its verdict, `--samples k` adds k sampled
trajectories per task at `--temperature` while evaluation stays greedy, and the key never reaches a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fault_server import FaultServer

from slm_swap.formats.toolcall import format_tool_call
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.data.trajectories import read_trajectories

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-canary-agent-0123456789"
TASKS = ["multi_turn_base_113", "multi_turn_miss_param_113"]


def first_turn_answers() -> dict[str, str]:
    """Each task's first request answered with its first ground-truth call; everything else gets a reply without an action."""
    tasks = {task.id: task for task in load_multi_turn(categories=("multi_turn_base", "multi_turn_miss_param")).tasks}
    answers = {}
    for task_id in TASKS:
        task = tasks[task_id]
        call = task.ground_truth[0][0]
        answers[task.turns[0]] = format_tool_call(call.name, call.arguments)
    return answers


@pytest.mark.slow
def test_hosted_run_captures_greedy_and_sampled_trajectories_with_verdicts(tmp_path: Path, monkeypatch, langfuse_env) -> None:
    with FaultServer(answers=first_turn_answers(), max_seconds=300) as server:
        monkeypatch.setenv("AZURE_ENDPOINT", server.endpoint)
        monkeypatch.setenv("AZURE_API_KEY", KEY)
        monkeypatch.delenv("AZURE_API_VERSION", raising=False)
        monkeypatch.delenv("AZURE_MODEL", raising=False)
        command = [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-k", "agent and (base_113 or miss_param_113)"]
        command += ["--model=azure", "--arm=toolcall", "--max-steps-per-turn=2", "--max-connections=4", "--capture-trajectories"]
        command += ["--samples=2", "--temperature=0.5", f"--out-dir={tmp_path}"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
        temperatures = sorted({request.body.get("temperature") for request in server.requests})
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert temperatures == [0, 0.5]
    document = json.loads((tmp_path / "agent_azure_toolcall.json").read_text(encoding="utf-8"))
    concurrency = document["model_description"]["concurrency"]
    assert document["n"] == 2 and concurrency["start"] == 4 and concurrency["max_in_flight"] >= 1  # described after the episodes
    lines = [json.loads(line) for line in (tmp_path / "agent_azure_toolcall.trajectories.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(line["source"]["task_id"], line["source"]["sample"]) for line in lines] == [
        (task_id, sample) for task_id in TASKS for sample in ("greedy", "1", "2")
    ]
    for line in lines:
        assert set(line) == {"messages", "tools", "verifier", "source"}
        assert line["messages"][0]["role"] == "system" and line["messages"][2]["role"] == "assistant"
        assert line["messages"][2]["content"].startswith("<tool_call")  # the scripted first call, greedy or sampled
        assert isinstance(line["verifier"]["accepted"], bool) and line["tools"]
        assert line["verifier"]["accepted"] or line["verifier"]["failure"]
    assert document["trajectories"]["lines"] == 6
    # the trajectory builder's reader takes the file as it is: ids from task and sample, one per line
    records = read_trajectories(tmp_path / "agent_azure_toolcall.trajectories.jsonl")
    assert [r.id for r in records] == [f"{t}#{s}" for t in TASKS for s in ("greedy", "1", "2")]
    for path in tmp_path.rglob("*"):  # the answer journal under cache/ too
        assert path.is_dir() or KEY not in path.read_text(encoding="utf-8"), path
    assert KEY not in done.stdout + done.stderr


TIMING = {"started_at", "generation_s", "execution_s"}


def untimed(predictions: str) -> list:
    """The predictions' lines without wall-clock fields, which differ from run to run."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING}
        return [strip(v) for v in value] if isinstance(value, list) else value

    return [strip(json.loads(line)) for line in predictions.splitlines()]


def run_agent(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-k", "agent and (base_113 or miss_param_113)"]
    command += ["--model=azure", "--arm=toolcall", "--max-steps-per-turn=2", "--max-connections=2", f"--out-dir={tmp_path}", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_resume_replays_every_step_from_the_answer_journal(tmp_path: Path, monkeypatch, langfuse_env) -> None:
    runs = []
    with FaultServer(answers=first_turn_answers(), max_seconds=300) as server:
        monkeypatch.setenv("AZURE_ENDPOINT", server.endpoint)
        monkeypatch.setenv("AZURE_API_KEY", KEY)
        monkeypatch.delenv("AZURE_API_VERSION", raising=False)
        monkeypatch.delenv("AZURE_MODEL", raising=False)
        for extra in ((), ("--resume",), ()):
            before = len(server.requests)
            done = run_agent(tmp_path, *extra)
            assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
            document = json.loads((tmp_path / "agent_azure_toolcall.json").read_text(encoding="utf-8"))
            predictions = (tmp_path / "agent_azure_toolcall.predictions.jsonl").read_text(encoding="utf-8")
            runs.append((len(server.requests) - before, document, predictions))
    (asked, first, first_predictions), (resumed_asked, resumed, resumed_predictions), (fresh_asked, fresh, _) = runs
    steps = sum(json.loads(line)["steps"] for line in first_predictions.splitlines())
    assert asked == steps > 0  # one request per step
    assert resumed_asked == 0 and resumed["model_description"]["journal_steps_reused"] == steps
    assert resumed["metrics"] == first["metrics"] and untimed(resumed_predictions) == untimed(first_predictions)
    assert fresh_asked == steps and fresh["model_description"]["journal_steps_reused"] == 0  # without --resume, asked again
    journal = Path(first["model_description"]["answer_journal"])
    assert journal.parent == tmp_path / "cache" and len(journal.read_text(encoding="utf-8").splitlines()) == 2 * steps
