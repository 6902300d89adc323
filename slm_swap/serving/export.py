"""Merging a track's PEFT adapter into its unquantised base: one ordinary checkpoint folder to serve.

`transformers serve` loads checkpoints, not adapter folders. The merge loads the base
in 16-bit (its own dtype when that is float16 or bfloat16, else bfloat16), never from
the 4-bit weights evaluation may run on, adds the LoRA update and writes the result with
the base's tokenizer, so the chat template is the one evaluation applies. Like fetched
checkpoints, the folder is filled beside its target, renamed into place, and its manifest
is written last: a folder with a manifest is a complete merge.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.backends.checkpoints import (
    MANIFEST_NAME,
    CheckpointError,
    adapter_base,
    check_adapter_base,
    checkpoint_identity,
    publish_checkpoint,
    read_manifest,
    require_checkpoint,
)
from slm_swap.files import sha256_file
from slm_swap.layout import ADAPTER_CONFIG

# The files that decide the merged weights; tokenizer copies and training logs beside them do not.
ADAPTER_WEIGHT_FILES = (ADAPTER_CONFIG, "adapter_model.safetensors", "adapter_model.bin")
SIXTEEN_BIT = ("bfloat16", "float16")


class ExportError(RuntimeError):
    """The adapter cannot be merged as asked; the message says why and what to run."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    reused: bool  # an up-to-date merge was already there


def adapter_file_hashes(adapter: Path) -> dict[str, str]:
    hashes = {name: sha256_file(adapter / name) for name in ADAPTER_WEIGHT_FILES if (adapter / name).is_file()}
    if ADAPTER_CONFIG not in hashes or len(hashes) < 2:
        raise ExportError(f"{adapter}: not a complete PEFT adapter (needs {ADAPTER_CONFIG} and adapter_model.safetensors)")
    return hashes


def adapter_fingerprint(adapter: str | Path) -> str:
    """One sha256 over the adapter's weight files: a changed adapter makes an old merge stale."""
    digest = hashlib.sha256()
    for name, sha in sorted(adapter_file_hashes(Path(adapter)).items()):
        digest.update(f"{name}:{sha}\n".encode())
    return digest.hexdigest()


def merge_dtype(base: Path) -> str:
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    recorded = config.get("dtype") or config.get("torch_dtype")
    return recorded if recorded in SIXTEEN_BIT else "bfloat16"


def export_merged(base: str | Path, adapter: str | Path, track: str, out: str | Path, force: bool = False) -> ExportResult:
    """Merge `adapter` into `base` at `out`; an up-to-date merge is kept unless `force`."""
    base, adapter, out = Path(base), Path(adapter), Path(out)
    try:
        require_checkpoint(base)
        check_adapter_base(adapter, base)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    fingerprint = adapter_fingerprint(adapter)
    existing = read_manifest(out)
    if existing is not None and not force:
        if (existing.get("adapter") or {}).get("fingerprint") == fingerprint:
            return ExportResult(out, existing, reused=True)
        raise ExportError(f"{out} holds a merge of another version of {adapter}; pass --force to replace it")
    if out.exists() and existing is None and not force:
        raise ExportError(f"{out} exists but holds no complete merge (no {MANIFEST_NAME}); remove it or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        dtype = merge_dtype(base)
        write_merged_weights(base, adapter, staging, dtype)
        manifest = build_manifest(out.name, base, adapter, track, dtype, fingerprint)
        publish_checkpoint(staging, out, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, manifest, reused=False)


def write_merged_weights(base: Path, adapter: Path, staging: Path, dtype: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype), device_map={"": "cpu"})
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(staging)
    tokenizer = AutoTokenizer.from_pretrained(base)  # the base's: evaluation never loads the adapter's copy
    if not tokenizer.chat_template:
        raise ExportError(f"{base}: the tokenizer has no chat template to serve with")
    tokenizer.save_pretrained(staging)
    for path in staging.iterdir():
        path.chmod(0o644)


def build_manifest(name: str, base: Path, adapter: Path, track: str, dtype: str, fingerprint: str) -> dict[str, Any]:
    identity = checkpoint_identity(base)
    versions = {name: importlib.metadata.version(name) for name in ("torch", "transformers", "peft")}
    return {
        "name": name,
        # Not the base's identity: an adapter trained on the base must not load on top of this merge.
        "slm_swap_base": f"{identity} + adapter sha256:{fingerprint}",
        "kind": "merged",
        "track": track,
        "base": {"path": str(base), "identity": identity},
        "adapter": {
            "path": str(adapter),
            "fingerprint": fingerprint,
            "files": adapter_file_hashes(adapter),
            "trained_on": adapter_base(adapter),
        },
        "dtype": dtype,
        "merged_with": versions,
    }
