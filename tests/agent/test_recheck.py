"""`tools/build_trajectories.py` re-checks every record that claims acceptance by replaying it; a claim is data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.data.splits import load_split_tasks
from slm_swap.tracks.agent.data.trajectories import write_trajectories
from slm_swap.tracks.agent.episodes.demonstrations import gold_demonstrations
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings

REPO = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO / "slm_swap" / "02_dataset" / "agent"


def test_a_record_that_claims_acceptance_but_fails_the_replay_is_dropped_with_its_reason(tmp_path: Path) -> None:
    tasks = load_split_tasks(AGENT_DIR / "train.jsonl", load_multi_turn())[:2]
    honest, forged = gold_demonstrations(tasks, EpisodeSettings("toolcall"))
    assert honest.accepted and forged.accepted
    marker = tmp_path / "code-ran"
    messages = [dict(m) for m in forged.messages]
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    # the first action swapped for a call whose name is code, the verdict left saying accepted
    messages[first]["content"] = f"<tool_call name=\"__import__('os').system('touch {marker}') or ls\">{{}}</tool_call>"
    records = [honest.to_json(), {**forged.to_json(), "messages": messages}]
    inputs = tmp_path / "claims.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "agent_toolcall"
    command = [sys.executable, "tools/build_trajectories.py", "--arm", "toolcall", "--inputs", str(inputs), "--out-dir", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["dropped"]["claims acceptance but fails the re-check"] == 1
    assert list(manifest["recheck_failures"]) == [forged.id]
    assert manifest["counts"]["train"] == 1
    assert not marker.exists()


def test_an_honest_record_passes_the_replay(tmp_path: Path) -> None:
    tasks = load_split_tasks(AGENT_DIR / "val.jsonl", load_multi_turn())[:1]
    records = gold_demonstrations(tasks, EpisodeSettings("codeact"))
    write_trajectories(tmp_path / "gold.jsonl", records)
    out = tmp_path / "agent_codeact"
    command = [
        sys.executable,
        "tools/build_trajectories.py",
        "--arm",
        "codeact",
        "--inputs",
        str(tmp_path / "gold.jsonl"),
        "--out-dir",
        str(out),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["val"] == 1 and manifest["recheck_failures"] == {}
