"""Fine-tuning rules that need no model: backend choice, the decision gate, the adapter folder, sharding, schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.finetune.config import Knobs, choose_backend
from slm_swap.finetune.guard import FinetuneRefused, check_decision, check_output_free, make_staging, publish
from slm_swap.finetune.loop import linear_schedule, shard_micro_batches


@pytest.mark.parametrize(
    "requested, cuda, world, installed, expected",
    [
        ("auto", True, 1, True, "unsloth"),  # the default on one GPU
        ("auto", False, 1, True, "hf"),  # no GPU: Unsloth cannot run
        ("auto", True, 4, True, "hf"),  # data-parallel goes through PEFT
        ("auto", True, 1, False, "hf"),  # not installed
        ("hf", True, 1, True, "hf"),  # asked for
        ("unsloth", True, 2, True, "unsloth"),  # asked for, even data-parallel
    ],
)
def test_backend_choice(requested, cuda, world, installed, expected):
    choice = choose_backend(requested, cuda=cuda, world_size=world, unsloth_installed=installed)
    assert choice.name == expected and choice.reason


def test_unsloth_without_a_gpu_is_refused_with_the_alternative():
    with pytest.raises(ValueError, match="needs a CUDA GPU; use --backend hf"):
        choose_backend("unsloth", cuda=False, world_size=1, unsloth_installed=True)


def write_decision(path: Path, tracks: dict) -> Path:
    path.write_text(json.dumps({"delta": 0.02, "tracks": tracks}), encoding="utf-8")
    return path


def test_a_marked_track_trains_and_says_why(tmp_path):
    path = write_decision(tmp_path / "d.json", {"toolcall": {"fine_tune": 1, "reasons": ["valid_call_rate: SLM 0.1 trails"]}})
    assert "valid_call_rate: SLM 0.1 trails" in check_decision(path, "toolcall", force=False)


@pytest.mark.parametrize(
    "tracks, message",
    [
        (None, "does not exist.*tools/decide.py.*--force"),  # no decision yet
        ({"toolcall": {"fine_tune": 0}}, "fine_tune=0 for toolcall.*within delta=0.02.*--force"),  # SLM good enough
        ({"structured": {"fine_tune": 1}}, "no decision for track 'toolcall'"),  # another track only
    ],
)
def test_an_unmarked_track_is_refused_with_the_reason(tmp_path, tracks, message):
    path = tmp_path / "d.json"
    if tracks is not None:
        write_decision(path, tracks)
    with pytest.raises(FinetuneRefused, match=message):
        check_decision(path, "toolcall", force=False)
    assert "--force" in check_decision(path, "toolcall", force=True)


def test_existing_adapter_is_kept_without_overwrite_and_replaced_whole_with_it(tmp_path):
    target = tmp_path / "adapter_toolcall"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FinetuneRefused, match="already exists and is kept; pass --overwrite"):
        check_output_free(target, overwrite=False)
    staging = make_staging(target)
    (staging / "new.txt").write_text("new")
    with pytest.raises(FinetuneRefused):
        publish(staging, target, overwrite=False)
    assert (target / "old.txt").exists()
    publish(staging, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert not staging.exists() and [p.name for p in tmp_path.iterdir()] == ["adapter_toolcall"]


def test_every_process_gets_as_many_micro_batches():
    batches = [[0, 1], [2], [3, 4], [5], [6, 7]]
    shards = [shard_micro_batches(batches, rank, 2) for rank in range(2)]
    assert [s for s, _ in shards] == [[[0, 1], [3, 4]], [[2], [5]]]
    assert shards[0][1] == 2  # rows 6 and 7 left out, and counted
    with pytest.raises(ValueError, match="cannot feed 8 processes"):
        shard_micro_batches(batches, 0, 8)


def test_learning_rate_warms_up_then_decays_to_zero():
    warmup, factor = linear_schedule(100, 0.03)
    assert warmup == 3
    assert [round(factor(s), 3) for s in (0, 1, 2, 3, 51, 99)] == [0.333, 0.667, 1.0, 1.0, 0.505, 0.010]


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("max_batch_tokens", 100), ("limit_rows", 0), ("warmup_ratio", 1.0)])
def test_knobs_reject_values_that_cannot_train(field, value):
    with pytest.raises(ValueError):
        Knobs(**{field: value}).check()
