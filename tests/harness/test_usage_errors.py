"""A run that cannot start, or cannot go on, says why in one line beginning `error:` (issue 30).

Before, eleven such stops printed as `!!! _pytest.outcomes.Exit: error: ... !!!` (and some once more as
`Exit: ...`); a replayed file holding NaN passed every test and then killed the trace. Each case runs the real
conftest, evals and plugin through pytester and reads everything the run printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_support import REPO, make_project, predictions, write_jsonl

from slm_swap.tracing.recorder import usage_details


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, langfuse_env) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


@pytest.fixture
def project(pytester: pytest.Pytester) -> tuple[pytest.Pytester, Path]:
    rows = make_project(pytester, n=4)
    pred = write_jsonl(
        pytester.path / "preds.jsonl", predictions("toolcall", rows["toolcall"]) + predictions("structured", rows["structured"])
    )
    return pytester, pred


def the_error_line(result: pytest.RunResult, status: int = pytest.ExitCode.USAGE_ERROR) -> str:
    """The run's one line on stderr, after checking the run printed nothing else of the kind and wrote no metric file."""
    printed = result.stdout.str() + result.stderr.str()
    assert result.ret == status, printed[-3000:]
    assert "Exit" not in printed and "!!!" not in printed and "Traceback" not in printed and "ERROR" not in printed
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def replay(pytester: pytest.Pytester, pred: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest("evals", "--model=replay", f"--predictions={pred}", "-p", "no:randomly", *extra)


def test_hosted_model_without_its_endpoint(project, monkeypatch):
    pytester, _ = project
    monkeypatch.delenv("AZURE_ENDPOINT", raising=False)
    result = pytester.runpytest("evals", "--model=azure", "-k", "toolcall")
    assert the_error_line(result) == (
        "error: AZURE_ENDPOINT is not set; --model=azure needs AZURE_ENDPOINT (https://<resource>/openai/deployments/<deployment>, "
        "or an OpenAI-compatible base URL such as http://127.0.0.1:8000/v1) and AZURE_API_KEY; AZURE_API_VERSION is optional"
    )


def test_langfuse_not_configured(project, monkeypatch):
    pytester, pred = project
    monkeypatch.delenv("LANGFUSE_HOST")
    assert the_error_line(replay(pytester, pred, "-k", "toolcall")) == (
        "error: Langfuse: Langfuse is not configured: set LANGFUSE_HOST "
        "(project keys from the Langfuse project settings, and the Langfuse base URL)"
    )


def test_langfuse_refuses_the_keys(project, monkeypatch, langfuse_env):
    pytester, pred = project
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-wrong")
    assert the_error_line(replay(pytester, pred, "-k", "toolcall")) == (
        f"error: Langfuse: Langfuse at {langfuse_env.url} refused the keys (HTTP 401): "
        "check LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY and that they belong to this host"
    )


def test_replayed_predictions_not_found(project):
    pytester, _ = project
    missing = pytester.path / "none.jsonl"
    assert the_error_line(replay(pytester, missing, "-k", "toolcall")) == f"error: {missing}: predictions file not found"


def test_replayed_predictions_missing_a_selected_row_stop_at_the_first_row(project):
    pytester, pred = project
    lines = pred.read_text(encoding="utf-8").splitlines()
    pred.write_text("\n".join(line for line in lines if '"test-0003"' not in line) + "\n", encoding="utf-8")
    line = the_error_line(replay(pytester, pred, "-k", "toolcall"))
    assert line.startswith(f"error: {pred}: no prediction for 1 selected row(s): test-0003")


def test_under_xdist_a_stop_met_in_a_worker_stops_the_run_from_the_controller_in_one_line(project):
    pytester, pred = project
    lines = pred.read_text(encoding="utf-8").splitlines()
    pred.write_text("\n".join(line for line in lines if '"test-0003"' not in line) + "\n", encoding="utf-8")
    result = pytester.runpytest_subprocess(
        "evals", "--model=replay", f"--predictions={pred}", "-p", "no:randomly", "-k", "toolcall", "-n", "2"
    )
    printed = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, printed[-3000:]
    assert "INTERNALERROR" not in printed and "Exit" not in printed and "!!!" not in printed
    (line,) = [line for line in result.stderr.lines if line.strip()]
    assert line.startswith(f"error: {pred}: no prediction for ") and "test-0003" in line
    assert not (pytester.path / "slm_swap" / "05_eval" / "toolcall_replay.json").exists()


def rewrite_line(pred: Path, index: int, change) -> None:
    """Line `index` of the predictions file, changed by `change` and written back as Python's json writes it (NaN too)."""
    lines = pred.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[index])
    change(record)
    lines[index] = json.dumps(record)
    pred.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r.update(latency_s=float("nan")), "latency_s is nan, not a finite number"),
        (
            lambda r: r.update(usage={"prompt_tokens": 12, "completion_tokens": float("inf")}),
            "usage.completion_tokens is inf, not a finite number",
        ),
        (lambda r: r.update(latency_s="fast"), "latency_s must be a number, got 'fast'"),
        (lambda r: r.update(usage={"prompt_tokens": "12"}), "usage.prompt_tokens must be an integer count, got '12'"),
        (lambda r: r.update(usage={"prompt_tokens": 1.5}), "usage.prompt_tokens must be an integer count, got 1.5"),
        (lambda r: r.update(retries=[1]), "retries must be an object of integer counts, got [1]"),
    ],
    ids=["nan-latency", "infinite-usage", "text-latency", "text-usage", "fractional-usage", "list-retries"],
)
def test_a_replayed_row_with_a_bad_number_is_refused_before_any_row(project, change, problem):
    pytester, pred = project
    rewrite_line(pred, 2, change)
    result = replay(pytester, pred, "-k", "toolcall")
    assert the_error_line(result) == f"error: {pred}: row 2 (line 3): {problem}"
    assert "%]" not in result.stdout.str() and not (pytester.path / "slm_swap" / "05_eval").exists()


