"""`--check-batch-invariance K`: does a row's answer depend on which rows shared its batch?

After the SLM's batched generation, K of the selected rows are generated again one at a time
(`choose_check_rows`: evenly spaced over the selected rows, in dataset order). Each such row's report
carries its alone text (`ALONE_PROPERTY`); the writer scores it with the track's own scorer and compares
text and flags with the row's batched record (`compare_alone`), into the metric file's
`batch_invariance` block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from slm_swap.data.rows import Row
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.tracks.rows.definitions import get_track

ALONE_PROPERTY = "slm_swap_alone"
CHOICE = "evenly spaced over the selected rows in dataset order: row floor(i * n / K) for i < K"

Item = TypeVar("Item")


def choose_check_rows(rows: Sequence[Item], k: int) -> list[Item]:
    """K of `rows`, evenly spaced and starting at the first (all rows when K >= their number)."""
    n = len(rows)
    if k >= n:
        return list(rows)
    return [rows[i * n // k] for i in range(k)]


def compare_alone(track: str, records: Mapping[str, RowRecord], alone: Mapping[str, str | None], rows: Mapping[str, Row]) -> dict[str, Any]:
    """Text flips and flag flips (per check and rows with any) between batched records and alone texts.

    Only rows with both a batched record and an alone text are compared; the alone text is scored here with
    the track's scorer against the row's gold completion, exactly as the evals test scored the batched one.
    """
    spec = get_track(track)
    compared = sorted(row_id for row_id in alone if row_id in records and row_id in rows)
    text_flipped, flag_flipped = [], []
    flips = dict.fromkeys(spec.checks, 0)
    for row_id in compared:
        batched = records[row_id]
        alone_flags = spec.score(alone[row_id], rows[row_id].completion).flags
        if batched.output != alone[row_id]:
            text_flipped.append(row_id)
        changed = [check for check in spec.checks if bool(batched.flags.get(check)) != bool(alone_flags[check])]
        for check in changed:
            flips[check] += 1
        if changed:
            flag_flipped.append(row_id)
    return {
        "rows_compared": len(compared),
        "rows": compared,
        "text_flips": len(text_flipped),
        "flag_flips": flips,
        "rows_with_flag_flips": len(flag_flipped),
        "text_flipped_rows": text_flipped,
        "flag_flipped_rows": flag_flipped,
    }


def invariance_block(k: int, engine: str, batch_invariant: bool, comparison: Mapping[str, Any]) -> dict[str, Any]:
    """The metric file's `batch_invariance` block: what was checked, how, and what flipped."""
    return {"k": k, "choice": CHOICE, "engine": engine, "batch_invariant": batch_invariant, **comparison}


def summary_line(block: Mapping[str, Any]) -> str:
    """The terminal summary's line: `batch invariance (static, batched): 2/8 rows' text differ alone, ...`."""
    mode = "batch-invariant" if block["batch_invariant"] else "default"
    n = block["rows_compared"]
    per_check = ", ".join(f"{check} {count}" for check, count in block["flag_flips"].items())
    line = (
        f"batch invariance ({block['engine']} engine, {mode} mode): {n} rows generated alone again; "
        f"text differs on {block['text_flips']}/{n}, flags on {block['rows_with_flag_flips']}/{n} ({per_check})"
    )
    if block["flag_flipped_rows"]:
        line += f"; flag flips: {' '.join(block['flag_flipped_rows'])}"
    return line
