"""What to serve for a track, under which model id, with which settings: `tools/serve.py`'s plan.

`transformers serve` cannot load a PEFT adapter folder, so a track that has an adapter
is served from its merged checkpoint (`tools/export_model.py`); a track without one is
served from the base. The server runs the weights unquantised in the dtype evaluation
uses without 4-bit (float32 on CPU, bfloat16 on CUDA, as `LocalSLM` picks), and the
client sends greedy decoding and evaluation's output cap with every request, since the
server's own default cap is at least 1024 tokens.

vLLM serves the adapter without merging (`--enable-lora`); its command is planned here
too, for GPUs, but vLLM is not a dependency of the project.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.backends.checkpoints import CheckpointError, read_manifest, require_checkpoint
from slm_swap.layout import ADAPTER_CONFIG, adapter_dir, is_adapter, merged_model_dir
from slm_swap.serving.export import adapter_fingerprint
from slm_swap.tracks.rows.definitions import TRACK_NAMES

VLLM_DEFAULT_MAX_LORA_RANK = 16  # vLLM refuses adapters of a higher rank unless --max-lora-rank says so


class ServingError(RuntimeError):
    """The track cannot be served as asked; the message says which command fixes it."""


@dataclass(frozen=True)
class ServePlan:
    track: str
    base: Path
    adapter: Path | None
    checkpoint: Path  # the folder `transformers serve` loads
    model_id: str  # what requests name: a pinned server answers only to its checkpoint's path
    device: str
    dtype: str
    max_tokens: int
    merged_dtype: str | None = None  # the dtype the merged weights are stored in

    def describe(self) -> dict[str, object]:
        return {
            "track": self.track,
            "base": str(self.base),
            "adapter": str(self.adapter) if self.adapter else None,
            "checkpoint": str(self.checkpoint),
            "model_id": self.model_id,
            "device": self.device,
            "dtype": self.dtype,
            "quantization": "none",
            "merged_dtype": self.merged_dtype,
            "request": {"temperature": 0, "max_tokens": self.max_tokens},
        }


def find_adapter(track: str, ft_dir: Path) -> Path | None:
    """The track's adapter folder when fine-tuning has published one (it holds adapter_config.json)."""
    folder = adapter_dir(ft_dir, track)
    return folder if is_adapter(folder) else None


def served_model_id(track: str, base: Path, ft_dir: Path, models_dir: Path, server: str = "transformers") -> str:
    """The `model` a request names; the TypeScript client's `servedModelId` computes the same."""
    adapter = find_adapter(track, ft_dir)
    if server == "vllm":
        return track if adapter else str(base)
    if server != "transformers":
        raise ValueError(f"unknown server {server!r}; expected transformers or vllm")
    return str((merged_model_dir(models_dir, base, track) if adapter else Path(base)).resolve())


def resolve_device(device: str) -> str:
    """`auto` is cuda when a GPU is visible, else cpu: the choice `LocalSLM` makes."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def serving_dtype(device: str) -> str:
    """The dtype `LocalSLM` evaluates unquantised weights in on this device."""
    return "float32" if device.startswith("cpu") else "bfloat16"


def plan_serving(track: str, base: Path, ft_dir: Path, models_dir: Path, device: str, max_tokens: int) -> ServePlan:
    if track not in TRACK_NAMES:
        raise ServingError(f"unknown track {track!r}; expected one of {TRACK_NAMES}")
    if max_tokens < 1:
        raise ServingError(f"max_tokens must be at least 1, got {max_tokens}")
    try:
        require_checkpoint(base)
    except CheckpointError as exc:
        raise ServingError(str(exc)) from None
    adapter = find_adapter(track, ft_dir)
    checkpoint, merged_dtype = Path(base), None
    if adapter is not None:
        checkpoint = merged_model_dir(models_dir, base, track)
        merged_dtype = check_merged_current(checkpoint, adapter, base, track).get("dtype")
    model_id = served_model_id(track, base, ft_dir, models_dir)
    return ServePlan(track, Path(base), adapter, checkpoint, model_id, device, serving_dtype(device), max_tokens, merged_dtype)


def check_merged_current(merged: Path, adapter: Path, base: Path, track: str) -> dict[str, Any]:
    """Refuse a missing or stale merge: serving it would answer with other weights than evaluation scored."""
    export_command = f"python tools/export_model.py --track {track} --base-model {base}"
    manifest = read_manifest(merged)
    if manifest is None:
        raise ServingError(f"{adapter} exists but has not been merged into {merged}; run `{export_command}`")
    recorded = (manifest.get("adapter") or {}).get("fingerprint")
    if recorded != adapter_fingerprint(adapter):
        raise ServingError(f"{merged} was merged from another version of {adapter}; run `{export_command} --force`")
    return manifest


def vllm_command(track: str, base: Path, ft_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """`vllm serve` for GPUs: the base in bfloat16 with the track's adapter as a LoRA module named after the track."""
    command = ["vllm", "serve", str(base), "--host", host, "--port", str(port), "--dtype", "bfloat16"]
    adapter = find_adapter(track, ft_dir)
    if adapter is not None:
        command += ["--enable-lora", "--lora-modules", f"{track}={adapter}"]
        rank = adapter_rank(adapter)
        if rank > VLLM_DEFAULT_MAX_LORA_RANK:
            command += ["--max-lora-rank", str(rank)]
    return command


def adapter_rank(adapter: Path) -> int:
    try:
        return int(json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ServingError(f"{adapter / ADAPTER_CONFIG}: cannot read the LoRA rank r ({exc!r})") from exc


def shell_line(command: list[str]) -> str:
    return shlex.join(command)
