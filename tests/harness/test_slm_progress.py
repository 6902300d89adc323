"""While the SLM generates its rows up front, the run says how far it is: rows done of total, rows/s."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness_support import REPO, make_project

from slm_swap.backends.checkpoints import ensure_checkpoint

CHECKPOINT_NAME = "smollm2-135m-instruct"
PROGRESS = re.compile(r"^slm toolcall: (\d+)/5 rows generated, (\d+\.\d\d) rows/s, \d+ s$")


@pytest.mark.slow
def test_slm_generation_prints_progress_past_the_capture(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, langfuse_env) -> None:
    checkpoint = ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)
    make_project(pytester, n=5)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("SLM_MODEL_PATH", str(Path(checkpoint)))
    args = ["evals", "-k", "toolcall", "--model=slm", "--batch-size=2", "--max-new-tokens=4", "--no-cache", "-p", "no:randomly"]
    result = pytester.runpytest_subprocess(*args, timeout=600)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stderr.str()[-2000:]
    assert "slm toolcall: generating 5 rows" in result.stderr.lines
    done = [int(match.group(1)) for line in result.stderr.lines if (match := PROGRESS.match(line))]
    # one line per batch of at most two rows, counting up to every row
    assert done[-1] == 5 and all(0 < later - earlier <= 2 for earlier, later in zip([0, *done], done))
    assert all(float(match.group(2)) > 0 for line in result.stderr.lines if (match := PROGRESS.match(line)))
    # within the first batch, before any batch ends: the tokens generated so far
    assert re.search(r"^slm toolcall: batch of ([12]) rows \(rows 1-\1 of 5\): [1-4]/4 tokens, \d+ s$", result.stderr.str(), re.MULTILINE)
    assert (pytester.path / "slm_swap" / "05_eval" / "toolcall_slm.json").exists()
