"""Decode-step attention over the static engine's ragged cache, reading only each row's own slots (Triton, CUDA).

In the static engine's cache row b's keys are the contiguous slots [starts[b], starts[b] + slot[b]]
of one (kv heads, slots, dim) tensor per layer. Fused SDPA kernels need a padded
(rows, kv heads, slots, dim) block and a mask, and read every slot of it, so a batch whose longest
prompt is three times its shortest reads mostly padding on every step. This kernel, one program
per (row, KV head), walks only the row's slots in blocks with an online softmax (as
flash-decoding does), and serves all the query heads that share the KV head from one read.
Without Triton or off CUDA the engine gathers each row's slots and uses SDPA with a mask.
"""

from __future__ import annotations

from typing import Any

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU installs: the engine falls back to SDPA
    triton = None

BLOCK = 64  # key slots per loop iteration


def available(device: Any, head_dim: int) -> bool:
    return triton is not None and device.type == "cuda" and head_dim & (head_dim - 1) == 0


if triton is not None:

    @triton.jit
    def _decode_kernel(
        Q, K, V, O, Start, Slot,
        sq_b, sq_h, sk_h, sk_n, so_b, so_h,
        scale, window,
        GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0)
        kv_head = tl.program_id(1)
        end = tl.load(Slot + row) + 1
        start = end * 0  # zero of the slot's integer type
        if window > 0:
            start = tl.maximum(start, end - window)
        g = tl.arange(0, GROUP_PAD)
        d = tl.arange(0, HEAD_DIM)
        heads = kv_head * GROUP + g
        q = tl.load(Q + row * sq_b + heads[:, None] * sq_h + d[None, :], mask=(g < GROUP)[:, None], other=0.0)
        m = tl.full([GROUP_PAD], float("-inf"), tl.float32)
        total = tl.zeros([GROUP_PAD], tl.float32)
        acc = tl.zeros([GROUP_PAD, HEAD_DIM], tl.float32)
        base = tl.load(Start + row) * sk_n + kv_head * sk_h
        for first in range(start, end, BLOCK_N):
            n = first + tl.arange(0, BLOCK_N)
            valid = n < end
            k = tl.load(K + base + n[:, None] * sk_n + d[None, :], mask=valid[:, None], other=0.0)
            scores = tl.dot(q, tl.trans(k)) * scale
            scores = tl.where(valid[None, :], scores, float("-inf"))
            m_new = tl.maximum(m, tl.max(scores, 1))
            p = tl.exp(scores - m_new[:, None])
            alpha = tl.exp(m - m_new)
            total = total * alpha + tl.sum(p, 1)
            v = tl.load(V + base + n[:, None] * sk_n + d[None, :], mask=valid[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m = m_new
        out = acc / total[:, None]
        tl.store(O + row * so_b + heads[:, None] * so_h + d[None, :], out.to(O.dtype.element_ty), mask=(g < GROUP)[:, None])


def decode_attention(query: Any, keys: Any, values: Any, starts: Any, slot: Any, scaling: float, window: int | None) -> Any:
    """Attention of one new token per row: query (rows, heads, 1, dim) over a cache (kv heads, slots, dim).

    Row b attends slots starts[b] .. starts[b] + slot[b], only the last `window` of them when a
    sliding window is given. Returns (rows, 1, heads, dim).
    """
    import torch

    rows, heads, _, head_dim = query.shape
    kv_heads = keys.shape[0]
    group = heads // kv_heads
    if keys.stride(-1) != 1 or values.stride() != keys.stride():
        raise ValueError("decode_attention needs the cache's keys and values contiguous in the head dimension, with equal strides")
    query = query.reshape(rows, heads, head_dim).contiguous()
    out = torch.empty((rows, heads, head_dim), dtype=query.dtype, device=query.device)
    _decode_kernel[(rows, kv_heads)](
        query, keys, values, out, starts, slot,
        query.stride(0), query.stride(1), keys.stride(0), keys.stride(1), out.stride(0), out.stride(1),
        scaling, window or 0,
        GROUP=group, GROUP_PAD=max(16, triton.next_power_of_2(group)), HEAD_DIM=head_dim, BLOCK_N=BLOCK,
    )  # fmt: skip
    return out[:, None]
