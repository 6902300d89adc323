"""Replaying the committed predictions gives the committed metric and predictions files, byte for byte.

The expected files were written by the harness before the package split (issue 16); issue 17 added
each rate's pass count and 95 % Wilson interval (`counts`, `intervals`) and nothing else; issue 33 changed only the
dataset's path (the split the predictions were made on now lives in docs/routing-demo/02_dataset/). Any change of
behaviour in loading, scoring, aggregation or writing shows here. Only what differs per run by design
(timestamps, durations, trace ids, paths under the temporary folder) is masked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "replay"
# The predictions were made on the test split as it was before issue 33 made prepare_data drop rows whose gold breaks
# its own signature (row test-0004); that split is kept, byte for byte, beside the routing demo that also ran on it.
SPLIT_BEFORE_33 = REPO / "docs" / "routing-demo" / "02_dataset"
PER_RUN = ("started_at", "finished_at", "duration_s", "langfuse", "pytest_args", "predictions_path")


def masked_metric_text(path: Path) -> str:
    document = json.loads(path.read_text(encoding="utf-8"))
    for key in PER_RUN:
        document[key] = "<per run>"
    # the dataset path is absolute; only its place inside the checkout is the same on every machine
    document["dataset"]["path"] = Path(document["dataset"]["path"]).relative_to(REPO).as_posix()
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("track", ["structured", "toolcall"])
def test_replay_of_committed_predictions_is_byte_identical(track: str, tmp_path: Path, langfuse_env: object) -> None:
    predictions = FIXTURES / f"{track}.predictions.jsonl"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "evals",
        "-q",
        "-p",
        "no:cacheprovider",
        "--model=replay",
        "-k",
        track,
        f"--predictions={predictions.relative_to(REPO)}",
        f"--out-dir={tmp_path}",
        f"--dataset={SPLIT_BEFORE_33 / track / 'test.jsonl'}",
        "--limit=60",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # some rows fail by design
    expected = FIXTURES / "expected"
    assert (tmp_path / f"{track}_replay.predictions.jsonl").read_bytes() == (expected / f"{track}_replay.predictions.jsonl").read_bytes()
    assert masked_metric_text(tmp_path / f"{track}_replay.json") == (expected / f"{track}_replay.json").read_text(encoding="utf-8")
