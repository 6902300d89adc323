"""Metrics: tiny functions over a list of row results; every one handles an empty list."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from slm_swap.scoring.outcomes import FailureKind
from slm_swap.scoring.scorers import RowResult
from slm_swap.stats.intervals import wilson_interval


def rate(results: Sequence[RowResult], check: str) -> float:
    if not results:
        return 0.0
    return sum(1 for r in results if r.flags[check]) / len(results)


def compute_rates(checks: Sequence[str], results: Sequence[RowResult]) -> dict[str, float]:
    """`<check>_rate` for each of a track's checks, in the track's order."""
    return {f"{check}_rate": rate(results, check) for check in checks}


def count_passes(checks: Sequence[str], results: Sequence[RowResult]) -> dict[str, int]:
    """Rows that pass each check: with n, what every rate and its interval are made of."""
    return {check: sum(1 for r in results if r.flags[check]) for check in checks}


def rate_intervals(checks: Sequence[str], results: Sequence[RowResult]) -> dict[str, list[float]]:
    """`<check>_rate` -> its 95 % Wilson score interval [low, high]."""
    return {f"{check}_rate": wilson_interval(passed, len(results)).as_list() for check, passed in count_passes(checks, results).items()}


def count_failures(results: Sequence[RowResult]) -> dict[str, int]:
    counts = Counter(r.failure.value for r in results if r.failure is not None)
    return dict(sorted(counts.items()))


def count_errors(results: Sequence[RowResult]) -> int:
    return sum(1 for r in results if r.failure is FailureKind.MODEL_ERROR)
