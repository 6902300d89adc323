"""Caveats on a decision: when the SLM's rates depend on how its rows were batched.

A run with `--check-batch-invariance K` records in its metric file how many of K rows, generated again one
at a time, got a different flag on each check (`batch_invariance.flag_flips`). The rule, per core metric m:

    f_m = flag flips on m's check / rows compared        (the share of rows whose flag follows the batching)
    caveat when  f_m > 0  and  f_m >= |gap_m - delta|     (gap_m = hosted rate - SLM rate on m)

Applied to all n rows of the run, a share f_m of flags that depend on the batching can move the SLM's rate
on m by up to f_m (each flipped row moves it by 1/n), so the gap can cross delta whenever it sits within
f_m of it: the point rule's answer on m, and the side of delta the gap's interval is centred on, could change
with the batching alone. The check's rate comes from K rows, not all n: it is an estimate, and a caveat,
never a change of the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slm_swap.tracks.rows.definitions import get_track


def flip_rates(block: Mapping[str, Any]) -> dict[str, float]:
    """Each check's flag-flip rate in a metric file's `batch_invariance` block (empty when nothing was compared)."""
    compared = int(block.get("rows_compared", 0))
    if compared == 0:
        return {}
    return {check: int(flips) / compared for check, flips in block.get("flag_flips", {}).items()}


def batch_caveats(track: str, slm: Mapping[str, Any], gaps: Mapping[str, float], delta: float) -> tuple[str, ...]:
    """One sentence per core metric whose gap sits within its flag-flip rate of delta (see the module docstring)."""
    block = slm.get("batch_invariance")
    if not block:
        return ()
    rates = flip_rates(block)
    caveats = []
    for check in get_track(track).checks:
        metric, rate = f"{check}_rate", rates.get(check, 0.0)
        if metric in gaps and rate > 0 and rate >= abs(gaps[metric] - delta):
            caveats.append(
                f"{metric}: {block['flag_flips'][check]} of {block['rows_compared']} rows generated alone changed this flag "
                f"(rate {rate:.3f}), at least the distance {abs(gaps[metric] - delta):.3f} between the gap {gaps[metric]:+.3f} "
                f"and delta {delta}: the batching alone could change the verdict on this metric"
            )
    return tuple(caveats)
