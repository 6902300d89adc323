"""Each verdict end to end: crafted predictions replayed through `pytest evals`, then `tools/decide.py`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness_support import REPO, make_project, predictions, write_jsonl

ROWS = 60


@pytest.fixture(autouse=True)
def importable_repo(monkeypatch: pytest.MonkeyPatch, langfuse_env) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


@pytest.fixture
def project(pytester: pytest.Pytester) -> tuple[pytest.Pytester, list[dict[str, str]]]:
    rows = make_project(pytester, n=ROWS)
    return pytester, rows["toolcall"]


def evaluate(pytester: pytest.Pytester, rows: list[dict[str, str]], tag: str, wrong: set[int], *extra: str, k: str = "toolcall") -> Path:
    """Replays answers that are gold except the rows in `wrong`; returns the run's metric file."""
    pred = write_jsonl(pytester.path / f"{tag}.jsonl", predictions("toolcall", rows, wrong=wrong))
    result = pytester.runpytest("evals", "-k", k, "--model=replay", f"--predictions={pred}", "--tag", tag, *extra)
    assert result.ret in (0, 1), result.stdout.str()[-2000:]
    return pytester.path / "slm_swap" / "05_eval" / f"toolcall_replay_{tag}.json"


def decide(pytester: pytest.Pytester, hosted: Path, slm: Path, *extra: str) -> subprocess.CompletedProcess:
    eval_dir = pytester.path / "slm_swap" / "05_eval"
    cmd = [sys.executable, str(REPO / "tools" / "decide.py"), "--eval-dir", str(eval_dir), "--tracks", "toolcall"]
    cmd += ["--toolcall-hosted", str(hosted), "--toolcall-slm", str(slm), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def decision(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "slm_swap" / "05_eval" / "decision.json").read_text())["tracks"]["toolcall"]


CASES = [
    # the hosted model gets every row's arguments wrong: it passes no row, so nothing can be matched
    ("no_baseline", set(range(ROWS)), set(), ("--delta", "0.02"), "no_baseline: the hosted model passes no row"),
    # half the rows newly wrong: the gap's interval lies far above delta
    ("slm_trails", set(), set(range(0, ROWS, 2)), ("--delta", "0.02"), "slm_trails: the SLM trails the hosted model"),
    # the same answers, and a delta the 60 rows can resolve
    ("slm_matches", set(), set(), ("--delta", "0.1"), "slm_matches: on every core metric"),
    # two rows newly wrong: a gap of 0.033 whose interval straddles 0.02
    ("inconclusive", set(), {3, 7}, ("--delta", "0.02"), "inconclusive: the rows cannot tell"),
]


@pytest.mark.parametrize(("verdict", "hosted_wrong", "slm_wrong", "args", "text"), CASES, ids=[c[0] for c in CASES])
def test_each_verdict_end_to_end(project, verdict, hosted_wrong, slm_wrong, args, text):
    pytester, rows = project
    hosted, slm = evaluate(pytester, rows, "hosted", hosted_wrong), evaluate(pytester, rows, "slm", slm_wrong)
    result = decide(pytester, hosted, slm, *args)
    assert result.returncode == 0, result.stderr
    entry = decision(pytester)
    assert entry["verdict"] == verdict and entry["verdict_text"].startswith(text)
    assert f"toolcall: {entry['verdict_text']}" in result.stderr  # printed as recorded
    args_exact = entry["metrics"]["args_exact_rate"]
    assert args_exact["only_hosted"] == len(slm_wrong - hosted_wrong) and args_exact["only_slm"] == len(hosted_wrong - slm_wrong)
    low, high = args_exact["gap_ci95"]
    assert low <= args_exact["gap"] <= high
    if verdict == "inconclusive":
        assert entry["rows_needed"] > ROWS and f"about {entry['rows_needed']} rows would resolve it" in entry["verdict_text"]
    else:
        assert entry["rows_needed"] is None


def test_the_interval_rule_fine_tunes_only_a_trailing_slm(project):
    pytester, rows = project
    hosted, slm = evaluate(pytester, rows, "hosted", set()), evaluate(pytester, rows, "slm", {3, 7})
    # the point rule fine-tunes on a 0.033 gap; the interval rule waits for evidence unless told otherwise
    assert decide(pytester, hosted, slm).stdout.splitlines() == ["FINE_TUNE_TOOLCALL=1"]
    assert decide(pytester, hosted, slm, "--rule", "interval").stdout.splitlines() == ["FINE_TUNE_TOOLCALL=0"]
    assert decision(pytester)["rule"] == "interval"
    wait = decide(pytester, hosted, slm, "--rule", "interval", "--fine-tune-when-inconclusive")
    assert wait.stdout.splitlines() == ["FINE_TUNE_TOOLCALL=1"]


def test_runs_on_different_datasets_are_refused(project):
    pytester, rows = project
    hosted = evaluate(pytester, rows, "hosted", set())
    other = pytester.path / "other" / "test.jsonl"  # the same row ids, another dataset
    other.parent.mkdir()
    other.write_text((pytester.path / "slm_swap" / "02_dataset" / "toolcall" / "test.jsonl").read_text().replace("City 1", "Town 1"))
    slm = evaluate(pytester, rows, "slm", set(), f"--dataset={other}")
    result = decide(pytester, hosted, slm)
    assert result.returncode == 2 and "evaluated different datasets" in result.stderr
    assert not (pytester.path / "slm_swap" / "05_eval" / "decision.json").exists()


def test_runs_on_different_rows_are_refused_naming_the_rows(project):
    pytester, rows = project
    hosted = evaluate(pytester, rows, "hosted", set(), k="toolcall and not test-0003")
    slm = evaluate(pytester, rows, "slm", set(), k="toolcall and not test-0004")
    result = decide(pytester, hosted, slm)
    assert result.returncode == 2, result.stderr
    assert (
        "evaluated different rows: 1 row(s) only in" in result.stderr and "(test-0004)" in result.stderr and "(test-0003)" in result.stderr
    )
    assert not (pytester.path / "slm_swap" / "05_eval" / "decision.json").exists()


def test_the_decision_event_carries_the_intervals_and_the_verdict(project, langfuse_env):
    pytester, rows = project
    hosted, slm = evaluate(pytester, rows, "hosted", set()), evaluate(pytester, rows, "slm", {3, 7})
    assert decide(pytester, hosted, slm).returncode == 0
    event = next(s for s in langfuse_env.spans() if s.name == "decision:toolcall")
    payload = event.json_attribute("langfuse.observation.output")
    assert payload["verdict"] == "inconclusive" and payload["rows_needed"] == decision(pytester)["rows_needed"]
    assert payload["metrics"]["args_exact_rate"]["gap_ci95"] == decision(pytester)["metrics"]["args_exact_rate"]["gap_ci95"]
    assert "mcnemar_p" in payload["metrics"]["args_exact_rate"]
