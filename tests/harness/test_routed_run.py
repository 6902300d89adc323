"""`pytest evals --model=routed` end to end: the embedded SmolLM2 in NF4 answers every row first, the validator checks
each answer against the row's offered signature, and a local OpenAI-compatible server standing in for the hosted
deployment is asked for exactly the rejected rows; the metric file records the share and each row's route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fault_server import FaultServer
from harness_support import REPO, make_project, write_jsonl

from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.formats.toolcall import format_tool_call
from slm_swap.prompts import build_prompt

CHECKPOINT_NAME = "smollm2-135m-instruct"
TOOL = {
    "name": "get_weather",
    "description": "Weather now.",
    "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def weather_rows(n: int) -> list[dict[str, str]]:
    cities = ["Paris", "Lyon", "Nice", "Lille"]
    return [
        {
            "prompt": build_prompt("toolcall", f"What is the weather in {cities[i % 4]}?", [TOOL]),
            "completion": format_tool_call("get_weather", {"city": cities[i % 4]}),
        }
        for i in range(n)
    ]


@pytest.mark.slow
def test_routed_run_asks_the_hosted_model_only_for_rejected_rows(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, langfuse_env
) -> None:
    checkpoint = ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)
    make_project(pytester, n=4)
    rows = weather_rows(4)
    write_jsonl(pytester.path / "slm_swap" / "02_dataset" / "toolcall" / "test.jsonl", rows)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("SLM_MODEL_PATH", str(Path(checkpoint)))
    monkeypatch.setenv("AZURE_API_KEY", "canary-key-5c1e")
    with FaultServer(answers={row["prompt"]: row["completion"] for row in rows}, max_seconds=300) as server:
        monkeypatch.setenv("AZURE_ENDPOINT", server.endpoint)
        args = ["evals", "-k", "toolcall", "--model=routed", "--max-new-tokens=24", "--max-connections=2", "-p", "no:randomly"]
        result = pytester.runpytest_subprocess(*args, timeout=600)
        asked = [request.prompt for request in server.requests]
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stderr.str()[-2000:]
    doc = json.loads((pytester.path / "slm_swap" / "05_eval" / "toolcall_routed.json").read_text())
    routing = doc["model_description"]["routing"]
    routes = routing["routes"]
    hosted_ids = sorted(row_id for row_id, route in routes.items() if route["route"] == "hosted")
    assert sorted(routes) == [f"test-{i:04d}" for i in range(4)]
    assert routing["hosted_rows"] == len(hosted_ids) and routing["slm_share"] == (4 - len(hosted_ids)) / 4
    # the stand-in answers with the gold, so each row it answered passes; it saw no prompt of an accepted row
    assert sorted(asked) == sorted(rows[int(row_id[-4:])]["prompt"] for row_id in hosted_ids)
    predictions = {
        line["id"]: line
        for line in map(json.loads, (pytester.path / "slm_swap" / "05_eval" / "toolcall_routed.predictions.jsonl").read_text().splitlines())
    }
    assert all(predictions[row_id]["flags"]["args_exact"] for row_id in hosted_ids)
    assert doc["model"] == "routed" and doc["model_description"]["slm"]["model_path"] == str(Path(checkpoint))
    assert "canary-key-5c1e" not in json.dumps(doc)


def test_routed_answers_the_row_tracks_only(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, langfuse_env) -> None:
    checkpoint = ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)
    monkeypatch.setenv("SLM_MODEL_PATH", str(Path(checkpoint)))
    monkeypatch.setenv("AZURE_ENDPOINT", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AZURE_API_KEY", "unused")
    make_project(pytester, n=2)
    (pytester.path / "evals" / "test_agent.py").write_text((REPO / "evals" / "test_agent.py").read_text())
    tasks = REPO / "slm_swap" / "02_dataset" / "agent" / "test.jsonl"
    result = pytester.runpytest("evals/test_agent.py", "--model=routed", "--dataset", str(tasks))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines == ["error: --model=routed answers the row tracks only (structured, toolcall): drop -k agent"]


def test_routed_refuses_xdist(pytester: pytest.Pytester) -> None:
    make_project(pytester, n=2)
    result = pytester.runpytest("evals", "--model=routed", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines == [
        "error: --model=routed cannot run under pytest-xdist (-n): the SLM batches all rows in one process; drop -n"
    ]
