"""tools/route.py end to end: the shares, rates, gaps and verdicts of constructed pairs whose answers are known, the
route file and its Langfuse trace, the SLM + adapter beside the base, and every refusal with its exact message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from route_support import call, known_pair, write_dataset, write_run

REPO = Path(__file__).resolve().parents[2]


def route(folder: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tools" / "route.py"), "--eval-dir", str(folder), "--dataset-dir", str(folder / "data"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("track", ["structured", "toolcall"])
def test_known_pair_gives_the_expected_shares_rates_and_costs(tmp_path, langfuse_env, track):
    result = route(known_pair(tmp_path, track), "--tracks", track)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / f"route_{track}.json").read_text())
    base = doc["variants"]["slm"]
    assert (base["n"], base["slm_rows"], base["hosted_rows"], base["slm_share"]) == (40, 25, 15, 0.625)
    assert base["precision"] == 0.8  # 20 of the 25 accepted answers are exactly right
    strict = "exact_match_rate" if track == "structured" else "args_exact_rate"
    rates = {system: base["rates"][system][strict]["passed"] for system in ("hosted_only", "slm_only", "routed")}
    assert rates == {"hosted_only": 33, "slm_only": 25, "routed": 28}
    gap = base["gap_to_hosted_only"][strict]
    assert (gap["gap"], gap["only_hosted"], gap["only_routed"]) == (0.125, 5, 0)
    assert base["rejections"] == {"missing_required": 5, "no_tool_call" if track == "toolcall" else "not_json": 10}
    assert base["rejection_cost"] == {"hosted_calls": 15, "slm_was_right": 5, "passes_lost": 2, "passes_gained": 5}
    assert base["routes"]["test-0024"] == {"route": "slm", "reason": "accepted"}
    assert base["routes"]["test-0035"] == {"route": "hosted", "reason": "missing_required: required parameter 'days' is missing"}
    assert base["verdict"] == "inconclusive"
    assert "slm_after" not in doc["variants"]
    event = next(s for s in langfuse_env.spans() if s.name == f"route:{track}")
    traced = event.json_attribute("langfuse.observation.output")["variants"]["slm"]
    assert traced["slm_rows"] == 25 and "routes" not in traced  # the per-row routes stay in the file
    assert doc["langfuse"]["trace_id"] == event.trace_id
    assert f"{track} (SLM): the SLM serves 25/40 rows (validator precision 0.800)" in result.stdout


def matching_pair(folder: Path, n: int, right: int, hosted_right: bool = True) -> Path:
    dataset = write_dataset(folder / "data", "toolcall", n)
    slm = [call("toolcall", f"C{i}") if i < right else "I cannot help." for i in range(n)]
    write_run(folder, "toolcall_azure", "toolcall", dataset, [call("toolcall", f"C{i}") if hosted_right else "no" for i in range(n)])
    write_run(folder, "toolcall_slm", "toolcall", dataset, slm)
    return folder


def test_a_validator_that_rejects_every_wrong_answer_lets_the_slm_serve_its_share(tmp_path, langfuse_env):
    result = route(matching_pair(tmp_path, 400, 256), "--tracks", "toolcall")
    assert result.returncode == 0, result.stderr
    base = json.loads((tmp_path / "route_toolcall.json").read_text())["variants"]["slm"]
    assert (base["slm_share"], base["precision"], base["verdict"]) == (0.64, 1.0, "slm_matches")
    assert base["verdict_text"] == (
        "the SLM can serve 64 % of toolcall traffic with valid_call_rate, name_match_rate, args_exact_rate within delta 0.02 of hosted-only"
    )


def test_an_slm_whose_answers_are_all_rejected_does_not_help(tmp_path, langfuse_env):
    assert route(matching_pair(tmp_path, 40, 0), "--tracks", "toolcall").returncode == 0
    base = json.loads((tmp_path / "route_toolcall.json").read_text())["variants"]["slm"]
    assert base["verdict_text"] == (
        "routing does not help on toolcall: the validator accepts none of the SLM's 40 answers; every request goes to the hosted model"
    )


def test_a_hosted_model_that_passes_nothing_leaves_nothing_to_match(tmp_path, langfuse_env):
    assert route(matching_pair(tmp_path, 40, 20, hosted_right=False), "--tracks", "toolcall").returncode == 0
    base = json.loads((tmp_path / "route_toolcall.json").read_text())["variants"]["slm"]
    assert base["verdict_text"] == (
        "routing cannot be judged on toolcall: the hosted model passes no row, so hosted-only has nothing to match"
    )


def test_accepted_wrong_answers_past_delta_mean_routing_does_not_help(tmp_path, langfuse_env):
    dataset = write_dataset(tmp_path / "data", "toolcall", 200)
    write_run(tmp_path, "toolcall_azure", "toolcall", dataset, [call("toolcall", f"C{i}") for i in range(200)])
    write_run(tmp_path, "toolcall_slm", "toolcall", dataset, [call("toolcall", f"C{i}" if i % 2 else "x") for i in range(200)])
    assert route(tmp_path, "--tracks", "toolcall").returncode == 0
    base = json.loads((tmp_path / "route_toolcall.json").read_text())["variants"]["slm"]
    assert base["verdict_text"] == (
        "routing does not help on toolcall: with the SLM serving 100 % of traffic the routed system trails hosted-only by more "
        "than delta 0.02 on args_exact_rate, beyond the rows' noise (100 of the 200 accepted SLM answers are wrong)"
    )


def test_the_slm_with_its_adapter_is_routed_beside_the_base(tmp_path, langfuse_env):
    known_pair(tmp_path)
    dataset = tmp_path / "data" / "toolcall" / "test.jsonl"
    write_run(tmp_path, "toolcall_slm_ft", "toolcall", dataset, [call("toolcall", f"C{i}") for i in range(40)])
    assert route(tmp_path, "--tracks", "toolcall").returncode == 0
    doc = json.loads((tmp_path / "route_toolcall.json").read_text())
    assert doc["variants"]["slm_after"]["slm_rows"] == 35  # rows 35-39 keep their rejected (gold-shaped) answers
    assert doc["variants"]["slm"]["slm_rows"] == 25
    assert set(doc["inputs"]) == {"hosted", "slm", "slm_after"}


def edit_json(path: Path, **changes) -> None:
    doc = json.loads(path.read_text())
    for key, value in changes.items():
        target = doc
        *parents, last = key.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    path.write_text(json.dumps(doc))


def refusal(folder: Path, *args: str) -> str:
    result = route(folder, "--tracks", "toolcall", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert not (folder / "route_toolcall.json").exists()  # nothing written
    return result.stderr.strip()


def test_refuses_a_delta_that_is_not_positive(tmp_path, langfuse_env):
    assert refusal(known_pair(tmp_path), "--delta", "0") == "error: --delta must be > 0"


def test_refuses_to_run_without_langfuse(tmp_path, langfuse_env, monkeypatch):
    monkeypatch.delenv("LANGFUSE_SECRET_KEY")
    assert refusal(known_pair(tmp_path)) == (
        "error: Langfuse: Langfuse is not configured: set LANGFUSE_SECRET_KEY (project keys from the Langfuse project settings, "
        "and the Langfuse base URL)"
    )


def test_refuses_a_missing_run(tmp_path, langfuse_env):
    (known_pair(tmp_path) / "toolcall_slm.json").unlink()
    assert refusal(tmp_path) == (
        f"error: {tmp_path}/toolcall_slm.json: metric file not found "
        "(track toolcall: evaluate it first, e.g. `pytest evals -k toolcall --model=...`)"
    )


def test_refuses_a_run_without_its_predictions(tmp_path, langfuse_env):
    (known_pair(tmp_path) / "toolcall_slm.predictions.jsonl").unlink()
    assert refusal(tmp_path) == (
        f"error: {tmp_path}/toolcall_slm.predictions.jsonl: predictions file not found; the paired comparison needs each row's "
        f"flags (re-run the evaluation of {tmp_path}/toolcall_slm.json)"
    )


def test_refuses_a_metric_file_its_predictions_contradict(tmp_path, langfuse_env):
    edit_json(known_pair(tmp_path) / "toolcall_slm.json", metrics__args_exact_rate=0.999)
    assert refusal(tmp_path) == (
        f"error: {tmp_path}/toolcall_slm.json: metrics.args_exact_rate is 0.999 but its predictions "
        f"{tmp_path}/toolcall_slm.predictions.jsonl "
        "give 0.625; the predictions are the source of truth: re-run the evaluation or restore the metric file"
    )


def test_refuses_runs_of_different_datasets(tmp_path, langfuse_env):
    edit_json(known_pair(tmp_path) / "toolcall_slm.json", dataset__sha256="b" * 64)
    sha = json.loads((tmp_path / "toolcall_azure.json").read_text())["dataset"]["sha256"]
    assert refusal(tmp_path) == (
        f"error: {tmp_path}/toolcall_azure.json and {tmp_path}/toolcall_slm.json evaluated different datasets "
        f"(sha256 {sha[:12]} vs bbbbbbbbbbbb)"
    )


def test_refuses_runs_of_different_rows(tmp_path, langfuse_env):
    known_pair(tmp_path)
    predictions = tmp_path / "toolcall_slm.predictions.jsonl"
    predictions.write_text(predictions.read_text().replace('"test-0039"', '"test-0099"'))
    assert refusal(tmp_path) == (
        f"error: {tmp_path}/toolcall_azure.json and {tmp_path}/toolcall_slm.json evaluated different rows: 1 row(s) only in "
        f"{tmp_path}/toolcall_azure.json (test-0039); 1 row(s) only in {tmp_path}/toolcall_slm.json (test-0099); evaluate the same rows"
    )


def test_refuses_runs_whose_prompts_are_gone(tmp_path, langfuse_env):
    known_pair(tmp_path)
    dataset = tmp_path / "data" / "toolcall" / "test.jsonl"
    sha = json.loads((tmp_path / "toolcall_azure.json").read_text())["dataset"]["sha256"]
    dataset.unlink()
    assert refusal(tmp_path) == (
        f"error: {tmp_path}/toolcall_azure.json: the dataset it evaluated (sha256 {sha[:12]}) is neither at {dataset} nor at {dataset}; "
        "the validator reads the offered signatures from its prompts (pass --dataset-dir)"
    )


def test_an_adapter_run_on_other_rows_is_reported_and_the_base_still_routed(tmp_path, langfuse_env):
    known_pair(tmp_path)
    dataset = tmp_path / "data" / "toolcall" / "test.jsonl"
    write_run(tmp_path, "toolcall_slm_ft", "toolcall", dataset, [call("toolcall", "C0")] * 40)
    predictions = tmp_path / "toolcall_slm_ft.predictions.jsonl"
    predictions.write_text(predictions.read_text().replace('"test-0039"', '"test-0099"'))
    assert route(tmp_path, "--tracks", "toolcall").returncode == 0
    doc = json.loads((tmp_path / "route_toolcall.json").read_text())
    assert doc["variants"]["slm_after"] == {
        "error": f"{tmp_path}/toolcall_azure.json and {tmp_path}/toolcall_slm_ft.json evaluated different rows: 1 row(s) only in "
        f"{tmp_path}/toolcall_azure.json (test-0039); 1 row(s) only in {tmp_path}/toolcall_slm_ft.json (test-0099); evaluate the same rows"
    }
    assert doc["variants"]["slm"]["slm_rows"] == 25
