"""tools/decide.py end to end: decisions, decision.json, shell lines, the Langfuse event, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slm_swap.decision.rules import decide_track

REPO = Path(__file__).resolve().parents[2]
RATES = {
    "structured": ("json_valid_rate", "exact_match_rate"),
    "toolcall": ("valid_call_rate", "name_match_rate", "args_exact_rate"),
}


def metric_file(folder: Path, name: str, track: str, rates: list[float], sha: str = "a" * 64, split: str = "test", n: int = 200) -> Path:
    """A metric file and its predictions file: row i passes a check when i < rate * n (a row failing one has a failure)."""
    checks = [rate.removesuffix("_rate") for rate in RATES[track]]
    lines = [
        {"id": f"{split}-{i:04d}", "track": track, "output": "x", "flags": {c: i < round(r * n) for c, r in zip(checks, rates)}}
        for i in range(n)
    ]
    for line in lines:
        line["failure"] = None if all(line["flags"].values()) else "wrong_name"
    doc = {
        "track": track,
        "model": name.split("_")[1],
        "split": split,
        "n": n,
        "errors": 0,
        "passed": sum(all(line["flags"].values()) for line in lines),
        "metrics": dict(zip(RATES[track], rates)),
        "dataset": {"path": f"{track}/test.jsonl", "sha256": sha},
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    (folder / f"{name}.predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def decide(folder: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tools" / "decide.py"), "--eval-dir", str(folder), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def evals(tmp_path: Path, langfuse_env) -> Path:
    metric_file(tmp_path, "structured_azure", "structured", [1.0, 0.80])
    metric_file(tmp_path, "structured_slm", "structured", [1.0, 0.78])  # gap 0.02: not more than delta
    metric_file(tmp_path, "toolcall_azure", "toolcall", [1.0, 0.90, 0.70])
    metric_file(tmp_path, "toolcall_slm", "toolcall", [0.99, 0.90, 0.50])  # args gap 0.20
    return tmp_path


CASES = [
    # a gap of exactly delta does not trigger fine-tuning
    ("structured", [1.0, 0.80], [1.0, 0.78], False),
    # one metric past delta is enough
    ("toolcall", [1.0, 1.0, 0.7], [1.0, 1.0, 0.67], True),
    # an SLM better than the hosted model is never fine-tuned
    ("toolcall", [0.5, 0.5, 0.5], [1.0, 1.0, 1.0], False),
]


@pytest.mark.parametrize(("track", "hosted", "slm", "expected"), CASES)
def test_decide_track_fine_tunes_only_past_delta(track, hosted, slm, expected):
    docs = [{"metrics": dict(zip(RATES[track], r)), "n": 200} for r in (hosted, slm)]
    assert decide_track(track, docs[0], docs[1], 0.02).fine_tune is expected


def test_decide_writes_decision_prints_lines_and_logs_events(evals: Path, langfuse_env):
    result = decide(evals)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["FINE_TUNE_STRUCTURED=0", "FINE_TUNE_TOOLCALL=1"]
    doc = json.loads((evals / "decision.json").read_text())
    tool = doc["tracks"]["toolcall"]
    assert tool["metrics"]["args_exact_rate"]["gap"] == pytest.approx(0.2) and tool["delta"] == 0.02
    assert len(tool["inputs"]["hosted"]["sha256"]) == 64
    events = {s.name: s for s in langfuse_env.spans() if s.name.startswith("decision:")}
    assert set(events) == {"decision:structured", "decision:toolcall"}
    assert events["decision:toolcall"].json_attribute("langfuse.observation.output")["fine_tune"] == 1
    assert doc["langfuse"]["trace_id"] == events["decision:toolcall"].trace_id


def test_after_fine_tune_metrics_are_reported_beside(evals: Path):
    metric_file(evals, "toolcall_slm_ft", "toolcall", [1.0, 0.95, 0.72])
    assert decide(evals).returncode == 0
    doc = json.loads((evals / "decision.json").read_text())
    assert doc["tracks"]["toolcall"]["metrics"]["args_exact_rate"]["slm_after"] == 0.72


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: metric_file(d, "toolcall_slm", "toolcall", [1, 1, 1], sha="b" * 64), "different datasets"),
        (lambda d: metric_file(d, "toolcall_slm", "toolcall", [1, 1, 1], split="val"), "different splits"),
        (lambda d: (d / "structured_slm.json").unlink(), "structured_slm.json: metric file not found"),
        (lambda d: metric_file(d, "toolcall_slm", "toolcall", [1, 1, 1], n=20), "n=20"),
    ],
    ids=["other-dataset", "other-split", "missing-track", "other-row-count"],
)
def test_mismatched_inputs_stop_with_a_clear_message_and_write_nothing(evals: Path, change, message):
    change(evals)
    result = decide(evals)
    assert result.returncode == 2 and message in result.stderr
    assert not (evals / "decision.json").exists()


def test_delta_must_be_positive(evals: Path):
    result = decide(evals, "--delta", "0")
    assert result.returncode == 2 and "--delta must be > 0" in result.stderr


def test_missing_langfuse_config_stops_before_deciding(evals: Path, monkeypatch):
    monkeypatch.delenv("LANGFUSE_HOST")
    result = decide(evals)
    assert result.returncode == 2 and "LANGFUSE_HOST" in result.stderr
    assert not (evals / "decision.json").exists()
