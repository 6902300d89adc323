"""tools/decide.py takes its numbers from the predictions: an edited metric file is refused, never a flipped decision.

Each run is written with the harness's own summaries (`summarize`, `summarize_tasks`), so the files are what a real
run leaves; then one number of the SLM's metric file is edited as a careless or hostile colleague would.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from slm_swap.decision.compare import DecisionInputError, compare
from slm_swap.files import write_json_atomic, write_jsonl_atomic
from slm_swap.harness.paired import verified_flags
from slm_swap.harness.records import prediction_lines, summarize
from slm_swap.scoring.outcomes import AgentFailure, FailureKind, RowRecord
from slm_swap.tracks.agent.episodes.scoring import TaskResult
from slm_swap.tracks.agent.episodes.trajectory import Trajectory
from slm_swap.tracks.agent.run.records import TaskRecord, summarize_tasks

REPO = Path(__file__).resolve().parents[2]
N = 40
DATASET = {"path": "toolcall/test.jsonl", "sha256": "a" * 64}
SOURCE_OF_TRUTH = "the predictions are the source of truth: re-run the evaluation or restore the metric file"


def toolcall_run(folder: Path, model: str, wrong_args: int) -> Path:
    """A toolcall run over N rows whose first `wrong_args` rows call the right tool with wrong arguments."""
    records = []
    for i in range(N):
        ok = i >= wrong_args
        flags = {"valid_call": True, "name_match": True, "args_exact": ok}
        failure = None if ok else FailureKind.ARGUMENTS_DIFFER
        records.append(RowRecord(f"test-{i:04d}", "toolcall", "x", flags, ok, failure))
    document = {"track": "toolcall", "model": model, "split": "test", "dataset": DATASET, **summarize("toolcall", records)}
    (folder / f"toolcall_{model}.predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in prediction_lines(records)))
    path = folder / f"toolcall_{model}.json"
    path.write_text(json.dumps(document))
    return path


def agent_run(folder: Path, model: str, solved: bool, actions: int) -> Path:
    """An agent run over 20 two-turn tasks, all solved or none; `actions` actions per task, all valid."""
    records = []
    for i in range(20):
        task_id = f"multi_turn_base_{i}"
        where, failure = (None, None) if solved else (0, AgentFailure.STATE_MISMATCH)
        turns = [solved, solved]
        result = TaskResult(task_id, solved, turns, where, where, failure, actions=actions, valid_actions=actions, steps=2)
        records.append(TaskRecord(result, Trajectory(task_id, "multi_turn_base", "toolcall", ended="complete")))
    document = {"track": "agent", "model": model, "arm": "toolcall", "split": "test", "dataset": DATASET}
    document.update(summarize_tasks(records, {}))
    path = folder / f"agent_{model}_toolcall.json"
    path.write_text(json.dumps(document))
    (folder / f"agent_{model}_toolcall.predictions.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    return path


def decide(folder: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tools" / "decide.py"), "--eval-dir", str(folder), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def edit(path: Path, change: Callable[[dict], object]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))  # NaN and Infinity as Python's json writes them


def strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def trailing(tmp_path: Path, langfuse_env) -> Path:
    """A real "SLM trails" pair: the SLM gets the arguments wrong on half the rows the hosted model gets right."""
    toolcall_run(tmp_path, "azure", wrong_args=0)
    toolcall_run(tmp_path, "slm", wrong_args=N // 2)
    return tmp_path


def test_an_unedited_pair_decides_from_its_rows_and_writes_only_finite_numbers(trailing: Path) -> None:
    result = decide(trailing, "--tracks", "toolcall", "--rule", "interval")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["FINE_TUNE_TOOLCALL=1"]
    assert strict_json(trailing / "decision.json")["tracks"]["toolcall"]["verdict"] == "slm_trails"


def set_rate(value: float) -> Callable[[dict], object]:
    return lambda d: d["metrics"].update(args_exact_rate=value)


@pytest.mark.parametrize(
    ("change", "field", "stated", "recomputed"),
    [
        (set_rate(0.999), "metrics.args_exact_rate", "0.999", "0.5"),  # higher: would read as a match
        (set_rate(0.1), "metrics.args_exact_rate", "0.1", "0.5"),  # lower
        (set_rate(math.nan), "metrics.args_exact_rate", "nan", "0.5"),  # NaN compares false with everything
        (set_rate(math.inf), "metrics.args_exact_rate", "inf", "0.5"),
        (lambda d: d["counts"].update(args_exact=41), "counts.args_exact", "41", "20"),  # a count above n
        (lambda d: d.update(n=39), "n", "39", "40"),  # n that does not match the rows
        (lambda d: d.update(passed=40), "passed", "40", "20"),  # every row passed, says the file
    ],
    ids=["higher", "lower", "nan", "infinity", "count-above-n", "n", "passed"],
)
def test_an_edited_slm_metric_file_is_refused_naming_file_metric_and_both_values(
    trailing: Path, change, field: str, stated: str, recomputed: str
) -> None:
    slm = trailing / "toolcall_slm.json"
    edit(slm, change)
    result = decide(trailing, "--tracks", "toolcall")
    predictions = trailing / "toolcall_slm.predictions.jsonl"
    assert result.stderr == f"error: {slm}: {field} is {stated} but its predictions {predictions} give {recomputed}; {SOURCE_OF_TRUTH}\n"
    assert result.returncode == 2 and result.stdout == ""
    assert not (trailing / "decision.json").exists()


def test_a_non_finite_number_outside_the_rates_is_refused(trailing: Path) -> None:
    hosted = trailing / "toolcall_azure.json"
    edit(hosted, lambda d: d.update(duration_s=math.inf))
    result = decide(trailing, "--tracks", "toolcall")
    assert (result.returncode, result.stderr) == (2, f"error: {hosted}: duration_s is inf, not a finite number\n")


def test_an_edited_after_fine_tune_file_is_refused_too(trailing: Path) -> None:
    after = toolcall_run(trailing, "slm_ft", wrong_args=10)
    edit(after, set_rate(1.0))
    result = decide(trailing, "--tracks", "toolcall")
    predictions = trailing / "toolcall_slm_ft.predictions.jsonl"
    expected = f"error: {after}: metrics.args_exact_rate is 1.0 but its predictions {predictions} give 0.75; {SOURCE_OF_TRUTH}\n"
    assert (result.returncode, result.stderr) == (2, expected)


@pytest.fixture
def agent_pair(tmp_path: Path, langfuse_env) -> Path:
    """The hosted side solves every task; the SLM none, and never acts (zero actions: valid_action_rate is n/a)."""
    agent_run(tmp_path, "azure", solved=True, actions=2)
    agent_run(tmp_path, "slm", solved=False, actions=0)
    return tmp_path


def test_an_slm_that_solves_no_task_trails_whatever_valid_actions_say(agent_pair: Path) -> None:
    result = decide(agent_pair, "--tracks", "agent", "--arm", "toolcall", "--rule", "interval")
    assert result.returncode == 0, result.stderr
    entry = strict_json(agent_pair / "decision.json")["tracks"]["agent"]
    assert entry["verdict"] == "slm_trails" and entry["fine_tune"] == 1
    assert set(entry["metrics"]) == {"task_success_rate", "turn_success_rate"}  # the paired ones rule
    assert entry["metrics"]["turn_success_rate"]["only_hosted"] == 40  # 20 tasks of two turns, paired by turn
    # over zero actions there is no rate: n/a, beside the verdict, in no rule
    assert entry["reported"] == {"valid_action_rate": {"hosted": 1.0, "slm": None, "gap": None}}
    assert "valid_action_rate    1.000     n/a     n/a  reported beside the verdict, in no rule" in result.stderr


def test_the_zero_denominator_rate_is_null_in_the_metric_file(agent_pair: Path) -> None:
    slm = json.loads((agent_pair / "agent_slm_toolcall.json").read_text())
    rate = "valid_action_rate"
    assert (slm["metrics"][rate], slm["intervals"][rate], slm["totals"][rate]) == (None, None, 0)


@pytest.mark.parametrize(("value", "stated"), [(0.999, "0.999"), (math.nan, "nan")], ids=["higher", "nan"])
def test_an_edited_agent_task_success_rate_is_refused(agent_pair: Path, value: float, stated: str) -> None:
    slm = agent_pair / "agent_slm_toolcall.json"
    edit(slm, lambda d: d["metrics"].update(task_success_rate=value))
    result = decide(agent_pair, "--tracks", "agent", "--arm", "toolcall")
    predictions = agent_pair / "agent_slm_toolcall.predictions.jsonl"
    expected = f"error: {slm}: metrics.task_success_rate is {stated} but its predictions {predictions} give 0.0; {SOURCE_OF_TRUTH}\n"
    assert (result.returncode, result.stderr, result.stdout) == (2, expected, "")
    assert not (agent_pair / "decision.json").exists()


def test_agent_runs_whose_tasks_have_different_turns_are_refused() -> None:
    hosted = {"multi_turn_base_1": {"task_success": True, "turn_success": (True, True)}}
    slm = {"multi_turn_base_1": {"task_success": False, "turn_success": (False,)}}  # the same task, one turn fewer
    with pytest.raises(DecisionInputError) as refused:
        compare("agent", hosted, slm, ["multi_turn_base_1"])
    assert str(refused.value) == "the runs' turn_success flags cover different units (multi_turn_base_1#1): evaluate the same tasks"


def test_predictions_of_another_track_are_refused_naming_the_flag(tmp_path: Path) -> None:
    structured = tmp_path / "structured.predictions.jsonl"
    structured.write_text(json.dumps({"id": "test-0000", "track": "structured", "flags": {"json_valid": True, "exact_match": True}}) + "\n")
    with pytest.raises(ValueError) as refused:
        verified_flags(tmp_path / "toolcall_slm.json", {"track": "toolcall", "metrics": {}}, structured)
    assert str(refused.value) == f"{structured}: a row has no flag 'valid_call', which track toolcall scores"


def test_no_json_file_of_ours_is_written_with_a_non_finite_number(tmp_path: Path) -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            write_json_atomic(tmp_path / "decision.json", {"gap": value})
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            write_jsonl_atomic(tmp_path / "rows.jsonl", [{"latency_s": value}])
    assert not (tmp_path / "decision.json").exists() and not (tmp_path / "rows.jsonl").exists()
