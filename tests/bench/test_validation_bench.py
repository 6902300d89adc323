"""The validator's latency benchmark: every row of each track's test split timed for both replies, in microseconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from slm_swap.bench.validation import bench_validation, summary

REPO = Path(__file__).resolve().parents[2]


def test_summary_orders_median_p99_and_max():
    assert summary([5.0, 1.0, 3.0]) == {"median_us": 3.0, "p99_us": 5.0, "max_us": 5.0}


def test_every_row_of_both_tracks_is_timed(tmp_path):
    for track in ("structured", "toolcall"):
        folder = tmp_path / track
        folder.mkdir()
        lines = (REPO / "slm_swap" / "02_dataset" / track / "test.jsonl").read_text().splitlines()[:3]
        (folder / "test.jsonl").write_text("\n".join(lines) + "\n")
    result = bench_validation(tmp_path, repeats=2)
    assert result["repeats_per_row"] == 2 and set(result["tracks"]) == {"structured", "toolcall"}
    for block in result["tracks"].values():
        assert block["rows"] == 3
        assert all(
            0 < block[kind]["median_us"] <= block[kind]["max_us"] for kind in ("gold_reply", "prose_reply", "reading_the_signatures")
        )


def test_the_tool_prints_and_writes_the_summary(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "tools" / "bench_validation.py"), "--repeats", "1", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(out.read_text())
    assert json.loads(out.read_text())["tracks"]["toolcall"]["rows"] == 200
