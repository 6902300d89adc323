"""The harness end to end through pytester: ids, replay, xdist aggregation, gate, atomic writes, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from harness_support import REPO, make_project, predictions, write_jsonl

from slm_swap.harness.plugin import settings_from_config
from slm_swap.harness.settings import EvalSettings

TIMING = ("started_at", "finished_at", "duration_s", "pytest_args", "model_description", "predictions_path", "langfuse")


@pytest.fixture(autouse=True)
def importable_repo(monkeypatch: pytest.MonkeyPatch, langfuse_env) -> None:
    # xdist workers are fresh interpreters: they find slm_swap through PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def replay_args(pred: Path, *extra: str) -> list[str]:
    return ["evals", "--model=replay", f"--predictions={pred}", "-p", "no:randomly", *extra]


def read_metrics(pytester: pytest.Pytester, name: str) -> dict:
    return json.loads((pytester.path / "slm_swap" / "05_eval" / name).read_text())


def without_timing(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in TIMING}


@pytest.fixture
def project(pytester: pytest.Pytester) -> tuple[pytest.Pytester, Path, dict]:
    rows = make_project(pytester, n=8)
    pred = write_jsonl(
        pytester.path / "preds.jsonl",
        predictions("toolcall", rows["toolcall"], wrong={1, 5}) + predictions("structured", rows["structured"], wrong={2}),
    )
    return pytester, pred, rows


def test_each_row_is_a_case_with_split_and_index_id(project):
    pytester, pred, _ = project
    result = pytester.runpytest(*replay_args(pred, "--collect-only", "-q"))
    ids = [line for line in result.outlines if "::" in line]
    assert "evals/test_toolcall.py::test_toolcall[test-0007]" in ids and len(ids) == 16


def test_k_track_runs_one_track_and_writes_its_metric_file(project):
    pytester, pred, _ = project
    result = pytester.runpytest(*replay_args(pred, "-k", "toolcall"))
    result.assert_outcomes(passed=6, failed=2, deselected=8)
    doc = read_metrics(pytester, "toolcall_replay.json")
    assert (doc["n"], doc["metrics"]["args_exact_rate"], doc["metrics"]["name_match_rate"]) == (8, 0.75, 1.0)
    assert not (pytester.path / "slm_swap" / "05_eval" / "structured_replay.json").exists()


def test_single_row_debugging_by_id(project):
    pytester, pred, _ = project
    result = pytester.runpytest(*replay_args(pred, "-k", "toolcall and test-0005"))
    result.assert_outcomes(failed=1, deselected=15)
    # the failure reads at a glance: cause, checks, prompt, gold and output
    result.stdout.fnmatch_lines(
        ["*toolcall row test-0005 failed: arguments_differ*", "*args_exact=FAIL*", "*--- gold ---*", "*--- output ---*"]
    )


def test_xdist_run_aggregates_to_the_serial_metrics(project):
    pytester, pred, _ = project
    pytester.runpytest(*replay_args(pred, "--tag", "serial")).assert_outcomes(passed=13, failed=3)
    result = pytester.runpytest_subprocess(*replay_args(pred, "-n", "2", "--tag", "xdist"))
    result.assert_outcomes(passed=13, failed=3)
    for track in ("structured", "toolcall"):
        serial = read_metrics(pytester, f"{track}_replay_serial.json")
        parallel = read_metrics(pytester, f"{track}_replay_xdist.json")
        assert without_timing(serial) | {"tag": None} == without_timing(parallel) | {"tag": None}


def test_replay_of_the_harness_own_predictions_reproduces_metrics(project):
    pytester, pred, _ = project
    pytester.runpytest(*replay_args(pred, "-k", "structured"))
    first = read_metrics(pytester, "structured_replay.json")
    again = pytester.runpytest(*replay_args(Path(first["predictions_path"]), "-k", "structured", "--tag", "again"))
    again.assert_outcomes(passed=7, failed=1, deselected=8)
    assert read_metrics(pytester, "structured_replay_again.json")["metrics"] == first["metrics"]


def test_predictions_file_lists_every_row_with_flags(project):
    pytester, pred, _ = project
    pytester.runpytest(*replay_args(pred, "-k", "toolcall"))
    lines = (pytester.path / "slm_swap" / "05_eval" / "toolcall_replay.predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [f"test-{i:04d}" for i in range(8)] and records[1]["flags"]["args_exact"] is False


def gate_reference(pytester: pytest.Pytester, rows: dict, wrong: set[int]) -> Path:
    """A reference run of the toolcall track's 8 rows, `wrong` rows wrong: its metric file, its predictions beside."""
    reference = write_jsonl(pytester.path / "reference.jsonl", predictions("toolcall", rows["toolcall"], wrong=wrong))
    out_dir = pytester.path / "reference"  # not the run's own folder, which stays empty until a row runs
    assert pytester.runpytest(*replay_args(reference, "-k", "toolcall", "--tag", "ref", f"--out-dir={out_dir}")).ret in (0, 1)
    return out_dir / "toolcall_replay_ref.json"


