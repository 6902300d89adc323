"""The Hugging Face backend: transformers + bitsandbytes NF4 + PEFT LoRA, on CUDA or CPU.

Also the pieces both backends share: which linear layers get LoRA, the error for a
base model that does not load in 4-bit, and the CPU guard described below.

bitsandbytes 0.50 on CPU repacks a 4-bit layer's weights into an AVX512-BF16 layout
the first time the layer runs in eval mode without gradients, and from then on every
call goes through `gemv_4bit`, which has no backward: gradients through the base
model come out silently wrong ("no autograd kernel" warning). In train mode no layer
is repacked, and LoRA gradients equal those of the dequantized 16-bit model
(tests/finetune/test_finetune_4bit_grad.py). So the CPU path trains in 4-bit, runs in train
mode from its first forward, and `check_trainable_4bit` refuses a model whose layers
were already repacked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slm_swap.finetune.config import RECIPE


class ModelLoadError(RuntimeError):
    """The base model cannot be trained as the recipe says; the message names the checkpoint."""


@dataclass
class LoadedModel:
    model: Any  # a PEFT model, ready for train()
    forward_keys: tuple[str, ...]  # batch keys the model's forward takes
    details: dict[str, Any] = field(default_factory=dict)


def lora_target_modules(model_path: Path) -> list[str]:
    """Short names of the decoder's linear layers (all of them get LoRA), read from a weightless copy."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    output = skeleton.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1] for name, module in skeleton.named_modules() if isinstance(module, torch.nn.Linear) and module is not output
    }
    if not names:
        raise ModelLoadError(f"{model_path}: found no linear layers to put LoRA on")
    return sorted(names)


def compute_dtype(device: torch.device) -> torch.dtype:
    # bf16 on GPUs; float32 on CPU, where bf16 matmuls are slow and the tests compare gradients exactly.
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def count_4bit_layers(model: Any) -> int:
    import bitsandbytes as bnb

    return sum(1 for module in model.modules() if isinstance(module, bnb.nn.Linear4bit))


def check_trainable_4bit(model: Any) -> None:
    """Refuse 4-bit layers in bitsandbytes' CPU inference layout, whose gemv_4bit kernel has no backward."""
    import bitsandbytes as bnb

    packed = [
        name
        for name, module in model.named_modules()
        if isinstance(module, bnb.nn.Linear4bit) and getattr(getattr(module.weight, "quant_state", None), "packing_format_for_cpu", False)
    ]
    if packed:
        raise ModelLoadError(
            f"{len(packed)} 4-bit layers (first: {packed[0]}) were repacked for CPU inference by an eval-mode forward; "
            "bitsandbytes cannot backpropagate through that layout. Load the model again and train it in train mode"
        )


def load_hf_model(model_path: Path, device: torch.device, targets: list[str], gradient_checkpointing: bool, seed: int) -> LoadedModel:
    import bitsandbytes
    import peft
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = compute_dtype(device)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=RECIPE.quant_type,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    device_map = {"": (device.index if device.index is not None else torch.cuda.current_device()) if device.type == "cuda" else "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_path, quantization_config=quantization, dtype=dtype, device_map=device_map, attn_implementation="sdpa"
        )
    except Exception as exc:  # every loader failure ends the same way: this checkpoint cannot be trained here
        raise ModelLoadError(f"{model_path}: the base model does not load in 4-bit NF4 ({type(exc).__name__}: {exc})") from exc
    if count_4bit_layers(model) == 0:
        raise ModelLoadError(f"{model_path}: loaded, but no layer was quantized to 4-bit; the recipe needs a 4-bit base")
    model.config.use_cache = False  # a cache disables the packed-sequence masks and wastes memory in training
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False}
    )
    torch.manual_seed(seed)
    lora = LoraConfig(
        r=RECIPE.lora_r,
        lora_alpha=RECIPE.lora_alpha,
        lora_dropout=RECIPE.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.train()
    if device.type == "cpu":
        check_trainable_4bit(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return LoadedModel(
        model=model,
        forward_keys=("input_ids", "labels", "position_ids"),
        details={
            "quantization": {
                "method": "bitsandbytes",
                "quant_type": RECIPE.quant_type,
                "double_quant": True,
                "compute_dtype": str(dtype).removeprefix("torch."),
            },
            "lora_target_modules": targets,
            "trainable_parameters": trainable,
            "attention": "sdpa; padding-free rows separated by position ids (transformers block-diagonal mask)",
            "gradient_checkpointing": gradient_checkpointing,
            "cpu_4bit_gradients": "train mode from the first forward; repacked gemv_4bit layers refused" if device.type == "cpu" else None,
            "versions": {"bitsandbytes": bitsandbytes.__version__, "peft": peft.__version__},
        },
    )
