"""The static engine's batch-invariant mode: a row's greedy tokens do not depend on the rows that share its batch.

Where batched and one-row runs diverge (measured on CPU, torch 2.13, SmolLM2-135M's shapes; docs/benchmarks.md):

- matmuls: a linear layer over M rows gives row 0 different bits for M = 1, 2, 3 than for M >= 4 (small-M
  GEMV paths; bitsandbytes' NF4 layers also switch to a one-token GEMV at M = 1), while at a fixed M every
  row's bits are the same whichever rows surround it and wherever it sits. So in decode every linear layer
  runs over tiles of exactly ROW_TILE rows (the last padded with zeros): one shape, one kernel, whatever the
  batch (`row_tiled_linears`), as "Defeating Nondeterminism in LLM Inference" (Thinking Machines, 2025) fixes
  the GEMM's shape instead of letting the batch choose it.
- prefill: each row is prefilled in its own pass (a packed or padded pass of one row), so its attention and
  its matmuls see the shapes they see when the row runs alone.
- decode attention: each row attends over exactly its own reserved cache slots (`BatchCache.attend_per_row`),
  never over a width set by the batch's longest row.

Rotary embeddings and activations work per element, so they need nothing. Norms reduce over each
token's features, and a reduction kernel may split that sum differently for 1 row than for 200 (PyTorch
picks its launch from the tensor's shape), so in decode norms run in the same row tiles as the linears.

On CUDA decode attention is the Triton kernel of `decode_attention`: one program per (row, KV head) walking
the row's own slots in fixed blocks of 64, so its reduction order depends on the row's length alone (fixed
split sizes over the KV length), whatever the grid. NF4 layers (bitsandbytes) are dequantized once per
call and each tile multiplied by that weight, which is what bitsandbytes itself does for more than one row;
the tiles keep the GEMM's shape fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ROW_TILE = 8  # rows per linear-layer call in decode: >= 4, where this CPU's GEMM stops depending on M


class TileSwitch:
    """Whether the tiled linears tile now: in decode yes; in a one-row prefill the shapes are the row's own already."""

    def __init__(self) -> None:
        self.on = False


def tiled(forward: Callable[[Any], Any], switch: TileSwitch, tile: int, module: Any = None) -> Callable[[Any], Any]:
    def run(x: Any) -> Any:
        import torch

        if not switch.on:
            return forward(x)
        rows = x.reshape(-1, x.shape[-1])
        m = rows.shape[0]
        if m % tile:
            rows = torch.cat([rows, rows.new_zeros(tile - m % tile, rows.shape[1])])
        per_tile = nf4_tiles(module, rows.dtype) if module is not None else None
        out = torch.cat([(per_tile or forward)(rows[i : i + tile]) for i in range(0, rows.shape[0], tile)])
        return out[:m].reshape(*x.shape[:-1], out.shape[-1])

    return run


def nf4_tiles(module: Any, dtype: Any) -> Callable[[Any], Any] | None:
    """For a bitsandbytes 4-bit layer: a forward over one tile with the weight dequantized once for all tiles."""
    quant_state = getattr(getattr(module, "weight", None), "quant_state", None)
    if quant_state is None:
        return None
    import bitsandbytes.functional as bnb_functional
    import torch.nn.functional as F

    weight = bnb_functional.dequantize_4bit(module.weight.data, quant_state).to(dtype)
    bias = None if module.bias is None else module.bias.to(dtype)
    return lambda rows: F.linear(rows, weight, bias)


def is_norm(module: Any) -> bool:
    import torch

    return isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith("RMSNorm")


@contextmanager
def row_tiled_linears(model: Any, switch: TileSwitch, tile: int = ROW_TILE) -> Iterator[int]:
    """Within the block every `torch.nn.Linear` of `model` (NF4 and LoRA layers included) and every norm
    runs in row tiles while `switch.on`; yields how many layers it wrapped.
    """
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear) or is_norm(m)]
    own = {id(m): m.__dict__.get("forward") for m in linears}  # a forward set on the instance (hooks) is put back
    for module in linears:
        module.forward = tiled(module.forward, switch, tile, module if isinstance(module, torch.nn.Linear) else None)
    try:
        yield len(linears)
    finally:
        for module in linears:
            if own[id(module)] is None:
                del module.forward
            else:
                module.forward = own[id(module)]
