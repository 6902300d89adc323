"""A diverged run's losses (NaN, infinity) go into the training manifest as null: no JSON file holds them."""

from __future__ import annotations

import json
import math
from pathlib import Path

from slm_swap.files import write_json_atomic
from slm_swap.finetune.manifest import finite, loss_curve
from slm_swap.finetune.trainer import StepLog, TrainResult


def test_a_diverged_loss_curve_is_written_with_null_losses(tmp_path: Path) -> None:
    result = TrainResult(steps=[StepLog(1, 2.5, 1e-4, 1.0), StepLog(2, math.nan, 1e-4, 2.0)], evals=[{"step": 2, "val_loss": math.inf}])
    curve = loss_curve(result)
    assert [point["train_loss"] for point in curve] == [2.5, None]
    assert (finite(result.val_loss), finite(-math.inf), finite(0.25)) == (None, None, 0.25)
    write_json_atomic(tmp_path / "manifest.json", {"loss_curve": curve})  # refused, were a NaN left in it
    assert json.loads((tmp_path / "manifest.json").read_text())["loss_curve"][1]["train_loss"] is None
