"""Evaluation runs traced to Langfuse: what the real SDK delivered to the local receiver."""

from __future__ import annotations

import json

import pytest
from harness_support import REPO, make_project, predictions, write_jsonl


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, langfuse_env):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    rows = make_project(pytester, n=6)
    pred = write_jsonl(pytester.path / "preds.jsonl", predictions("toolcall", rows["toolcall"], wrong={2}))
    return pytester, pred, langfuse_env


def run_args(pred, *extra, keyword="toolcall"):
    return ["evals", "-k", keyword, "--model=replay", f"--predictions={pred}", *extra]


def metric(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "slm_swap" / "05_eval" / "toolcall_replay.json").read_text())


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_one_trace_per_run_with_a_generation_per_row_and_rate_scores(project, workers):
    pytester, pred, receiver = project
    result = pytester.runpytest_subprocess(*run_args(pred, *workers))
    result.assert_outcomes(passed=5, failed=1)
    assert len(receiver.trace_ids()) == 1
    (trace_id,) = receiver.trace_ids()
    spans = receiver.spans(trace_id)
    root = [s for s in spans if s.parent_span_id is None]
    children = sorted(s.name for s in spans if s.parent_span_id == root[0].span_id)
    assert [s.name for s in root] == ["eval:toolcall:replay"] and children == [f"test-{i:04d}" for i in range(6)]
    scores = receiver.scores()
    trace_scores = {s["name"]: s["value"] for s in scores if not s.get("observationId")}
    assert trace_scores == {"valid_call_rate": 1.0, "name_match_rate": 1.0, "args_exact_rate": pytest.approx(5 / 6)}
    # each rate's score carries its 95 % Wilson interval: 5 of 6 -> [0.4365, 0.9699]
    args_score = next(s for s in scores if s["name"] == "args_exact_rate" and not s.get("observationId"))
    assert args_score["metadata"] == {"ci95": [0.4365, 0.9699], "n": 6}
    assert args_score["comment"] == "95% CI [0.436, 0.970] over n=6 rows"
    assert sum(1 for s in scores if s.get("observationId")) == 6 * 3
    doc = metric(pytester)
    assert doc["langfuse"]["trace_id"] == trace_id
    result.stdout.fnmatch_lines([f"*langfuse trace {trace_id}*"])


def test_row_generation_carries_messages_output_and_gold(project):
    pytester, pred, receiver = project
    pytester.runpytest_subprocess(*run_args(pred, keyword="toolcall and test-0002"))
    (generation,) = [s for s in receiver.spans() if s.name == "test-0002"]
    messages = generation.json_attribute("langfuse.observation.input")
    metadata = {k: v for k, v in generation.attributes.items() if k.startswith("langfuse.observation.metadata.")}
    assert messages[0]["role"] == "user" and "Request: request number 2" in messages[0]["content"]
    assert '"day":2' in generation.attributes["langfuse.observation.output"]
    assert any("days" in str(v) for v in metadata.values())


def test_missing_langfuse_variable_stops_before_any_row(project, monkeypatch):
    pytester, pred, receiver = project
    monkeypatch.delenv("LANGFUSE_SECRET_KEY")
    result = pytester.runpytest_subprocess(*run_args(pred))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "LANGFUSE_SECRET_KEY" in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "slm_swap" / "05_eval" / "toolcall_replay.json").exists()


def test_wrong_langfuse_key_stops_before_any_row(project, monkeypatch):
    pytester, pred, receiver = project
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-wrong")
    result = pytester.runpytest_subprocess(*run_args(pred))
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "passed" not in result.stdout.str()


def test_rejected_trace_fails_the_session_but_keeps_the_metric_file(project):
    pytester, pred, receiver = project
    receiver.fail_ingestion(500)
    try:
        result = pytester.runpytest_subprocess(*run_args(pred))
    finally:
        receiver.fail_ingestion(None)
    assert result.ret != 0 and result.ret != pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*LANGFUSE FAILED*"])
    assert "error" in metric(pytester)["langfuse"]
