"""Loading the local SLM: a checkpoint in 4-bit NF4 through bitsandbytes (or unquantised), its PEFT adapter
and its tokenizer; and how the loaded model describes its quantisation and library versions.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from slm_swap.backends.checkpoints import CheckpointError

QUANTIZATIONS = ("nf4", "none")


def load_model(model_path: Path, adapter: Path | None, quantization: str, dtype: Any, device: Any) -> tuple[Any, Any]:
    """The model in eval mode on `device` (with `adapter` applied) and its tokenizer, padding on the left."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    quantization_config = None
    if quantization == "nf4":
        quantization_config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=dtype, quantization_config=quantization_config, device_map={"": str(device)}
    )
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if not tokenizer.chat_template:
        raise CheckpointError(f"{model_path}: the tokenizer has no chat template")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def describe_quantization(quantization: str, dtype: Any) -> dict[str, Any]:
    described: dict[str, Any] = {"method": quantization}
    if quantization == "nf4":
        described.update(library="bitsandbytes", quant_type="nf4", double_quant=True, compute_dtype=str(dtype).removeprefix("torch."))
    return described


def package_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that decide the local SLM's outputs (None where one is missing)."""
    versions: dict[str, str | None] = {}
    for package in ("torch", "transformers", "bitsandbytes", "peft"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions
