"""The Unsloth backend (CUDA only): Unsloth's 4-bit loader, LoRA and kernels, the same recipe.

`import unsloth` fails on a machine without a GPU and patches transformers when it
loads, so it is imported only here, and `import_unsloth` runs before anything else
of the training run imports transformers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from slm_swap.finetune.config import RECIPE
from slm_swap.finetune.hf import LoadedModel, ModelLoadError


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def import_unsloth() -> str:
    import unsloth

    return unsloth.__version__


def enable_packed_attention() -> str:
    """Let transformers-path models run packed rows through a varlen kernel instead of a dense block mask.

    Unsloth's own fast paths (Llama, Mistral, Qwen, Gemma) read `packed_seq_lengths`
    directly; models it runs through transformers' modeling code (Phi-3 among them)
    need this hook, or SDPA gets a T x T mask. Without the hook the result is the
    same, only slower.
    """
    try:
        from unsloth.utils.hf_packed_attention import enable_hf_packed_attention
    except ImportError:
        return "dense block-diagonal mask (this unsloth has no varlen hook)"
    enable_hf_packed_attention()
    return "varlen kernel over packed_seq_lengths"


def load_unsloth_model(
    model_path: Path,
    device: torch.device,
    targets: list[str],
    gradient_checkpointing: bool,
    seed: int,
    max_seq_length: int = RECIPE.max_seq_length,
) -> LoadedModel:
    from unsloth import FastLanguageModel

    try:
        model, _ = FastLanguageModel.from_pretrained(
            model_name=str(model_path),
            max_seq_length=max_seq_length,
            dtype=torch.bfloat16,
            load_in_4bit=True,
            device_map={"": device.index or 0},
        )
    except Exception as exc:
        raise ModelLoadError(f"{model_path}: the base model does not load in 4-bit through Unsloth ({type(exc).__name__}: {exc})") from exc
    model.config.use_cache = False
    model = FastLanguageModel.get_peft_model(
        model,
        r=RECIPE.lora_r,
        lora_alpha=RECIPE.lora_alpha,
        lora_dropout=RECIPE.lora_dropout,
        target_modules=targets,
        bias="none",
        use_gradient_checkpointing="unsloth" if gradient_checkpointing else False,
        random_state=seed,
    )
    attention = enable_packed_attention()
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return LoadedModel(
        model=model,
        forward_keys=("input_ids", "labels", "position_ids", "packed_seq_lengths"),
        details={
            "quantization": {"method": "bitsandbytes via unsloth", "quant_type": RECIPE.quant_type, "compute_dtype": "bfloat16"},
            "lora_target_modules": targets,
            "trainable_parameters": trainable,
            "attention": attention,
            "gradient_checkpointing": "unsloth" if gradient_checkpointing else False,
            "versions": {"unsloth": import_unsloth()},
        },
    )
