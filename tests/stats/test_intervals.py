"""Wilson intervals, paired gaps, exact McNemar, rows needed and verdicts, checked against numbers worked out
independently of the code under test (closed forms, `math.comb`, `statistics.NormalDist`) and by simulation."""

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import binomtest

from slm_swap.stats.intervals import (
    Interval,
    PairedComparison,
    Verdict,
    paired_difference,
    paired_from_counts,
    rows_needed,
    verdict_for,
    wilson_interval,
)


def closed_form_wilson(passed, n, confidence):
    """The Wilson score interval by its textbook formula, with z from the standard library, not scipy."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


# (passed, n, confidence, [low, high] to 4 decimals, or None where only the closed form is checked)
WILSON = [
    (0, 8, 0.95, [0.0, 0.3244]),  # no passes: the lower bound is exactly 0, the upper one well above 0
    (5, 10, 0.95, [0.2366, 0.7634]),  # a half rate: symmetric about 0.5
    (200, 200, 0.95, [0.9812, 1.0]),  # every row passes: the upper bound is exactly 1
    (1, 3, 0.90, None),  # the confidence parameter reaches z: a 90 % interval
    (37, 120, 0.99, None),  # an uneven rate at 99 %
]


@pytest.mark.parametrize(("passed", "n", "confidence", "pinned"), WILSON)
def test_wilson_interval_matches_the_closed_form(passed, n, confidence, pinned):
    interval = wilson_interval(passed, n, confidence)
    low, high = closed_form_wilson(passed, n, confidence)
    assert interval.low == pytest.approx(low, abs=1e-9)
    assert interval.high == pytest.approx(high, abs=1e-9)
    library = binomtest(passed, n).proportion_ci(confidence_level=confidence, method="wilson")  # scipy's own
    assert interval.low == pytest.approx(library.low, abs=1e-12)
    assert interval.high == pytest.approx(library.high, abs=1e-12)
    if pinned is not None:
        assert interval.as_list() == pinned


def test_wilson_interval_with_no_rows_knows_nothing():
    assert wilson_interval(0, 0) == Interval(0.0, 1.0)


# (passed, n, confidence) that must be refused
WILSON_REFUSED = [
    (3, 2, 0.95),  # more passes than rows
    (-1, 2, 0.95),  # a negative count
    (1, 2, 1.0),  # a confidence of 1 has no finite interval
]


@pytest.mark.parametrize(("passed", "n", "confidence"), WILSON_REFUSED)
def test_wilson_interval_refuses_impossible_input(passed, n, confidence):
    with pytest.raises(ValueError):
        wilson_interval(passed, n, confidence)


def test_interval_helpers():
    interval = Interval(0.123449, 0.56789)
    assert interval.contains(0.123449) and interval.contains(0.56789) and not interval.contains(0.6)
    assert interval.width == pytest.approx(0.444441)
    assert interval.as_list() == [0.1234, 0.5679]


def exact_mcnemar(only_a, only_b):
    """Two-sided exact McNemar by summing the binomial(only_a + only_b, 1/2) tail with math.comb."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(only_a, only_b) + 1)) / 2**m
    return min(1.0, 2 * tail)


# (only_a, only_b, p-value)
MCNEMAR = [
    (15, 10, 0.4244),  # 25 discordant rows split 15/10: no evidence of a difference
    (10, 15, 0.4244),  # the test is two-sided: swapping the sides changes nothing
    (0, 7, 0.015625),  # every discordant row goes one way: 2 * 0.5**7
    (0, 0, 1.0),  # no discordant rows: nothing to test
]


@pytest.mark.parametrize(("only_a", "only_b", "p_value"), MCNEMAR)
def test_mcnemar_exact_p(only_a, only_b, p_value):
    p = paired_from_counts(50, only_a, only_b, 50).mcnemar_p
    assert p == pytest.approx(p_value, abs=5e-5)
    assert p == pytest.approx(exact_mcnemar(only_a, only_b), abs=1e-12)


