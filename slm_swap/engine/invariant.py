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

Norms, rotary embeddings and activations work per token, so they need nothing. On CUDA the same rules
apply (one-row prefill, tiled linears, per-row SDPA attention instead of the Triton decode kernel), but
cuBLAS' choice of kernel for an (ROW_TILE, K) x (K, N) GEMM and the flash prefill kernel are untested here:
no GPU was available when this was written.
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


def tiled(forward: Callable[[Any], Any], switch: TileSwitch, tile: int) -> Callable[[Any], Any]:
    def run(x: Any) -> Any:
        import torch

        if not switch.on:
            return forward(x)
        rows = x.reshape(-1, x.shape[-1])
        m = rows.shape[0]
        if m % tile:
            rows = torch.cat([rows, rows.new_zeros(tile - m % tile, rows.shape[1])])
        out = torch.cat([forward(rows[i : i + tile]) for i in range(0, rows.shape[0], tile)])
        return out[:m].reshape(*x.shape[:-1], out.shape[-1])

    return run


@contextmanager
def row_tiled_linears(model: Any, switch: TileSwitch, tile: int = ROW_TILE) -> Iterator[int]:
    """Within the block every `torch.nn.Linear` of `model` (NF4 and LoRA layers included) runs in row tiles
    while `switch.on`; yields how many layers it wrapped.
    """
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    own = {id(m): m.__dict__.get("forward") for m in linears}  # a forward set on the instance (hooks) is put back
    for module in linears:
        module.forward = tiled(module.forward, switch, tile)
    try:
        yield len(linears)
    finally:
        for module in linears:
            if own[id(module)] is None:
                del module.forward
            else:
                module.forward = own[id(module)]
