"""Fine-tuning on trajectories (`--track agent_<arm>`): gold demonstrations built into records, trained on CPU
with loss on the assistant turns only, an adapter per arm; over-long trajectories dropped, never cut."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.data.rows import DatasetError
from slm_swap.finetune.conversations import prepare_conversations
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.data.splits import load_split_tasks
from slm_swap.tracks.agent.data.trajectories import TrajectoryRecord, read_trajectories, write_trajectories
from slm_swap.tracks.agent.episodes.demonstrations import GOLD_SOURCE, gold_demonstrations
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "finetune.py"
AGENT_SPLITS = REPO / "slm_swap" / "02_dataset" / "agent"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return ensure_checkpoint("smollm2-135m-instruct", REPO / "slm_swap" / "models" / "smollm2-135m-instruct")


@pytest.fixture(scope="module")
def gold_records() -> list[TrajectoryRecord]:
    tasks = load_split_tasks(AGENT_SPLITS / "train.jsonl", load_multi_turn())[:2]
    return gold_demonstrations(tasks, EpisodeSettings("toolcall"))


def short(record: TrajectoryRecord, turns: int) -> TrajectoryRecord:
    """The record's first user turn and its first `turns` replies and observations, with a one-line system prompt:
    a conversation of the real shape that trains in seconds on a CPU."""
    messages = [{"role": "system", "content": "You call tools."}, *record.messages[1 : 2 + 2 * turns]]
    return TrajectoryRecord(tuple(messages), (), record.verifier, record.source)


def test_gold_demonstrations_are_verified_records_labelled_as_gold(gold_records) -> None:
    assert len(gold_records) == 2
    for record in gold_records:
        assert record.accepted and record.verifier["name"] == "bfcl_multi_turn_checker"
        assert {k: record.source[k] for k in GOLD_SOURCE} == GOLD_SOURCE and "not a model" in record.source["label"]
        assert record.id == f"{record.task_id}#gold" and record.arm == "toolcall"
        assert record.messages[0]["role"] == "system" and record.assistant_turns >= 2
        assert any(m["content"].startswith("Observation:") for m in record.messages if m["role"] == "user")
        called = {
            name for m in record.messages if m["role"] == "assistant" for name in re.findall(r'<tool_call name="([^"]+)"', m["content"])
        }
        assert called and called <= {tool["name"] for tool in record.tools}  # every call is to a tool the record lists


def test_over_long_trajectories_are_dropped_and_listed_never_cut(tmp_path: Path, smollm2: Path, gold_records) -> None:
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    path = tmp_path / "train.jsonl"
    write_trajectories(path, [short(gold_records[0], 1), gold_records[1]])
    split = prepare_conversations(path, tokenizer, max_seq_length=1024)
    assert [row.row_id for row in split.rows] == [gold_records[0].id]
    assert [rid for rid, _ in split.over_length] == [gold_records[1].id] and split.over_length[0][1] > 1024
    only_long = tmp_path / "long.jsonl"
    write_trajectories(only_long, [gold_records[1]])
    with pytest.raises(DatasetError, match="all 1 trajectories are longer than 64 tokens; raise --max-seq-len"):
        prepare_conversations(only_long, tokenizer, 64)


def test_a_rejected_trajectory_is_never_trained_on(tmp_path: Path, smollm2: Path, gold_records) -> None:
    rejected = TrajectoryRecord(gold_records[0].messages, (), {"accepted": False}, {"task_id": "t", "arm": "toolcall", "sample": 0})
    path = tmp_path / "train.jsonl"
    write_trajectories(path, [rejected])
    with pytest.raises(DatasetError, match="t#0 was rejected by the verifier"):
        prepare_conversations(path, AutoTokenizer.from_pretrained(smollm2), 8192)


@pytest.mark.slow
def test_the_agent_track_trains_an_adapter_per_arm_on_assistant_tokens_only(
    tmp_path: Path, smollm2: Path, gold_records, fresh_langfuse_env
):
    data = tmp_path / "data" / "agent_toolcall"
    write_trajectories(data / "train.jsonl", [short(gold_records[0], 2)])
    write_trajectories(data / "val.jsonl", [short(gold_records[1], 1)])
    env = {**os.environ, **fresh_langfuse_env()}
    args = ["--track", "agent_toolcall", "--model", str(smollm2), "--dataset-dir", str(tmp_path / "data")]
    args += ["--out-dir", str(tmp_path / "ft"), "--force", "--batch-size", "1", "--max-seq-len", "4096", "--max-batch-tokens", "4096"]
    result = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    adapter = tmp_path / "ft" / "adapter_agent_toolcall"
    assert result.stdout.strip() == str(adapter)
    manifest = json.loads((adapter / "training_manifest.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    train = prepare_conversations(data / "train.jsonl", tokenizer, 4096)
    # the loss tokens are the assistant turns and their <|im_end|>: what the mask test decodes byte for byte
    assert manifest["datasets"]["train"]["loss_tokens"] == train.n_loss_tokens
    assert manifest["datasets"]["train"]["tokens"] == train.n_tokens > train.n_loss_tokens > 0
    assert manifest["settings"]["knobs"]["max_seq_len"] == 4096
    assert manifest["settings"]["fixed"]["max_seq_length"] == 4096  # the length this run used, not the recipe's default
    assert (adapter / "slm_swap_base.json").is_file()
    assert read_trajectories(data / "train.jsonl")[0].accepted
