"""Fine-tuning rules that need no model: backend choice, the decision gate, the adapter folder, the trainer's settings, schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.finetune.config import Knobs, choose_backend
from slm_swap.finetune.guard import FinetuneRefused, check_decision, check_output_free, make_staging, publish


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


def test_an_agent_arm_trains_on_the_agent_decision_of_that_arm_only(tmp_path):
    """tools/decide.py writes the agent track's entry under "agent" with its arm; agent_<arm> is its training track."""
    path = write_decision(tmp_path / "d.json", {"agent": {"fine_tune": 1, "arm": "codeact", "reasons": ["task_success_rate: trails"]}})
    assert "task_success_rate: trails" in check_decision(path, "agent_codeact", force=False)
    with pytest.raises(FinetuneRefused, match="decides the agent track's 'codeact' arm, not 'toolcall'.*--arm toolcall"):
        check_decision(path, "agent_toolcall", force=False)
    write_decision(path, {"agent": {"fine_tune": 0, "arm": "toolcall", "delta": 0.02}})
    with pytest.raises(FinetuneRefused, match="fine_tune=0 for agent_toolcall"):
        check_decision(path, "agent_toolcall", force=False)
    write_decision(path, {"toolcall": {"fine_tune": 1}})
    with pytest.raises(FinetuneRefused, match="no decision for track 'agent_toolcall'"):
        check_decision(path, "agent_toolcall", force=False)


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


def test_sft_config_carries_the_recipe_and_the_knobs(tmp_path):
    pytest.importorskip("trl")
    from slm_swap.finetune.trainer import sft_config

    knobs = Knobs(batch_size=4, grad_accum=2, seed=7, save_steps=5, eval_steps=3)
    config = sft_config(knobs, tmp_path, cuda=False)
    assert (config.learning_rate, config.num_train_epochs, config.weight_decay) == (2e-4, 1, 0.0)
    assert getattr(config.lr_scheduler_type, "value", config.lr_scheduler_type) == "linear" and config.max_grad_norm == 1.0
    assert config.get_warmup_steps(100) == 3  # the knob's 3 % of the optimizer steps
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps, config.seed) == (4, 2, 7)
    assert config.max_length is None and not config.packing and not config.padding_free  # rows are dropped, never cut
    assert getattr(config.save_strategy, "value", config.save_strategy) == "steps" and config.save_steps == 5
    assert getattr(config.eval_strategy, "value", config.eval_strategy) == "steps" and config.eval_steps == 3
    assert getattr(config.optim, "value", config.optim) == "adamw_torch"


def test_the_learning_rate_warms_up_then_decays_to_zero(tmp_path):
    pytest.importorskip("trl")
    import torch
    from transformers import get_scheduler

    from slm_swap.finetune.trainer import sft_config

    config = sft_config(Knobs(), tmp_path, cuda=False)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    schedule = get_scheduler(config.lr_scheduler_type, optimizer, config.get_warmup_steps(100), 100)
    rates = []
    for _ in range(100):
        rates.append(schedule.get_last_lr()[0] / config.learning_rate)
        optimizer.step()
        schedule.step()
    assert [round(rates[s], 3) for s in (0, 1, 3, 51, 99)] == [0.0, 0.333, 1.0, 0.505, 0.01]


@pytest.mark.parametrize(
    "field, value",
    [("batch_size", 0), ("max_batch_tokens", 100), ("limit_rows", 0), ("warmup_ratio", 1.0), ("save_steps", 0), ("eval_steps", 0)],
)
def test_knobs_reject_values_that_cannot_train(field, value):
    with pytest.raises(ValueError):
        Knobs(**{field: value}).check()
