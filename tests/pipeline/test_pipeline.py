"""The whole pipeline end to end on a few rows, in a copy of the repository (the offline demo path)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slm_swap.backends.checkpoints import ensure_checkpoint

REPO = Path(__file__).resolve().parents[2]
MODELS = ("smollm2-135m-instruct", "gemma-3-270m")


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tracked files, as a fresh clone has them, plus the embedded checkpoints (converted once)."""
    root = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    for model in MODELS:
        source = ensure_checkpoint(model, REPO / "slm_swap" / "models" / model)
        (root / "slm_swap" / "models" / model).symlink_to(source, target_is_directory=True)
    return root


def run_pipeline(clone: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AZURE_"))}
    env.update(PYTHONPATH=str(clone), OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "tools/pipeline.py",
        "--demo",
        "--tracks",
        "toolcall",
        "--limit",
        "2",
        "--train-limit",
        "2",
        "--max-new-tokens",
        "12",
        *extra,
    ]
    return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_demo_pipeline_runs_every_step_and_skips_them_when_run_again(clone: Path):
    first = run_pipeline(clone, "--force-finetune")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    evals = clone / "slm_swap" / "05_eval"
    for name in ("toolcall_azure.json", "toolcall_slm.json", "toolcall_slm_ft.json", "decision.json", "report.md", "report.png"):
        assert (evals / name).is_file(), name
    assert (clone / "slm_swap" / "04_ft" / "adapter_toolcall" / "adapter_config.json").is_file()
    hosted = json.loads((evals / "toolcall_azure.json").read_text())
    assert hosted["n"] == 2 and hosted["model_description"]["endpoint"].startswith("http://127.0.0.1:")
    assert "toolcall" in (evals / "report.md").read_text()
    # a few rows of tiny models cannot show the SLM matches: the verdict says so, in the decision, the report and the closing lines
    entry = json.loads((evals / "decision.json").read_text())["tracks"]["toolcall"]
    assert entry["verdict"] in ("no_baseline", "inconclusive"), entry["verdict_text"]
    assert "==== verdicts ====" in first.stdout and f"toolcall: {entry['verdict_text']}" in first.stdout
    assert "gap_ci95" in entry["metrics"]["args_exact_rate"] and "Verdict:" in (evals / "report.md").read_text()
    # no LANGFUSE_* given: the demo's local receiver got the traces (2 evals + 1 re-eval, training, decisions)
    assert len(list((evals / "langfuse-local").glob("trace-*.json"))) >= 5
    second = run_pipeline(clone, "--force-finetune")
    assert second.returncode == 0, second.stderr[-3000:]
    for step in ("evaluate toolcall_azure", "evaluate toolcall_slm", "fine-tune toolcall", "evaluate toolcall_slm_ft"):
        assert f"{step}: skipped" in second.stdout