def agent_line(usage: dict) -> dict:
    """One agent predictions line of one turn and one step, with `usage` as that step's token counts."""
    step = {"step": 0, "text": "done", "action": None, "usage": usage, "started_at": 1.0, "generation_s": 0.1, "execution_s": 0.0}
    trajectory = {
        "task_id": "multi_turn_base_113",
        "category": "multi_turn_base",
        "arm": "toolcall",
        "messages": [],
        "turns": [{"turn": 0, "user": "hello", "steps": [step], "ended": "answer"}],
        "ended": "complete",
    }
    verdict = {"passed": True, "turns_passed": [True], "first_failing_turn": None, "first_failing_step": None, "failure": None}
    counts = {"detail": "", "actions": 0, "valid_actions": 0, "steps": 1, "usage": {}}
    return {"id": "multi_turn_base_113", "track": "agent", "arm": "toolcall", **verdict, **counts, "trajectory": trajectory}


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        ({"prompt_tokens": float("nan")}, "trajectory.turns[0].steps[0].usage.prompt_tokens is nan, not a finite number"),
        ({"prompt_tokens": "many"}, "trajectory.turns[0].steps[0].usage.prompt_tokens must be an integer count, got 'many'"),
    ],
    ids=["nan", "text"],
)
def test_a_replayed_agent_step_with_a_bad_usage_count_is_refused_before_any_task(pytester, usage, problem):
    make_project(pytester, n=1)
    pred = pytester.path / "agent.predictions.jsonl"
    pred.write_text(json.dumps(agent_line(usage)) + "\n", encoding="utf-8")  # Python's writer lets NaN through
    result = replay(pytester, pred, "-k", "agent", "--arm=toolcall")
    assert the_error_line(result) == f"error: {pred}: line 1: {problem}"


def test_the_trace_leaves_out_a_usage_count_that_is_not_a_finite_number():
    usage = {"prompt_tokens": float("nan"), "completion_tokens": 7, "total_tokens": float("inf")}
    assert usage_details(usage) == {"output": 7}
