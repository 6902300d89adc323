"""Tiny runs get no warm-up step at learning rate 0 (the scheduler rounds the ratio's share up to a whole step:
the demo's 2-step run spent half of it at 0); the manifest's recipe shows the sequence length the run used."""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_swap.finetune.config import Knobs, describe_recipe
from slm_swap.finetune.trainer import MIN_STEPS_FOR_WARMUP, optimizer_steps, sft_config


@pytest.mark.parametrize(
    ("steps", "warmup_steps"),
    [
        (2, 0),  # the demo's run: no step at learning rate 0
        (MIN_STEPS_FOR_WARMUP - 1, 0),
        (MIN_STEPS_FOR_WARMUP, 1),  # ceil(20 * 0.03)
        (1000, 30),
    ],
)
def test_warm_up_only_for_runs_of_at_least_twenty_steps(tmp_path: Path, steps: int, warmup_steps: int) -> None:
    config = sft_config(Knobs(), tmp_path, cuda=False, steps=steps)
    assert config.get_warmup_steps(steps) == warmup_steps


def test_optimizer_steps_are_the_planned_micro_batches_over_accumulation() -> None:
    # 16 rows of 100 tokens, 8 rows a micro-batch: 2 micro-batches; accumulating 2 makes one optimizer step
    assert optimizer_steps([100] * 16, Knobs(batch_size=8)) == 2
    assert optimizer_steps([100] * 16, Knobs(batch_size=8, grad_accum=2)) == 1


def test_manifest_recipe_shows_the_length_used() -> None:
    assert describe_recipe(Knobs(max_seq_len=8192))["fixed"]["max_seq_length"] == 8192
    assert describe_recipe(Knobs())["fixed"]["max_seq_length"] == 2048
