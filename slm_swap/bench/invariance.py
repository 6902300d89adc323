"""Timing and checking the static engine's two modes: default and batch-invariant (slm_swap.engine.invariant).

Per mode: the rows generated in one batch, then (the first `alone_rows` of them) one at a time, both with
the static engine; rows/s of each, and the rows whose text differs between the two (flips; 0 is what
batch-invariant mode promises). Rows are warmed up first (one row alone, one small batch), so the figures
leave out kernel compilation and the first CUDA graph capture.
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
    alone_rows: int
    batched_rows_per_s: float
    alone_rows_per_s: float
    text_flips: int
    flipped_rows: tuple[str, ...]


@dataclass(frozen=True)
class BenchSettings:
    checkpoint: Path
    new_tokens: int
    device: str
    quantization: str = "nf4"
    adapter: Path | None = None
    min_new_tokens: int = 0  # set to new_tokens to time a fixed amount of work per row
    alone_rows: int | None = None  # None: every row


def bench_mode(settings: BenchSettings, rows: Sequence[Row], batch_invariant: bool) -> ModeResult:
    slm = LocalSLM(
        settings.checkpoint,
        adapter=settings.adapter,
        track=rows[0].track,
        max_new_tokens=settings.new_tokens,
        min_new_tokens=settings.min_new_tokens,
        batch_size=len(rows),
        quantization=settings.quantization,
        device=settings.device,
        batch_invariant=batch_invariant,
    )
    alone_rows = list(rows[: settings.alone_rows])
    try:
        slm.generate_rows(rows[:1], batch_size=1)  # warm-up
        slm.generate_rows(rows[:4])
        started = time.perf_counter()
        batched = slm.generate_rows(rows)
        batched_s = time.perf_counter() - started
        started = time.perf_counter()
        alone = slm.generate_rows(alone_rows, batch_size=1)
        alone_s = time.perf_counter() - started
    finally:
        slm.close()
    flipped = tuple(row.id for row in alone_rows if batched[row.id].text != alone[row.id].text)
    return ModeResult(batch_invariant, len(rows), len(alone_rows), len(rows) / batched_s, len(alone_rows) / alone_s, len(flipped), flipped)


def markdown_table(results: Sequence[ModeResult]) -> str:
    lines = ["| mode | rows | batched rows/s | rows alone | one at a time rows/s | text flips |", "|---|---|---|---|---|---|"]
    for r in results:
        mode = "batch-invariant" if r.batch_invariant else "default"
        flips = f"{r.text_flips} of {r.alone_rows}"
        lines.append(f"| {mode} | {r.rows} | {r.batched_rows_per_s:.3f} | {r.alone_rows} | {r.alone_rows_per_s:.3f} | {flips} |")
    return "\n".join(lines)
