"""tools/route.py on a committed GPU run (docs/example-run-routing/: 200 rows a track, the embedded SmolLM2 as the
hosted stand-in and as the NF4 SLM, and, for structured, after fine-tuning). The route files it writes again match the
committed ones, row by row, and say what the folder's README says they say."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "docs" / "example-run-routing"


@pytest.fixture(scope="module")
def routed(tmp_path_factory, fresh_langfuse_env) -> dict[str, dict]:
    env = {**os.environ, **fresh_langfuse_env()}
    folder = tmp_path_factory.mktemp("gpu_run")
    for path in RUN.glob("*_*.json*"):
        if not path.name.startswith(("route_", "training_")):
            shutil.copy(path, folder / path.name)
    cmd = [sys.executable, str(REPO / "tools" / "route.py"), "--eval-dir", str(folder)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return {track: json.loads((folder / f"route_{track}.json").read_text()) for track in ("structured", "toolcall")}


@pytest.mark.parametrize("track", ["structured", "toolcall"])
def test_routing_the_committed_gpu_run_gives_the_committed_route_files(routed, track):
    committed = json.loads((RUN / f"route_{track}.json").read_text())
    assert routed[track]["variants"] == committed["variants"]


def test_the_adapter_serves_a_fifth_of_structured_traffic_with_precision_below_one(routed):
    after = routed["structured"]["variants"]["slm_after"]
    assert (after["n"], after["slm_rows"], after["hosted_rows"], after["precision"]) == (200, 44, 156, 0.272727)
    assert sum(after["rejections"].values()) == 156 and after["rejections"]["not_json"] == 47
    exact = after["rates"]
    assert (exact["hosted_only"]["exact_match_rate"]["passed"], exact["routed"]["exact_match_rate"]["passed"]) == (0, 12)
    assert after["gap_to_hosted_only"]["exact_match_rate"]["ci95"][1] < 0  # routing beats hosted-only here
    assert after["verdict"] == "no_baseline"  # but the stand-in passes no row: nothing to stay within delta of
    base = routed["structured"]["variants"]["slm"]
    assert (base["slm_rows"], routed["toolcall"]["variants"]["slm"]["slm_rows"]) == (0, 0)


def test_readmes_partial_swaps_table_is_this_runs_report_table(routed):
    from slm_swap.report.routing import variant_lines

    lines = variant_lines("structured", "slm_after", routed["structured"]["variants"]["slm_after"])
    table = "\n".join(line for line in lines if line.startswith("|"))
    assert table in (REPO / "README.md").read_text(encoding="utf-8")
