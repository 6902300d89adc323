"""Timing and checking the static engine's two modes: default and batch-invariant (slm_swap.engine.invariant).

Per mode: the rows generated in one batch, then one at a time, both with the static engine; rows/s of each,
and the rows whose text differs between the two (flips; 0 is what batch-invariant mode promises).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slm_swap.backends.local_slm import LocalSLM
from slm_swap.data.rows import Row


@dataclass(frozen=True)
class ModeResult:
    batch_invariant: bool
    rows: int
    batched_rows_per_s: float
    alone_rows_per_s: float
    text_flips: int
    flipped_rows: tuple[str, ...]


def bench_mode(checkpoint: Path, rows: Sequence[Row], new_tokens: int, batch_invariant: bool, device: str) -> ModeResult:
    slm = LocalSLM(
        checkpoint, track=rows[0].track, max_new_tokens=new_tokens, batch_size=len(rows), device=device, batch_invariant=batch_invariant
    )
    try:
        started = time.perf_counter()
        batched = slm.generate_rows(rows)
        batched_s = time.perf_counter() - started
        started = time.perf_counter()
        alone = slm.generate_rows(rows, batch_size=1)
        alone_s = time.perf_counter() - started
    finally:
        slm.close()
    flipped = tuple(row.id for row in rows if batched[row.id].text != alone[row.id].text)
    return ModeResult(batch_invariant, len(rows), len(rows) / batched_s, len(rows) / alone_s, len(flipped), flipped)


def markdown_table(results: Sequence[ModeResult]) -> str:
    lines = ["| mode | rows | batched rows/s | one at a time rows/s | text flips |", "|---|---|---|---|---|"]
    for r in results:
        mode = "batch-invariant" if r.batch_invariant else "default"
        lines.append(f"| {mode} | {r.rows} | {r.batched_rows_per_s:.3f} | {r.alone_rows_per_s:.3f} | {r.text_flips} |")
    return "\n".join(lines)
