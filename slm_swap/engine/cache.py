"""The static engine's ragged KV cache of one batch, and the attention function through which the model reads
and writes it (registered with transformers as ATTENTION_NAME).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from slm_swap.engine import decode_attention
from slm_swap.engine.prefill import PrefillPass, packed_prefill_available

ATTENTION_NAME = "slm_swap_static"
UNSUPPORTED_ATTENTION = ("softcap", "s_aux")  # attention features this engine does not implement


class BatchCache:
    """The KV cache of one batch and the attention that reads it; the attention function in use calls `attend`.

    Ragged: per layer one (kv heads, total slots, head dim) tensor for keys and one for values;
    row b owns slots [starts[b], starts[b] + reserved[b]), its prompt first, then its new tokens.
    """

    def __init__(self, reserved: Sequence[int], device: Any, per_row: bool = False) -> None:
        import torch

        self.per_row = per_row  # batch-invariant mode: decode attention row by row over each row's own slots
        self.reserved = list(reserved)
        self.rows = len(reserved)
        self.width = max(reserved)  # the most slots a row owns
        self.total = sum(reserved)
        long = dict(dtype=torch.long, device=device)
        self.row_starts = [0, *itertools.accumulate(reserved)][:-1]  # each row's first slot
        self.starts = torch.tensor(self.row_starts, **long)
        self.keys: dict[int, Any] = {}
        self.values: dict[int, Any] = {}
        self.decoding = False
        self.prefill: PrefillPass | None = None  # the prefill pass in progress
        self.slot: Any = None  # decode: (rows,) tensor, the slot each row writes this step, counted from its start
        self.write = torch.zeros(self.rows, **long)  # decode: starts + slot, updated in place before each step
        self.slot_index = torch.arange(self.width, **long)  # for the SDPA fallback's gather and mask
        # prefix reuse: (a row's first slot, its kept (layers, 2, kv heads, tokens, head dim) KV), written per layer
        # into the row's first slots as that layer's cache is made, before any prefill pass reads it
        self.prefixes: list[tuple[int, Any]] = []

    def attend(self, layer: int, query: Any, key: Any, value: Any, scaling: float, window: int | None) -> Any:
        import torch
        import torch.nn.functional as F

        batch, heads, q_len, head_dim = query.shape
        kv_heads = key.shape[1]
        if layer not in self.keys:
            shape = (kv_heads, self.total, head_dim)
            self.keys[layer] = torch.zeros(shape, dtype=key.dtype, device=key.device)
            self.values[layer] = torch.zeros(shape, dtype=value.dtype, device=value.device)
            for start, kept in self.prefixes:
                self.keys[layer][:, start : start + kept.shape[3]] = kept[layer, 0]
                self.values[layer][:, start : start + kept.shape[3]] = kept[layer, 1]
        keys, values = self.keys[layer], self.values[layer]
        if not self.decoding:
            prefill = self.prefill
            for cache, new in ((keys, key), (values, value)):
                cache.index_copy_(1, prefill.destination, new.transpose(1, 2).reshape(-1, kv_heads, head_dim).transpose(0, 1))
            if prefill.suffix_rows is not None:
                return suffix_attention(query, key, value, keys, values, prefill.suffix_rows, scaling, window)
            if prefill.sequence_starts is not None:
                return packed_attention(query, key, value, prefill, scaling, window)
            # Right-padded rows: a real token only sees earlier tokens, all real, so plain causal
            # attention (flash kernels, no mask) is exact for them. Padding slots written here are
            # overwritten by the row's new tokens before any query reads them.
            causal: dict[str, Any] = {"is_causal": True}
            if window is not None and window < q_len:
                offsets = torch.arange(q_len, device=query.device)
                gap = offsets[:, None] - offsets[None, :]
                causal = {"attn_mask": (gap >= 0) & (gap < window)}
            out = F.scaled_dot_product_attention(query, key, value, scale=scaling, enable_gqa=heads != kv_heads, **causal)
            return out.transpose(1, 2).contiguous()
        keys.index_copy_(1, self.write, key[:, :, 0].transpose(0, 1))
        values.index_copy_(1, self.write, value[:, :, 0].transpose(0, 1))
        if decode_attention.available(query.device, head_dim):  # one program per (row, KV head): batch-invariant too
            return decode_attention.decode_attention(query, keys, values, self.starts, self.slot, scaling, window)
        if self.per_row or self.rows == 1:
            # one row: its slots are a slice of the cache, so no gathered copy (on a CPU the copy of a 5,000-slot
            # cache took 11 of a 93 s agent step batch); the same slots and mask, so the same numbers
            return self.attend_per_row(query, keys, values, scaling, window)
        # Each row's slots gathered into a (rows, kv heads, width, dim) block; slots past the
        # cache's end are clamped, then masked like every slot past the row's position.
        gather = (self.starts[:, None] + self.slot_index[None, :]).clamp_(max=self.total - 1)
        mask = self.slot_index[None, :] <= self.slot[:, None]
        if window is not None and window < self.width:
            mask &= self.slot_index[None, :] > self.slot[:, None] - window
        rows_keys, rows_values = (cache[:, gather].transpose(0, 1) for cache in (keys, values))
        # The query heads that share a KV head become that head's query rows: the fused attention
        # kernel then streams each cached head once, with no repeat and no score tensor in memory.
        grouped = query.reshape(batch, kv_heads, heads // kv_heads, head_dim)
        out = F.scaled_dot_product_attention(grouped, rows_keys, rows_values, attn_mask=mask[:, None, None, :], scale=scaling)
        return out.reshape(batch, heads, 1, head_dim).transpose(1, 2)

    def attend_per_row(self, query: Any, keys: Any, values: Any, scaling: float, window: int | None) -> Any:
        """Decode attention of each row over exactly its own reserved slots: the same shapes alone or in any batch."""
        import torch
        import torch.nn.functional as F

        batch, heads, _, head_dim = query.shape
        kv_heads = keys.shape[0]
        outs = []
        for row, (start, width) in enumerate(zip(self.row_starts, self.reserved)):
            index = self.slot_index[:width]
            mask = index <= self.slot[row]
            if window is not None and window < width:
                mask &= index > self.slot[row] - window
            grouped = query[row].reshape(1, kv_heads, heads // kv_heads, head_dim)
            rows_keys, rows_values = (cache[None, :, start : start + width] for cache in (keys, values))
            outs.append(F.scaled_dot_product_attention(grouped, rows_keys, rows_values, attn_mask=mask[None, None, None, :], scale=scaling))
        return torch.cat(outs).reshape(batch, heads, 1, head_dim).transpose(1, 2)


def packed_attention(query: Any, key: Any, value: Any, prefill: PrefillPass, scaling: float, window: int | None) -> Any:
    """Causal attention within each of the rows packed one after another in (1, heads, tokens, dim) tensors.

    On CUDA variable-length flash attention; elsewhere SDPA with a block-diagonal causal mask
    (tokens x tokens: for tests and small passes). Returns (1, tokens, heads, dim).
    """
    import torch
    import torch.nn.functional as F

    if packed_prefill_available(query.device):
        from torch.nn.attention.varlen import varlen_attn

        q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))
        starts, longest = prefill.sequence_starts, prefill.longest
        out = varlen_attn(
            q, k, v, starts, starts, longest, longest, scale=scaling, window_size=(window - 1 if window is not None else -1, 0)
        )
        return out[None]
    row = torch.repeat_interleave(
        torch.arange(len(prefill.sequence_starts) - 1, device=query.device), prefill.sequence_starts.diff().long()
    )
    position = prefill.positions[0]
    gap = position[:, None] - position[None, :]
    mask = (row[:, None] == row[None, :]) & (gap >= 0)
    if window is not None:
        mask &= gap < window
    heads, kv_heads = query.shape[1], key.shape[1]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling, enable_gqa=heads != kv_heads)
    return out.transpose(1, 2).contiguous()


def suffix_attention(
    query: Any, key: Any, value: Any, keys: Any, values: Any, rows: list[tuple[int, int, int, int]], scaling: float, window: int | None
) -> Any:
    """Prefix reuse: each packed row's new tokens attend over its kept prefix and themselves, in its cache slots.

    A row with no kept prefix attends causally over its own new tokens, as a packed pass without reuse does.
    `query`, `key`, `value`: (1, heads, tokens, dim); `keys`, `values`: (kv heads, slots, dim). Returns (1, tokens, heads, dim).
    """
    import torch
    import torch.nn.functional as F

    gqa = query.shape[1] != keys.shape[0]
    outs = []
    for offset, new, old, start in rows:
        q = query[:, :, offset : offset + new]
        if old == 0 and window is None:
            k, v = key[:, :, offset : offset + new], value[:, :, offset : offset + new]
            outs.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, enable_gqa=gqa))
            continue
        k, v = keys[None, :, start : start + old + new], values[None, :, start : start + old + new]
        position = torch.arange(new, device=query.device)[:, None] + old
        slot = torch.arange(old + new, device=query.device)[None, :]
        mask = slot <= position
        if window is not None:
            mask &= slot > position - window
        outs.append(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling, enable_gqa=gqa))
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous()


_ACTIVE: list[BatchCache] = []


@contextmanager
def serving(cache: BatchCache) -> Iterator[None]:
    """Within the block `static_attention` reads and writes `cache`."""
    _ACTIVE.append(cache)
    try:
        yield
    finally:
        _ACTIVE.remove(cache)


def static_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None, **kwargs: Any
) -> tuple[Any, None]:
    """transformers attention interface: key and value are this pass's new tokens, unrepeated.

    `attention_mask` is DecodeState.no_mask, a placeholder: the cache knows which slots each row sees.
    """
    for name in UNSUPPORTED_ATTENTION:
        if kwargs.get(name) is not None:
            raise NotImplementedError(f"the static engine does not implement attention with {name}; use --engine padded")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    return _ACTIVE[-1].attend(module.layer_idx, query, key, value, scaling, kwargs.get("sliding_window")), None


def register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, static_attention)