def test_gate_passes_on_metrics_although_rows_fail(project):
    pytester, pred, rows = project
    ref = gate_reference(pytester, rows, {1})  # args_exact 0.875; current 0.75: a drop of 0.125 is within delta 0.125
    result = pytester.runpytest(*replay_args(pred, "-k", "toolcall", f"--gate-against={ref}", "--delta=0.125"))
    assert result.ret == 0 and result.parseoutcomes()["failed"] == 2


def test_gate_fails_when_a_core_metric_drops_more_than_delta(project):
    pytester, pred, rows = project
    ref = gate_reference(pytester, rows, set())  # 1.000 against 0.750
    result = pytester.runpytest(*replay_args(pred, "-k", "toolcall", f"--gate-against={ref}", "--delta=0.02"))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*gate args_exact_rate*FAIL*", "gate: FAILED"])


def test_gate_against_a_track_not_run_is_a_usage_error(project):
    pytester, pred, rows = project
    ref = gate_reference(pytester, rows, set())
    result = pytester.runpytest(*replay_args(pred, "-k", "structured", f"--gate-against={ref}"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_bad_dataset_row_names_file_and_row(project):
    pytester, pred, rows = project
    path = pytester.path / "slm_swap" / "02_dataset" / "toolcall" / "test.jsonl"
    lines = path.read_text().splitlines()
    lines[3] = json.dumps({"prompt": "p", "completion": '<tool_call name="x">{not json}</tool_call>'})
    path.write_text("\n".join(lines) + "\n")
    result = pytester.runpytest(*replay_args(pred, "-k", "toolcall"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{path}: row 3 (line 4)" in result.stderr.str() + result.stdout.str()


def test_broken_dataset_of_an_unselected_track_is_ignored(project):
    pytester, pred, _ = project
    (pytester.path / "slm_swap" / "02_dataset" / "structured" / "test.jsonl").write_text("{broken\n")
    pytester.runpytest(*replay_args(pred, "-k", "toolcall")).assert_outcomes(passed=6, failed=2, deselected=1)


def test_replay_without_a_prediction_for_a_row_stops_with_its_id(project):
    pytester, _, rows = project
    pred = write_jsonl(pytester.path / "short.jsonl", predictions("toolcall", rows["toolcall"])[:5])
    result = pytester.runpytest(*replay_args(pred, "-k", "toolcall"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no prediction for 3 selected row(s): test-0005" in result.stdout.str() + result.stderr.str()


def test_missing_model_option_is_a_usage_error(project):
    pytester, _, _ = project
    result = pytester.runpytest("evals")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--model=" in result.stderr.str()


def test_limit_takes_the_first_rows(project):
    pytester, pred, _ = project
    pytester.runpytest(*replay_args(pred, "-k", "toolcall", "--limit", "3")).assert_outcomes(passed=2, failed=1, deselected=3)
    assert read_metrics(pytester, "toolcall_replay.json")["n"] == 3


def test_interrupted_run_leaves_no_metric_file_and_keeps_the_old_one(project, monkeypatch):
    pytester, pred, _ = project
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{pytester.path}")
    pytester.runpytest(*replay_args(pred, "-k", "toolcall"))
    metric = pytester.path / "slm_swap" / "05_eval" / "toolcall_replay.json"
    before = metric.read_bytes()
    pytester.makepyfile(
        conftest_interrupt="""
def pytest_runtest_call(item):
    if item.name.endswith("[test-0004]"):
        raise KeyboardInterrupt
"""
    )
    result = pytester.runpytest_subprocess(*replay_args(pred, "-k", "toolcall", "-p", "conftest_interrupt"))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert metric.read_bytes() == before
    assert not list(metric.parent.glob("*.partial"))


def test_worker_crash_row_is_recorded_and_counts_sum_to_n(project, monkeypatch):
    pytester, pred, _ = project
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{pytester.path}")
    pytester.makepyfile(
        crash_plugin="""
import os
def pytest_runtest_call(item):
    if item.name.endswith("[test-0003]"):
        os._exit(1)
"""
    )
    result = pytester.runpytest_subprocess(*replay_args(pred, "-k", "toolcall", "-n", "2", "-p", "crash_plugin"))
    doc = read_metrics(pytester, "toolcall_replay.json")
    assert (doc["n"], doc["errors"], doc["error_classes"]) == (8, 1, {"worker_crash": 1})
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def no_row_ran(result: pytest.RunResult, pytester: pytest.Pytester) -> bool:
    """No progress line ("[ 50%]") was printed and nothing was written or journalled."""
    return "%]" not in result.stdout.str() and not (pytester.path / "slm_swap" / "05_eval").exists()


def test_out_dir_that_is_a_file_is_a_one_line_usage_error_before_any_row(project):
    pytester, pred, _ = project
    blocker = pytester.path / "results.txt"
    blocker.write_text("keep me\n")
    for out_dir, message in ((blocker, "is a file"), (blocker / "sub", f"{blocker} is a file")):
        result = pytester.runpytest(*replay_args(pred, "-k", "toolcall", f"--out-dir={out_dir}"))
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert result.stderr.lines == [f"error: --out-dir {out_dir}: {message}, not a folder"]
        assert "Traceback" not in result.stdout.str() + result.stderr.str()
        assert no_row_ran(result, pytester) and blocker.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "metric file not found"), ("{not json", "not a readable metric file"), ("[1, 2]", "not an SLM Swap metric file")],
    ids=["missing", "malformed", "not-a-metric-file"],
)
def test_a_bad_gate_reference_stops_the_run_before_any_row(project, content, message):
    pytester, pred, _ = project
    ref = pytester.path / "reference.json"
    if content is not None:
        ref.write_text(content)
    result = pytester.runpytest(*replay_args(pred, "-k", "toolcall", f"--gate-against={ref}"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--gate-against: {ref}: {message}" in result.stderr.str()
    assert no_row_ran(result, pytester)


def test_a_gate_reference_for_an_unselected_track_stops_before_any_row(project):
    pytester, pred, rows = project
    ref = gate_reference(pytester, rows, set())
    result = pytester.runpytest(*replay_args(pred, "-k", "structured", f"--gate-against={ref}"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "reference is for track 'toolcall', which this run does not evaluate" in result.stderr.str()
    assert no_row_ran(result, pytester)


def test_option_defaults_are_the_settings_defaults(pytester: pytest.Pytester):
    """Written once: a run with no options resolves to EvalSettings' own defaults."""
    config = pytester.parseconfig("-p", "slm_swap.harness.plugin")
    resolved = settings_from_config(config)
    for field in dataclasses.fields(EvalSettings):
        if field.name in ("out_dir", "dataset_dir", "ft_dir", "cache_dir", "pytest_args"):
            continue  # paths resolve against the project root
        assert getattr(resolved, field.name) == field.default, field.name
    assert resolved.cache_dir == resolved.out_dir / "cache"
