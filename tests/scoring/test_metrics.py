"""Metrics over row results and the regression gate built on them."""

import pytest

from slm_swap.formats.toolcall import format_structured_call, format_tool_call
from slm_swap.harness.gate import compare_to_reference, gate_passes
from slm_swap.scoring.metrics import compute_rates, count_errors, count_failures, rate
from slm_swap.scoring.scorers import score_structured, score_toolcall
from slm_swap.tracks.rows.definitions import TRACK_NAMES, TRACKS, get_track

GOLD_STRUCTURED = format_structured_call("f", {"x": 1})
GOLD_TOOLCALL = format_tool_call("f", {"x": 1})

# real scorer output, one of each kind that matters for counting
STRUCTURED_RESULTS = [
    score_structured(GOLD_STRUCTURED, GOLD_STRUCTURED),  # pass
    score_structured('{"name": "f", "arguments": {"x": 1.0}}', GOLD_STRUCTURED),  # valid, not exact
    score_structured(f"```json\n{GOLD_STRUCTURED}\n```", GOLD_STRUCTURED),  # invalid
    score_structured(None, GOLD_STRUCTURED),  # model call failed
]
TOOLCALL_RESULTS = [
    score_toolcall(GOLD_TOOLCALL, GOLD_TOOLCALL),  # pass
    score_toolcall('<tool_call name="g">{"x": 1}</tool_call>', GOLD_TOOLCALL),  # wrong name, exact args
    score_toolcall('<tool_call name="f">{"x": </tool_call>', GOLD_TOOLCALL),  # right name, broken body
    score_toolcall(None, GOLD_TOOLCALL),  # model call failed
    score_toolcall(None, GOLD_TOOLCALL),  # another failed call
]


@pytest.mark.parametrize("track", TRACK_NAMES)
def test_rates_over_no_rows_are_zero(track):
    # a run that evaluated nothing reports zeros instead of dividing by zero
    assert compute_rates(get_track(track).checks, []) == dict.fromkeys(get_track(track).core_metrics, 0.0)


def test_rate_over_no_rows_is_zero():
    assert rate([], "exact_match") == 0.0


def test_no_rows_have_no_failures():
    assert (count_failures([]), count_errors([])) == ({}, 0)


# (track, results, expected rates)
RATES = [
    ("structured", STRUCTURED_RESULTS, {"json_valid_rate": 0.5, "exact_match_rate": 0.25}),  # failed calls stay in the denominator
    (
        "toolcall",
        TOOLCALL_RESULTS,
        {"valid_call_rate": 0.4, "name_match_rate": 0.4, "args_exact_rate": 0.4},
    ),  # each check counted on its own
    ("structured", STRUCTURED_RESULTS[:1], {"json_valid_rate": 1.0, "exact_match_rate": 1.0}),  # one passing row
    ("toolcall", TOOLCALL_RESULTS[3:], {"valid_call_rate": 0.0, "name_match_rate": 0.0, "args_exact_rate": 0.0}),  # only failed calls
]


@pytest.mark.parametrize(("track", "results", "rates"), RATES)
def test_rates_are_over_all_rows(track, results, rates):
    assert compute_rates(get_track(track).checks, results) == rates


def test_core_metrics_are_the_rates_of_every_check():
    assert {name: track.core_metrics for name, track in TRACKS.items()} == {
        "structured": ("json_valid_rate", "exact_match_rate"),
        "toolcall": ("valid_call_rate", "name_match_rate", "args_exact_rate"),
    }


def test_errors_count_failed_model_calls_only():
    # an empty or broken reply is the model's failure, not an error of the call
    assert count_errors(TOOLCALL_RESULTS + STRUCTURED_RESULTS) == 3


def test_failures_are_counted_by_kind():
    assert count_failures(TOOLCALL_RESULTS) == {"invalid_arguments_json": 1, "model_error": 2, "wrong_name": 1}


# --- the regression gate ---------------------------------------------------------

REFERENCE = {"json_valid_rate": 0.9, "exact_match_rate": 0.7}

# (current metrics, delta, whether the gate passes)
GATE_CASES = [
    ({"json_valid_rate": 0.9, "exact_match_rate": 0.7}, 0.0, True),  # unchanged, no slack at all
    ({"json_valid_rate": 1.0, "exact_match_rate": 0.8}, 0.0, True),  # an improvement always passes
    ({"json_valid_rate": 0.9, "exact_match_rate": 0.68}, 0.02, True),  # a drop of exactly delta
    (
        {"json_valid_rate": 0.88, "exact_match_rate": 0.68},
        0.02,
        True,
    ),  # every metric at exactly delta; 0.9 - 0.88 is a hair over 0.02 in floats
    ({"json_valid_rate": 0.9, "exact_match_rate": 0.6799}, 0.02, False),  # just past delta
    ({"json_valid_rate": 0.8, "exact_match_rate": 0.7}, 0.02, False),  # one metric dropping is enough to fail
    ({"json_valid_rate": 0.9, "exact_match_rate": 0.6999}, 0.0, False),  # with no slack any drop fails
    ({"json_valid_rate": 0.0, "exact_match_rate": 0.0}, 1.0, True),  # delta 1 tolerates everything
]


@pytest.mark.parametrize(("current", "delta", "passes"), GATE_CASES)
def test_gate_allows_drops_up_to_delta(current, delta, passes):
    assert gate_passes(compare_to_reference("structured", REFERENCE, current, delta)) is passes


def test_gate_checks_every_core_metric():
    reference = dict.fromkeys(get_track("toolcall").core_metrics, 0.5)
    checks = compare_to_reference("toolcall", reference, reference, 0.0)
    assert [check.metric for check in checks] == list(get_track("toolcall").core_metrics)


def test_gate_ignores_metrics_that_are_not_core():
    # latency or error counts in the file must not decide the gate
    reference = {**REFERENCE, "errors": 0, "latency_s": 1.0}
    current = {**REFERENCE, "errors": 50, "latency_s": 99.0}
    assert gate_passes(compare_to_reference("structured", reference, current, 0.0)) is True


def test_gate_reports_the_drop():
    (_, check) = compare_to_reference("structured", REFERENCE, {"json_valid_rate": 0.9, "exact_match_rate": 0.5}, 0.1)
    assert (check.metric, check.drop, check.passed) == ("exact_match_rate", pytest.approx(0.2), False)


def test_negative_delta_refused():
    # a negative delta would demand an improvement and fail an unchanged run
    with pytest.raises(ValueError, match="delta"):
        compare_to_reference("structured", REFERENCE, REFERENCE, -0.01)
