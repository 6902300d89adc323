"""The training manifest written beside every adapter: what was trained, on what, how, and how it went."""

from __future__ import annotations

import importlib.metadata
import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from slm_swap.finetune.config import BackendChoice, FinetuneRequest, describe_recipe
from slm_swap.finetune.data import PreparedSplit
from slm_swap.finetune.trainer import TrainResult

MANIFEST_SCHEMA = 1
PACKAGES = ("torch", "transformers", "trl", "datasets", "peft", "bitsandbytes", "accelerate", "unsloth", "unsloth_zoo")


@dataclass(frozen=True)
class RunContext:
    """Facts about where and when a run happened, gathered by the runner."""

    started_at: float  # unix seconds
    ended_at: float
    world_size: int
    device: str
    base_model: str  # slm_swap.backends.checkpoints.checkpoint_identity of the model folder
    end_of_turn_token: str
    gate: str  # why training was allowed: the decision, or --force


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def finite(value: float | None) -> float | None:
    """A loss as the manifest keeps it: None for NaN or infinity (a diverged run), which JSON files never hold."""
    return value if value is None or math.isfinite(value) else None


def loss_curve(result: TrainResult) -> list[dict[str, Any]]:
    return [{**asdict(step), "train_loss": finite(step.train_loss)} for step in result.steps]


def build_manifest(
    request: FinetuneRequest,
    backend: BackendChoice,
    model_details: dict[str, Any],
    train: PreparedSplit,
    val: PreparedSplit,
    result: TrainResult,
    context: RunContext,
) -> dict[str, Any]:
    peak = max(result.peak_memory_bytes) if result.peak_memory_bytes else None
    return {
        "schema": MANIFEST_SCHEMA,
        "track": request.track,
        "adapter_dir": str(request.adapter_dir),
        "base_model": {"path": str(request.model_path), "identity": context.base_model},
        "backend": {"name": backend.name, "reason": backend.reason, **model_details},
        "settings": describe_recipe(request.knobs) | {"end_of_turn_token": context.end_of_turn_token, "optimizer": result.optimizer},
        "gate": context.gate,
        "datasets": {"train": train.summary(), "val": val.summary()},
        "over_length_policy": "rows longer than max_seq_length are dropped and listed here, never truncated",
        "trainer": {
            "library": "trl SFTTrainer",
            "collator": "slm_swap.finetune.data.PaddingFreeCollator (rows end to end, positions restart per row)",
            "batches": "slm_swap.finetune.data.TokenBudgetBatches (batch_size rows, max_batch_tokens tokens, seeded)",
        },
        "training": {
            "optimizer_steps": result.total_steps,
            "steps_this_session": len(result.steps),
            "resumed_from_step": result.resumed_from_step,
            "rows_trained": len(train.rows),
            "tokens": result.train_tokens,
            "loss_tokens": train.n_loss_tokens,
            "train_time_s": round(result.train_time_s, 3),
            "tokens_per_s": round(result.tokens_per_s, 1),
            "tokens_counted": "every token of every row this session trained (padding-free batches hold no padding)",
            "peak_gpu_memory_bytes": peak,
            "peak_gpu_memory_gib": round(peak / 2**30, 3) if peak else None,
            "peak_gpu_memory_per_process_bytes": result.peak_memory_bytes,
            "final_train_loss": finite(result.steps[-1].train_loss) if result.steps else None,
            "loss_curve": loss_curve(result),
        },
        "validation": {
            "loss": finite(round(result.val_loss, 6)) if result.val_loss is not None else None,
            "rows": len(val.rows),
            "loss_tokens": val.n_loss_tokens,
            "curve": [{**point, "val_loss": finite(point["val_loss"])} for point in result.evals],
            "when": (f"every {request.knobs.eval_steps} optimizer steps and " if request.knobs.eval_steps else "") + "after training",
            "how": "the Trainer's evaluation loss: the mean over validation micro-batches of each one's token-mean loss",
        },
        "run": {
            "started_at": context.started_at,
            "ended_at": context.ended_at,
            "wall_time_s": round(context.ended_at - context.started_at, 3),
            "world_size": context.world_size,
            "device": context.device,
            "versions": package_versions(),
        },
    }


def adapter_files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