def test_paired_difference_counts_the_four_cells():
    a = [True, True, True, False, False, True, False]
    b = [True, False, False, True, False, True, False]
    pc = paired_difference(a, b)
    assert (pc.both, pc.only_a, pc.only_b, pc.neither, pc.n) == (2, 2, 1, 2, 7)
    assert (pc.a_rate, pc.b_rate) == (4 / 7, 3 / 7)
    assert pc.gap == pytest.approx(1 / 7)
    assert pc.discordance == pytest.approx(3 / 7)
    assert pc == paired_from_counts(2, 2, 1, 2)


def test_paired_difference_refuses_unpaired_flags():
    with pytest.raises(ValueError):
        paired_difference([True, False], [True])


# (both, only_a, only_b, neither, [low, high] of the gap's interval to 4 decimals)
PAIRED_INTERVALS = [
    (100, 15, 5, 80, [0.0045, 0.0945]),  # by hand: p12 = 16/202, p21 = 6/202, se = sqrt((22/202 - (10/202)^2)/202)
    (190, 0, 0, 10, [-0.0137, 0.0137]),  # no discordant row: a narrow interval around 0, never a point
    (0, 5, 0, 0, [0.1958, 1.0]),  # a wins every row of five: clipped at 1
    (0, 0, 0, 0, [-1.0, 1.0]),  # no rows: nothing is known
]


@pytest.mark.parametrize(("both", "only_a", "only_b", "neither", "pinned"), PAIRED_INTERVALS)
def test_paired_interval_pinned(both, only_a, only_b, neither, pinned):
    assert paired_from_counts(both, only_a, only_b, neither).interval.as_list() == pinned


def test_paired_interval_narrows_with_lower_confidence():
    assert paired_from_counts(100, 15, 5, 80, confidence=0.80).interval.width < paired_from_counts(100, 15, 5, 80).interval.width


ROWS = 200
RUNS = 4000
SEED = 20240611


def simulated_coverage(a_rate, b_rate, discordance):
    """The share of simulated paired runs whose 95 % interval holds the true gap a_rate - b_rate."""
    gap = a_rate - b_rate
    only_b = max(0.0, (discordance - gap) / 2)
    cells = [b_rate - only_b, only_b + gap, only_b, max(0.0, 1 - a_rate - only_b)]
    runs = np.random.default_rng(SEED).multinomial(ROWS, cells, size=RUNS)
    tables, repeats = np.unique(runs, axis=0, return_counts=True)
    held = sum(k for table, k in zip(tables.tolist(), repeats.tolist()) if paired_from_counts(*table).interval.contains(gap))
    return held / RUNS


# (a's rate, b's rate, discordance, most coverage allowed); at n = 200, with RUNS runs a case. Coverage must stay at
# or above 93 % everywhere; it must stay at or below 97 % wherever 20 or more discordant rows are expected, and may
# reach 99 % below that, where the discordant count is small and discrete and every interval over-covers.
COVERAGE = [
    (0.03, 0.03, 0.06, 0.99),  # rates near 0, no gap: at most 12 discordant rows exist at this rate
    (0.05, 0.03, 0.06, 0.99),  # rates near 0, a gap of 0.02: 12 discordant rows
    (0.23, 0.03, 0.22, 0.97),  # a rate near 0 against a large gap (0.20)
    (0.05, 0.05, 0.10, 0.97),  # rates near 0, no gap, as many discordant rows as the rate allows (20)
    (0.50, 0.50, 0.10, 0.97),  # rates near 0.5, no gap
    (0.52, 0.50, 0.10, 0.97),  # rates near 0.5, a gap of 0.02
    (0.60, 0.40, 0.30, 0.97),  # rates near 0.5, a large gap
    (0.70, 0.50, 0.20, 0.97),  # a large gap with b winning no row: the lowest coverage measured
    (0.97, 0.97, 0.06, 0.99),  # rates near 1, no gap: 12 discordant rows
    (0.97, 0.95, 0.06, 0.99),  # rates near 1, a gap of 0.02
    (0.97, 0.77, 0.22, 0.97),  # a rate near 1 against a large gap
    (0.52, 0.50, 0.02, 0.99),  # b wins no row, a wins 2 %: Newcombe's hybrid score interval held the gap only 91 %
    (0.55, 0.50, 0.05, 0.99),  # b wins no row, a wins 5 %: Newcombe's held it 93 %, the reason it was not chosen
]


