"""Batch-invariant mode: a row's results are the same bits alone or in a batch with any other rows (CPU)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from slm_swap.engine.invariant import TileSwitch, row_tiled_linears

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("others", [0, 1, 2, 3, 7, 12, 31])
def test_a_tiled_linear_gives_a_row_the_same_bits_whatever_surrounds_it(others: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(576, 1536), torch.nn.Linear(1536, 576))
    row = torch.randn(1, 1, 576)
    switch = TileSwitch()
    switch.on = True
    with torch.inference_mode(), row_tiled_linears(model, switch) as wrapped:
        alone = model(row)
        batch = torch.cat([torch.randn(others, 1, 576), row])  # the row last: another position in its tile
        assert torch.equal(model(batch)[others], alone[0])
    assert wrapped == 2
    assert "forward" not in model[0].__dict__  # the plain forward is back after the block


@pytest.mark.slow
def test_every_row_of_a_batch_gets_its_alone_tokens_in_batch_invariant_mode() -> None:
    from slm_swap.backends.checkpoints import ensure_checkpoint
    from slm_swap.backends.local_slm import LocalSLM
    from slm_swap.data.rows import load_rows

    checkpoint = ensure_checkpoint("smollm2-135m-instruct", REPO / "slm_swap" / "models" / "smollm2-135m-instruct")
    rows = random.Random(0).sample(load_rows(REPO / "slm_swap" / "02_dataset" / "toolcall" / "test.jsonl", "toolcall"), 6)
    slm = LocalSLM(checkpoint, track="toolcall", max_new_tokens=12, batch_size=6, device="cpu", batch_invariant=True)
    try:
        batched, alone = slm.generate_rows(rows), slm.generate_rows(rows, batch_size=1)
    finally:
        slm.close()
    assert [batched[r.id].text.encode() for r in rows] == [alone[r.id].text.encode() for r in rows]
