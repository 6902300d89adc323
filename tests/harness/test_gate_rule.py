"""The gate through pytester: under the interval rule a noisy drop passes and a real one fails; under every rule
bad or edited references stop the run, other rows than the reference's are refused, a reference passing no row is
warned about."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from harness_support import REPO, make_project, predictions, write_jsonl

from slm_swap.harness.gate import compare_paired
from slm_swap.harness.records import read_row_records

EVAL = Path("slm_swap") / "05_eval"


@pytest.fixture(autouse=True)
def importable_repo(monkeypatch: pytest.MonkeyPatch, langfuse_env) -> None:
    # xdist workers are fresh interpreters: they find slm_swap through PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def replay_args(pred: Path, *extra: str) -> list[str]:
    return ["evals", "--model=replay", f"--predictions={pred}", "-p", "no:randomly", "-k", "toolcall", *extra]


def reference_and_current(pytester: pytest.Pytester, n: int, wrong: set[int], *ref_args: str) -> tuple[Path, Path]:
    """A reference run of the harness itself (all rows right) and the current predictions (`wrong` rows wrong)."""
    rows = make_project(pytester, n=n)["toolcall"]
    gold = write_jsonl(pytester.path / "gold.jsonl", predictions("toolcall", rows))
    assert pytester.runpytest(*replay_args(gold, "--tag", "ref", *ref_args)).ret == 0
    current = write_jsonl(pytester.path / "current.jsonl", predictions("toolcall", rows, wrong=wrong))
    return pytester.path / EVAL / "toolcall_replay_ref.json", current


def gate(pytester: pytest.Pytester, current: Path, ref: Path, rule: str) -> pytest.RunResult:
    return pytester.runpytest(*replay_args(current, f"--gate-against={ref}", "--delta=0.02", f"--gate-rule={rule}"))


def test_a_small_drop_fails_the_point_rule_but_not_the_interval_rule(pytester: pytest.Pytester):
    ref, current = reference_and_current(pytester, 8, wrong={3})  # args_exact 1.000 -> 0.875 on 8 rows: noise
    point = gate(pytester, current, ref, "point")
    assert point.ret == pytest.ExitCode.TESTS_FAILED
    interval = gate(pytester, current, ref, "interval")
    assert interval.ret == pytest.ExitCode.OK and interval.parseoutcomes()["failed"] == 1
    out = interval.stdout.str()
    assert "gate args_exact_rate: reference 1.000 current 0.875 drop +0.125 [-0.234, 0.434] p=1.000 (delta 0.02, interval rule) ok" in out
    assert "gate: PASSED" in out


def test_a_large_paired_drop_fails_the_interval_rule(pytester: pytest.Pytester):
    ref, current = reference_and_current(pytester, 60, wrong=set(range(0, 60, 2)))  # 30 of 60 newly wrong
    result = gate(pytester, current, ref, "interval")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*gate args_exact_rate: reference 1.000 current 0.500 drop +0.500 * p<0.001 *interval rule) FAIL"])
    result.stdout.fnmatch_lines(["*gate name_match_rate:*drop +0.000*ok", "gate: FAILED"])


def test_the_interval_rule_falls_back_to_the_predictions_path_the_metric_file_names(pytester: pytest.Pytester):
    ref, current = reference_and_current(pytester, 8, wrong={3})
    moved = shutil.copy(ref, pytester.path / "reference.json")  # no predictions file beside the copy
    assert gate(pytester, current, Path(moved), "interval").ret == pytest.ExitCode.OK


@pytest.mark.parametrize("case", ["predictions-missing", "no-reference"])
def test_the_interval_rule_without_reference_predictions_stops_before_any_row(pytester: pytest.Pytester, case: str):
    ref, current = reference_and_current(pytester, 8, wrong={3})
    (pytester.path / EVAL / "toolcall_replay_ref.predictions.jsonl").unlink()
    if case == "no-reference":
        result = pytester.runpytest(*replay_args(current, "--gate-rule=interval"))
        expected = "--gate-rule interval needs --gate-against"
    else:
        result = gate(pytester, current, ref, "interval")
        expected = f"--gate-rule interval: {ref}: the reference run's predictions file is missing"
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()
    assert "%]" not in result.stdout.str() and not (pytester.path / EVAL / "toolcall_replay.json").exists()


def test_the_interval_rule_refuses_runs_over_different_rows(pytester: pytest.Pytester):
    ref, current = reference_and_current(pytester, 8, set(), "--limit=6")  # the reference saw rows 0-5 only
    result = gate(pytester, current, ref, "interval")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "gate: error: the gate compares the same rows, but the runs' rows differ" in result.stdout.str()
    assert "2 row(s) of this run missing from the reference (test-0006, test-0007)" in result.stdout.str()


@pytest.mark.parametrize("rule", ["point", "interval"])
def test_the_gate_refuses_a_2_row_run_against_an_8_row_reference_under_every_rule(pytester: pytest.Pytester, rule: str):
    ref, current = reference_and_current(pytester, 8, set())
    result = pytester.runpytest(*replay_args(current, f"--gate-against={ref}", f"--gate-rule={rule}", "--limit=2"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = (
        "gate: error: the gate compares the same rows, but the runs' rows differ: "
        "6 reference row(s) missing from this run (test-0002, test-0003, test-0004, ...); evaluate the reference's rows"
    )
    assert message in result.stdout.str().splitlines() and "gate: PASSED" not in result.stdout.str()


def test_a_reference_that_passes_no_row_is_warned_about(pytester: pytest.Pytester):
    rows = make_project(pytester, n=8)["toolcall"]
    wrong = write_jsonl(pytester.path / "wrong.jsonl", predictions("toolcall", rows, wrong=set(range(8))))
    assert pytester.runpytest(*replay_args(wrong, "--tag", "ref")).ret == pytest.ExitCode.TESTS_FAILED
    ref = pytester.path / EVAL / "toolcall_replay_ref.json"
    result = gate(pytester, wrong, ref, "point")
    assert result.ret == pytest.ExitCode.OK  # nothing dropped: the gate holds, and says why that means little
    expected = "gate: warning: the reference passes no row of 8, so no drop can fail this gate: check the reference run"
    assert expected in result.stdout.str().splitlines()


@pytest.mark.parametrize("rule", ["point", "interval"])
def test_a_reference_whose_rates_disagree_with_its_predictions_stops_before_any_row(pytester: pytest.Pytester, rule: str):
    ref, current = reference_and_current(pytester, 8, {3})
    document = json.loads(ref.read_text())
    document["metrics"]["args_exact_rate"] = 0.5  # the rows say 1.0
    ref.write_text(json.dumps(document))
    result = gate(pytester, current, ref, rule)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    predictions_file = pytester.path / EVAL / "toolcall_replay_ref.predictions.jsonl"
    expected = (
        f"--gate-rule {rule}: {ref}: metrics.args_exact_rate is 0.5 but its predictions {predictions_file} give 1.0; "
        "the predictions are the source of truth: re-run the evaluation or restore the metric file"
    )
    assert expected in result.stderr.str() and not (pytester.path / EVAL / "toolcall_replay.json").exists()


def test_a_bad_reference_predictions_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "ref.predictions.jsonl"
    path.write_text(json.dumps({"id": "test-0000", "flags": {}}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"ref\.predictions\.jsonl: line 2: not a predictions line"):
        read_row_records(path)


def test_the_point_rule_without_reference_predictions_stops_before_any_row(pytester: pytest.Pytester):
    ref, current = reference_and_current(pytester, 8, wrong={3})
    (pytester.path / EVAL / "toolcall_replay_ref.predictions.jsonl").unlink()
    result = gate(pytester, current, Path(shutil.copy(ref, pytester.path / "reference.json")), "point")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    copied, sibling = pytester.path / "reference.json", pytester.path / "reference.predictions.jsonl"
    predictions_file = pytester.path / EVAL / "toolcall_replay_ref.predictions.jsonl"
    expected = (
        f"--gate-rule point: {copied}: the reference run's predictions file is missing (neither {sibling} nor {predictions_file} exists)"
    )
    assert expected in result.stderr.str() and not (pytester.path / EVAL / "toolcall_replay.json").exists()


def test_agent_turns_are_paired_by_turn_and_runs_over_other_turns_are_refused():
    reference = {"multi_turn_base_1": {"task_success": True, "turn_success": (True, True)}}
    current = {"multi_turn_base_1": {"task_success": False, "turn_success": (True, False)}}
    checks = {check.metric: (check.reference, check.current) for check in compare_paired("agent", reference, current, 0.02)}
    assert checks == {"task_success_rate": (1.0, 0.0), "turn_success_rate": (1.0, 0.5)}
    shorter = {"multi_turn_base_1": {"task_success": False, "turn_success": (True,)}}
    with pytest.raises(ValueError) as refused:
        compare_paired("agent", reference, shorter, 0.02)
    assert str(refused.value) == (
        "the gate compares the same rows, but the runs' rows differ: "
        "1 reference row(s) missing from this run (multi_turn_base_1#1); evaluate the reference's rows"
    )