@pytest.mark.parametrize(("a_rate", "b_rate", "discordance", "most"), COVERAGE)
def test_paired_interval_covers_the_true_gap(a_rate, b_rate, discordance, most):
    assert 0.93 <= simulated_coverage(a_rate, b_rate, discordance) <= most


def test_rows_needed_by_hand():
    # discordance 0.1, gap 0.05, delta 0: (1.959964 + 0.841621)^2 * (0.1 - 0.0025) / 0.05^2 = 306.1, so 307
    assert rows_needed(paired_from_counts(100, 15, 5, 80), delta=0.0) == 307


def test_rows_needed_grows_as_the_gap_nears_delta():
    pc = paired_from_counts(100, 15, 5, 80)  # gap 0.05
    below = [rows_needed(pc, delta) for delta in (-0.10, -0.05, 0.0, 0.02, 0.04, 0.049)]
    above = [rows_needed(pc, delta) for delta in (0.20, 0.10, 0.07, 0.06, 0.051)]
    assert below == sorted(below) and len(set(below)) == len(below)
    assert above == sorted(above) and len(set(above)) == len(above)
    assert rows_needed(pc, 0.04) > rows_needed(pc, 0.0)


def test_rows_needed_grows_with_power_and_confidence():
    pc = paired_from_counts(100, 15, 5, 80)
    assert rows_needed(pc, 0.0, power=0.9) > rows_needed(pc, 0.0, power=0.8)
    assert rows_needed(pc, 0.0, confidence=0.99) > rows_needed(pc, 0.0, confidence=0.95)


# (cells, delta, rows needed)
ROWS_NEEDED_EDGES = [
    ((100, 15, 5, 80), 0.05, None),  # the gap equals delta: no number of rows separates them
    ((190, 0, 0, 10), 0.02, 99),  # no discordant row: 1/n stands in for the variance, (2.8016^2 / 200) / 0.02^2 = 98.1
]


@pytest.mark.parametrize(("cells", "delta", "needed"), ROWS_NEEDED_EDGES)
def test_rows_needed_edges(cells, delta, needed):
    assert rows_needed(paired_from_counts(*cells), delta) == needed


TRAILS = paired_from_counts(100, 40, 0, 60)  # hosted wins 20 % of rows: interval well above 0.05
MATCHES = paired_from_counts(900, 2, 2, 96)  # 1000 rows, 4 discordant: interval within +-0.01
UNSURE = paired_from_counts(100, 13, 7, 80)  # 200 rows, gap 0.03: interval (-0.016, 0.075) straddles 0.05

# (hosted passed any row, comparisons by metric, verdict) with delta = 0.05
VERDICTS = [
    (False, {"exact": MATCHES}, Verdict.NO_BASELINE),  # the hosted model passes nothing: no baseline to match
    (True, {"exact": MATCHES, "schema": TRAILS}, Verdict.SLM_TRAILS),  # one metric shown to trail is enough
    (True, {"exact": MATCHES, "schema": MATCHES}, Verdict.SLM_MATCHES),  # every metric shown within delta
    (True, {"exact": MATCHES, "schema": UNSURE}, Verdict.INCONCLUSIVE),  # one metric not settled either way
    (True, {}, Verdict.INCONCLUSIVE),  # no metrics: nothing is shown
]


@pytest.mark.parametrize(("hosted_passed_any", "comparisons", "verdict"), VERDICTS)
def test_verdict_for(hosted_passed_any, comparisons, verdict):
    assert verdict_for(hosted_passed_any, comparisons, delta=0.05) is verdict


def test_verdict_values_are_the_json_strings():
    assert [v.value for v in Verdict] == ["no_baseline", "slm_trails", "slm_matches", "inconclusive"]
    assert isinstance(TRAILS, PairedComparison) and TRAILS.interval.low > 0.05
    assert MATCHES.interval.high <= 0.05 and UNSURE.interval.low < 0.05 < UNSURE.interval.high


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_interval_agrees_with_scipy_on_every_count_up_to_60_rows(confidence):
    for n in range(1, 61):
        for passed in range(n + 1):
            interval = wilson_interval(passed, n, confidence)
            library = binomtest(passed, n).proportion_ci(confidence_level=confidence, method="wilson")
            assert (interval.low, interval.high) == pytest.approx((library.low, library.high), abs=1e-12), (passed, n)
