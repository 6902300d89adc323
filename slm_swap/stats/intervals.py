"""Intervals, paired comparisons and verdicts over exact per-row pass/fail flags.

What comes from a library, and what is computed here by hand:

- `PairedComparison.mcnemar_p`: scipy's exact binomial test of the discordant rows at p = 1/2, two-sided, which
  is the exact McNemar test.
- Every z value (intervals, `rows_needed`): the standard library's `statistics.NormalDist().inv_cdf`.
- `wilson_interval` is the Wilson score interval's closed form with that z, not scipy's
  `binomtest(...).proportion_ci(method="wilson")` (tests/stats/test_intervals.py checks the two agree to 1e-12):
  every evaluation run writes Wilson intervals into its metric file, and importing `scipy.stats` for them cost
  each run 0.55 s with bytecode cached (0.85-1.05 s without) on the 2-core development machine, a tenth of a
  whole 200-row hosted run through 16 connections. scipy is imported only for McNemar, by the decision.
- The interval of a paired gap is computed here by hand, because scipy has no interval for a difference of two
  proportions measured on the same rows. It is Bonett & Price's adjusted Wald interval (Bonett & Price 2012,
  "Adjusted Wald confidence interval for a difference of binomial proportions based on paired data", J. Educ.
  Behav. Stat. 37(4)): with b = rows only A passes, c = rows only B passes, n rows,
  p12 = (b + 1) / (n + 2), p21 = (c + 1) / (n + 2), and the interval is
  (p12 - p21) +- z * sqrt((p12 + p21 - (p12 - p21)^2) / (n + 2)), clipped to [-1, 1].

Why Bonett & Price and not Newcombe's hybrid score method (Newcombe 1998, method 10): both were simulated at
n = 200 paired rows (the coverage test in tests/stats/test_intervals.py, 4 000 runs a case, and a wider grid of
121 cases at 6 000 runs). Newcombe's interval under-covers where one model wins every discordant row, the usual
shape of "the small model trails the hosted one on a few rows": at pass rates 0.52 vs 0.50 with no row won by the
second model it held the true gap 90.8 % of the time, at 0.55 vs 0.50 92.3 %, at 0.51 vs 0.50 86 %; an interval
too narrow there turns a tie into a false verdict. Bonett & Price held it 94.7-96.0 % wherever twenty or more
discordant rows were expected, and never below 93.5 % in any case tried. With only a handful of discordant rows
it is conservative (97-100 %), as every interval for such small discrete counts is; that costs rows, not a wrong
verdict.

Everything here is pure: no I/O, frozen values, 95 % intervals unless `confidence` says otherwise. scipy is
imported on first use, not with the module: the pytest plugin (loaded by every pytest run and every xdist
worker) imports this module.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

__all__ = [
    "Interval",
    "PairedComparison",
    "Verdict",
    "paired_difference",
    "paired_from_counts",
    "rows_needed",
    "verdict_for",
    "wilson_interval",
]


@dataclass(frozen=True)
class Interval:
    """A closed interval [low, high]."""

    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low

    def as_list(self) -> list[float]:
        """[low, high] rounded to 4 decimals, for JSON."""
        return [round(self.low, 4), round(self.high, 4)]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")


@lru_cache(maxsize=32)
def _z(confidence: float) -> float:
    """The two-sided normal quantile z_{1 - alpha/2} for `confidence` = 1 - alpha."""
    _check_confidence(confidence)
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(passed: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval for a pass rate of `passed` out of `n` rows; (0, 1) when there are no rows."""
    _check_confidence(confidence)
    if n < 0 or not 0 <= passed <= max(n, 0):
        raise ValueError(f"need 0 <= passed <= n, got passed={passed!r}, n={n!r}")
    if n == 0:
        return Interval(0.0, 1.0)
    z = _z(confidence)
    p, zz = passed / n, z * z
    denominator = 1.0 + zz / n
    centre = (p + zz / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + zz / (4 * n * n)) / denominator
    low = 0.0 if passed == 0 else max(0.0, centre - half)  # exact at the ends, as scipy's
    high = 1.0 if passed == n else min(1.0, centre + half)
    return Interval(low, high)


