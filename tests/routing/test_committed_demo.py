"""tools/route.py on committed predictions: the offline demo's real runs (docs/routing-demo/: the embedded SmolLM2 as
the hosted stand-in and as the NF4 SLM, and, for structured, after its demo fine-tuning). The runs' recorded dataset paths are
gone, so the prompts come from the split with the same sha256: the test split as it was when they ran, kept beside them
in docs/routing-demo/02_dataset/ (the committed split has since dropped a row whose gold breaks its signature). The
route files it writes again match the committed ones, row by row."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "docs" / "routing-demo"


@pytest.mark.parametrize("track", ["structured", "toolcall"])
def test_routing_the_committed_demo_runs_gives_the_committed_route_files(tmp_path, langfuse_env, track):
    for path in DEMO.glob(f"{track}_*"):
        shutil.copy(path, tmp_path / path.name)
    cmd = [sys.executable, str(REPO / "tools" / "route.py"), "--tracks", track, "--eval-dir", str(tmp_path)]
    result = subprocess.run([*cmd, "--dataset-dir", str(DEMO / "02_dataset")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    again = json.loads((tmp_path / f"route_{track}.json").read_text())
    committed = json.loads((DEMO / f"route_{track}.json").read_text())
    assert again["variants"] == committed["variants"]
    assert set(again["variants"]) == ({"slm", "slm_after"} if track == "structured" else {"slm"})
    for variant in again["variants"].values():
        assert variant["n"] == 8 and variant["verdict"] == "no_baseline"  # the stand-in passes no row
        assert variant["verdict_text"] == (
            f"routing cannot be judged on {track}: the hosted model passes no row, so hosted-only has nothing to match"
        )
        assert variant["hosted_rows"] == 8 - variant["slm_rows"] == variant["rejection_cost"]["hosted_calls"]
