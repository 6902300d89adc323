"""The Triton decode-attention kernel against masked SDPA on the same cache (needs CUDA and Triton)."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("the decode-attention kernel runs on CUDA only", allow_module_level=True)
pytest.importorskip("triton")

from slm_swap.engine.decode_attention import decode_attention  # noqa: E402

pytestmark = pytest.mark.gpu


def masked_sdpa(query, keys, values, slot, scaling, window):  # type: ignore[no-untyped-def]
    rows, heads, _, dim = query.shape
    kv_heads = keys.shape[1]
    index = torch.arange(keys.shape[2], device=keys.device)
    mask = index[None, :] <= slot[:, None]
    if window:
        mask &= index[None, :] > slot[:, None] - window
    grouped = query.reshape(rows, kv_heads, heads // kv_heads, dim)
    keys, values = keys.float().nan_to_num(0.0), values.float()  # masked slots may hold garbage; the reference must not see NaN
    out = torch.nn.functional.scaled_dot_product_attention(grouped.float(), keys, values, attn_mask=mask[:, None, None, :], scale=scaling)
    return out.reshape(rows, heads, 1, dim).transpose(1, 2)


@pytest.mark.parametrize(("heads", "kv_heads", "window"), [(24, 8, None), (8, 8, None), (4, 1, 50), (32, 8, 2000)])
def test_kernel_matches_masked_attention(heads: int, kv_heads: int, window: int | None) -> None:
    generator = torch.Generator(device="cuda").manual_seed(heads * 100 + kv_heads)
    rows, slots, dim = 7, 333, 128
    query = torch.randn(rows, heads, 1, dim, device="cuda", dtype=torch.bfloat16, generator=generator)
    keys = torch.randn(rows, kv_heads, slots, dim, device="cuda", dtype=torch.bfloat16, generator=generator)
    values = torch.randn(rows, kv_heads, slots, dim, device="cuda", dtype=torch.bfloat16, generator=generator)
    # Rows of very different lengths, one of a single slot; slots past a row's end hold garbage that must not leak in.
    slot = torch.tensor([332, 300, 200, 63, 64, 1, 0], device="cuda")
    keys[1, :, 301:] = float("nan")
    values[3, :, 64:] = 1e4
    # The engine's ragged layout: each row's run of slots, its own garbage after its end included.
    reserved = [min(int(s) + 21, slots) for s in slot]
    starts = torch.tensor([0, *itertools.accumulate(reserved)][:-1], device="cuda")
    packed_keys, packed_values = (torch.cat([block[b, :, :n] for b, n in enumerate(reserved)], dim=1) for block in (keys, values))
    got = decode_attention(query, packed_keys, packed_values, starts, slot, dim**-0.5, window)
    want = masked_sdpa(query, keys, values, slot, dim**-0.5, window)
    assert got.shape == (rows, 1, heads, dim)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-2)
