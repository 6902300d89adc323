"""Checkpoints of a training run (`--save-steps`) and continuing one (`--resume`).

The Trainer writes `checkpoint-<step>/` folders under `layout.training_checkpoints_dir`; beside them
`run_request.json` records what the run trains on (track, base model, the splits' sha256, the knobs that change
the result, the number of processes, the backend). `--resume` continues from the last checkpoint only when all
of that is unchanged, and says which field differs otherwise; a run without `--resume` starts afresh and clears
the folder. The folder is removed once the adapter is published.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from slm_swap.files import write_json_atomic
from slm_swap.finetune.config import FinetuneRequest
from slm_swap.finetune.guard import FinetuneRefused

REQUEST_NAME = "run_request.json"
NOT_IN_FINGERPRINT = ("save_steps", "eval_steps")  # when to write checkpoints and evaluate does not change the adapter


def fingerprint(
    request: FinetuneRequest, base_identity: str, train_sha: str, val_sha: str, world_size: int, backend: str
) -> dict[str, Any]:
    knobs = {k: v for k, v in asdict(request.knobs).items() if k not in NOT_IN_FINGERPRINT}
    return {
        "track": request.track,
        "base_model": base_identity,
        "train_sha256": train_sha,
        "val_sha256": val_sha,
        "knobs": knobs,
        "world_size": world_size,
        "backend": backend,
    }


def checkpoint_step(checkpoint: Path) -> int | None:
    """The optimizer step of a Trainer checkpoint folder (`checkpoint-<step>`)."""
    tail = checkpoint.name.rsplit("-", 1)[-1]
    return int(tail) if checkpoint.name.startswith("checkpoint-") and tail.isdigit() else None


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint. transformers' `get_last_checkpoint` would also return one a kill interrupted
    mid-save; this one needs the `trainer_state.json` the Trainer writes last."""
    steps = [(checkpoint_step(p), p) for p in folder.glob("checkpoint-*") if checkpoint_step(p) is not None]
    complete = [(step, p) for step, p in steps if (p / "trainer_state.json").exists()]
    return max(complete)[1] if complete else None


def prepare_checkpoints(request: FinetuneRequest, run: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from (None: a fresh run, its folder cleared and its request recorded)."""
    folder = request.checkpoints_dir
    if not request.resume:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        write_json_atomic(folder / REQUEST_NAME, run)
        return None
    checkpoint = last_checkpoint(folder) if folder.is_dir() else None
    if checkpoint is None:
        raise FinetuneRefused(f"--resume: no complete checkpoint in {folder}; train without --resume (with --save-steps N to write some)")
    try:
        recorded = json.loads((folder / REQUEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FinetuneRefused(f"--resume: {folder / REQUEST_NAME} cannot be read ({exc}); train without --resume") from None
    changed = sorted(key for key in run.keys() | recorded.keys() if run.get(key) != recorded.get(key))
    if changed:
        raise FinetuneRefused(f"--resume: {checkpoint} was trained with a different {', '.join(changed)}; train without --resume")
    return checkpoint


def clear_checkpoints(request: FinetuneRequest) -> None:
    shutil.rmtree(request.checkpoints_dir, ignore_errors=True)
