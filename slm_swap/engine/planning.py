"""Batch planning for the static engine: which rows share a batch, how many cache slots each row reserves,
and which rows share a prefill pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALIGN = 16  # cache and prefill widths are multiples of this, so masks over them suit fused SDPA kernels
PREFILL_PADDING = 1.15  # a prefill group's longest row is at most this many times its shortest
# One-off cost of a batch (its eager first step, the graph capture), in decode steps.
BATCH_OVERHEAD_STEPS = 20


@dataclass(frozen=True)
class BatchPlan:
    start: int
    end: int

    @property
    def rows(self) -> int:
        return self.end - self.start


def plan_batches(
    lengths: Sequence[int],
    new_tokens: int,
    slot_bytes: int,
    step_bytes: int,
    memory_bytes: float,
    max_rows: int,
    reads_padding: bool = True,
) -> list[BatchPlan]:
    """Split rows sorted longest first into batches that minimise the memory read by decoding.

    A decode step reads the weights (`step_bytes`, whatever the batch size) and the batch's
    cache (`slot_bytes` per slot). The cache holds each row's own slots (`row_slots`), but
    without the Triton kernel (`reads_padding`) a step reads rows x the longest row's slots:
    then one batch of every row reads the long rows' padding on every step, and one batch per
    row reads the weights once per row. The split in between is found exactly by dynamic
    programming over the sorted rows, within `memory_bytes` of cache and `max_rows` rows per
    batch. With `reads_padding` False padding costs nothing, and the plan is the fewest
    batches that fit.
    """
    import numpy as np

    if any(a < b for a, b in zip(lengths, lengths[1:])):
        raise ValueError("plan_batches needs the lengths sorted longest first")
    n = len(lengths)
    if n == 0:
        return []
    steps = max(new_tokens - 1, 1)
    slots = np.asarray([row_slots(length, new_tokens) for length in lengths], dtype=np.float64)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=np.int64)
    real = np.concatenate(([0.0], np.cumsum(slots)))  # slots of rows [0, i)
    for end in range(1, n + 1):
        starts = np.arange(max(0, end - max_rows), end)
        rows = end - starts
        cache = (real[end] - real[starts]) * slot_bytes
        read = rows * slots[starts] * slot_bytes if reads_padding else cache  # padded to the first (longest) row
        cost = best[starts] + steps * (step_bytes + read) + BATCH_OVERHEAD_STEPS * step_bytes
        cost[(cache > memory_bytes) & (rows > 1)] = np.inf  # a row alone is always tried: it may still fit
        pick = int(np.argmin(cost))
        best[end], cut[end] = cost[pick], starts[pick]
    plans: list[BatchPlan] = []
    end = n
    while end > 0:
        plans.append(BatchPlan(int(cut[end]), end))
        end = int(cut[end])
    return plans[::-1]


def row_slots(length: int, new_tokens: int) -> int:
    """The most cache slots a row of `length` prompt tokens takes in a batch (see `reserved_slots`)."""
    return aligned(max(length + new_tokens - 1, math.ceil(PREFILL_PADDING * length)))


def reserved_slots(lengths: Sequence[int], new_tokens: int, groups: Sequence[tuple[int, int]]) -> list[int]:
    """Cache slots of each row: its prompt and new tokens, and at least its prefill group's width.

    A prefill pass writes every column of its right-padded group, padding included, into each
    row's own slots (the row's new tokens overwrite the padding before any query reads it).
    """
    slots = [0] * len(lengths)
    for first, last in groups:
        width = aligned(lengths[first])
        for row in range(first, last):
            slots[row] = aligned(max(lengths[row] + new_tokens - 1, width))
    return slots


def prefill_groups(lengths: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive groups of rows (sorted longest first) for one prefill pass each.

    A group's rows are padded to its first row: it holds at most `max_tokens` padded tokens
    (always at least one row) and its first row is at most PREFILL_PADDING times its last.
    """
    groups: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(lengths) + 1):
        if index == len(lengths):
            groups.append((start, index))
            break
        longest = lengths[start]
        if (index - start + 1) * longest > max_tokens or longest > PREFILL_PADDING * max(lengths[index], 1):
            groups.append((start, index))
            start = index
    return groups


def packed_groups(lengths: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive groups of rows of at most `max_tokens` tokens together (always at least one row)."""
    groups: list[tuple[int, int]] = []
    start, tokens = 0, 0
    for index, length in enumerate(lengths):
        if index > start and tokens + length > max_tokens:
            groups.append((start, index))
            start, tokens = index, 0
        tokens += length
    if lengths:
        groups.append((start, len(lengths)))
    return groups


def aligned(width: int) -> int:
    """A cache or prefill width rounded up to a multiple of ALIGN."""
    return -(-width // ALIGN) * ALIGN