@dataclass(frozen=True)
class PairedComparison:
    """Two models' flags on the same rows, as the four cells of the paired table.

    `a` and `b` name the two sides: `gap` is a's rate minus b's. The interval is Bonett & Price's adjusted Wald
    interval for the gap (see the module docstring). With no rows, the rates and the gap are 0.0 and the
    interval is [-1, 1]: nothing is known.
    """

    both: int
    only_a: int
    only_b: int
    neither: int
    confidence: float = 0.95

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)
        for name in ("both", "only_a", "only_b", "neither"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither

    @property
    def a_rate(self) -> float:
        return (self.both + self.only_a) / self.n if self.n else 0.0

    @property
    def b_rate(self) -> float:
        return (self.both + self.only_b) / self.n if self.n else 0.0

    @property
    def gap(self) -> float:
        """a's pass rate minus b's, as observed: (only_a - only_b) / n."""
        return (self.only_a - self.only_b) / self.n if self.n else 0.0

    @property
    def discordance(self) -> float:
        """The share of rows on which the two sides disagree."""
        return (self.only_a + self.only_b) / self.n if self.n else 0.0

    @property
    def interval(self) -> Interval:
        """Bonett & Price's adjusted Wald interval for the gap, clipped to [-1, 1]."""
        m = self.n + 2
        p12 = (self.only_a + 1) / m
        p21 = (self.only_b + 1) / m
        centre = p12 - p21
        half = _z(self.confidence) * math.sqrt(max(0.0, (p12 + p21 - centre * centre) / m))
        return Interval(max(-1.0, centre - half), min(1.0, centre + half))

    @property
    def mcnemar_p(self) -> float:
        """The exact McNemar two-sided p-value: only_a out of the discordant rows against 1/2; 1.0 with none."""
        discordant = self.only_a + self.only_b
        if discordant == 0:
            return 1.0
        from scipy.stats import binomtest

        return float(binomtest(min(self.only_a, self.only_b), discordant, 0.5).pvalue)


def paired_from_counts(both: int, only_a: int, only_b: int, neither: int, confidence: float = 0.95) -> PairedComparison:
    """A paired comparison from the four cells: rows both pass, only a passes, only b passes, neither passes."""
    return PairedComparison(both=both, only_a=only_a, only_b=only_b, neither=neither, confidence=confidence)


def paired_difference(a_flags: Sequence[bool], b_flags: Sequence[bool], confidence: float = 0.95) -> PairedComparison:
    """Compare two models' pass flags on the same rows, in the same order."""
    if len(a_flags) != len(b_flags):
        raise ValueError(f"paired flags must cover the same rows: {len(a_flags)} vs {len(b_flags)}")
    cells = [0, 0, 0, 0]  # both, only_a, only_b, neither
    for a, b in zip(a_flags, b_flags):
        cells[(0 if b else 1) if a else (2 if b else 3)] += 1
    return paired_from_counts(*cells, confidence=confidence)


def rows_needed(pc: PairedComparison, delta: float, confidence: float = 0.95, power: float = 0.80) -> int | None:
    """Paired rows at which the gap's interval would be expected to lie wholly on one side of `delta`.

    Taking the observed discordance d and gap g as the truth, the normal approximation gives
    n = ceil((z_{1-alpha/2} + z_power)^2 * (d - g^2) / (g - delta)^2). This is the formula's value, whatever
    the current n: a value at or below `pc.n` says the current rows should already suffice. When d - g^2 <= 0
    (no discordant row was seen), 1 / n stands in for it so that the answer stays finite. None when g == delta:
    no number of rows separates a gap from itself.
    """
    _check_confidence(confidence)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must lie strictly between 0 and 1, got {power!r}")
    gap = pc.gap
    if gap == delta:
        return None
    variance = pc.discordance - gap * gap
    if variance <= 0.0:
        variance = 1.0 / max(pc.n, 1)
    z_sum = _z(confidence) + NormalDist().inv_cdf(power)
    return math.ceil(z_sum * z_sum * variance / (gap - delta) ** 2)


class Verdict(str, enum.Enum):
    """What the intervals support about swapping a hosted model for a small one."""

    NO_BASELINE = "no_baseline"  # the hosted model passes no row: there is nothing to match
    SLM_TRAILS = "slm_trails"  # on some metric the SLM is shown to trail the hosted model by more than delta
    SLM_MATCHES = "slm_matches"  # on every metric the SLM is shown to trail by at most delta
    INCONCLUSIVE = "inconclusive"  # neither is shown yet


def verdict_for(hosted_passed_any: bool, comparisons: Mapping[str, PairedComparison], delta: float) -> Verdict:
    """The verdict from per-metric comparisons whose side `a` is the hosted model and `b` the SLM.

    `slm_trails` when some metric's gap interval lies wholly above delta (low > delta); `slm_matches` when every
    metric's lies wholly at or below it (high <= delta); `inconclusive` otherwise, and with no metrics at all.
    """
    if not hosted_passed_any:
        return Verdict.NO_BASELINE
    intervals = [pc.interval for pc in comparisons.values()]
    if any(iv.low > delta for iv in intervals):
        return Verdict.SLM_TRAILS
    if intervals and all(iv.high <= delta for iv in intervals):
        return Verdict.SLM_MATCHES
    return Verdict.INCONCLUSIVE
