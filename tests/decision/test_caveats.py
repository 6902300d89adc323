"""The decision names batching as a caveat when the flag-flip rate could carry a gap across delta."""

from __future__ import annotations

import pytest

from slm_swap.decision.caveats import batch_caveats
from slm_swap.decision.rules import decide_track

DELTA = 0.02


def slm_doc(name_flips: int, compared: int = 20) -> dict:
    flips = {"valid_call": 0, "name_match": name_flips, "args_exact": 0}
    return {"batch_invariance": {"k": compared, "rows_compared": compared, "flag_flips": flips}}


CASES = [
    # 1 of 20 rows flips name_match (rate 0.05); gap 0.05 is 0.03 from delta: within reach, a caveat
    (slm_doc(1), {"name_match_rate": 0.05}, ["name_match_rate"]),
    # the same rate, gap 0.10 is 0.08 from delta: out of reach
    (slm_doc(1), {"name_match_rate": 0.10}, []),
    # rate exactly the distance (0.05 vs gap 0.07 - 0.02): counts, the verdict could just change
    (slm_doc(1), {"name_match_rate": 0.07}, ["name_match_rate"]),
    # the SLM ahead of the hosted model (gap -0.02, 0.04 from delta), rate 0.05: a caveat too
    (slm_doc(1), {"name_match_rate": -0.02}, ["name_match_rate"]),
    # no flips: never a caveat, even with the gap exactly at delta
    (slm_doc(0), {"name_match_rate": 0.02}, []),
    # no row compared (all rows from the journal): no rate, no caveat
    (slm_doc(0, compared=0), {"name_match_rate": 0.02}, []),
    # a run without the check: nothing to say
    ({}, {"name_match_rate": 0.02}, []),
]


@pytest.mark.parametrize(("slm", "gaps", "expected"), CASES)
def test_caveat_only_when_flips_reach_the_distance_to_delta(slm: dict, gaps: dict, expected: list[str]) -> None:
    caveats = batch_caveats("toolcall", slm, gaps, DELTA)
    assert [c.split(":")[0] for c in caveats] == expected


def test_decision_json_carries_the_caveat_and_keeps_the_verdict() -> None:
    hosted = {"metrics": {"valid_call_rate": 1.0, "name_match_rate": 0.9, "args_exact_rate": 0.7}, "n": 200}
    slm = {"metrics": {"valid_call_rate": 1.0, "name_match_rate": 0.86, "args_exact_rate": 0.7}, "n": 200, **slm_doc(1)}
    decision = decide_track("toolcall", hosted, slm, DELTA)
    assert decision.fine_tune  # gap 0.04 > delta: the caveat says so, it does not overturn it
    assert [c.split(":")[0] for c in decision.to_json()["caveats"]] == ["name_match_rate"]
