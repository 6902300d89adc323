"""How much memory a batch of the local SLM takes, how many rows fit, and which failure means memory ran out."""

from __future__ import annotations

from typing import Any

CPU_BATCH_SIZE = 8
MAX_BATCH_SIZE = 1024
# Share of free accelerator memory that batches may plan to use; the rest absorbs allocator
# fragmentation and the transient buffers the estimate below leaves out.
MEMORY_SHARE = 0.7


def bytes_per_row(config: Any, dtype_bytes: int, tokens: int) -> int:
    """Memory one row of a batch needs: its KV cache, prefill activations and a float32 logits row."""
    text = config.get_text_config()
    return tokens * (kv_bytes_per_token(text, dtype_bytes) + activation_bytes(text, dtype_bytes)) + 2 * 4 * text.vocab_size


def head_dim_of(text_config: Any) -> int:
    return getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads


def kv_bytes_per_token(text_config: Any, dtype_bytes: int) -> int:
    """KV cache of one token: keys and values of every layer."""
    kv_heads = getattr(text_config, "num_key_value_heads", None) or text_config.num_attention_heads
    return 2 * text_config.num_hidden_layers * kv_heads * head_dim_of(text_config) * dtype_bytes


def activation_bytes(text_config: Any, dtype_bytes: int) -> int:
    """Activations of one token in a forward pass (hidden states and the MLP's intermediate)."""
    return (6 * text_config.hidden_size + 3 * text_config.intermediate_size) * dtype_bytes


def choose_batch_size(free_bytes: int, row_bytes: int, rows: int, cap: int = MAX_BATCH_SIZE) -> int:
    return max(1, min(cap, rows, int(free_bytes * MEMORY_SHARE) // max(row_bytes, 1)))


def available_ram() -> int:
    """Bytes of RAM the system can hand out now without swapping (psutil, a dependency of accelerate and peft)."""
    import psutil

    return int(psutil.virtual_memory().available)


def is_out_of_memory(exc: BaseException) -> bool:
    """An accelerator allocation failed: the batch is retried in smaller ones.

    torch.cuda.OutOfMemoryError is torch.OutOfMemoryError (torch >= 2.5, any accelerator); this
    spelling also exists on torch 2.4. A failed CPU allocation raises a plain RuntimeError and is
    not retried.
    """
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError)
