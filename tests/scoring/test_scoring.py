"""Scoring rules of issue 3 item 4, one table per rule, plus properties over arbitrary JSON.

Each case carries a comment saying what it probes. Golds are written the way the
dataset writes them (`format_structured_call`, `format_tool_call`), so a test here
fails when the scorer, not the fixture, is wrong.
"""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slm_swap.formats.jsontext import canonical_text
from slm_swap.formats.toolcall import format_structured_call, format_tool_call
from slm_swap.scoring.outcomes import FailureKind
from slm_swap.scoring.scorers import STRUCTURED_CHECKS, TOOLCALL_CHECKS, score_structured, score_toolcall
from slm_swap.tracks.rows.definitions import get_track

ARGS = {"city": "Paris", "days": 3, "units": {"temp": "C", "wind": "kmh"}}
GOLD_STRUCTURED = format_structured_call("get_weather", ARGS)
GOLD_TOOLCALL = format_tool_call("get_weather", ARGS)
# the same call, hand-written with other key order and spacing
LOOSE_OBJECT = '{"arguments": {"units": {"wind": "kmh", "temp": "C"}, "days": 3, "city": "Paris"}, "name": "get_weather"}'
LOOSE_ARGS = '{ "units": {"wind":"kmh","temp":"C"},\n  "days": 3, "city": "Paris" }'


def call(body: str, name: str = "get_weather") -> str:
    return f'<tool_call name="{name}">{body}</tool_call>'


# --- structured: json_valid -------------------------------------------------------

# (output, json_valid)
STRUCTURED_VALIDITY = [
    (GOLD_STRUCTURED, True),  # the gold itself
    (f"\n  {GOLD_STRUCTURED}\t\n", True),  # surrounding whitespace is stripped
    ('{"name": "x", "arguments": {}}', True),  # valid even when wrong: validity ignores the gold
    ("[1, 2]", True),  # any one strict JSON value is valid JSON
    ("42", True),  # a bare number is one JSON value
    ("", False),  # no output
    ("NaN", False),  # Python's json extension
    ('{"name": "get_weather", "arguments": {"days": Infinity}}', False),  # Infinity nested in an argument
    ('{"name": "get_weather", "arguments": {"days": 1e400}}', False),  # reads as inf in Python: not strict
    (f"```json\n{GOLD_STRUCTURED}\n```", False),  # code fence
    (f"```\n{GOLD_STRUCTURED}\n```", False),  # code fence without a language
    (f"Sure! {GOLD_STRUCTURED}", False),  # prose before
    (f"{GOLD_STRUCTURED}\nHope this helps.", False),  # prose after
    (f"{GOLD_STRUCTURED}{GOLD_STRUCTURED}", False),  # trailing data: a second value
    (f"{GOLD_STRUCTURED},", False),  # trailing data: one comma
    ("{'name': 'get_weather', 'arguments': {}}", False),  # Python dict repr
    ('{"name": "get_weather", "name": "get_weather", "arguments": {}}', False),  # duplicate keys
    ('{"name": "get_weather", "arguments": {"city": "Paris",}}', False),  # trailing comma
]


@pytest.mark.parametrize(("output", "valid"), STRUCTURED_VALIDITY)
def test_structured_json_valid_means_one_strict_value(output, valid):
    assert score_structured(output, GOLD_STRUCTURED).flags["json_valid"] is valid


# --- structured: exact_match ------------------------------------------------------

# (output, exact_match)
STRUCTURED_EXACT = [
    (GOLD_STRUCTURED, True),  # the gold itself
    (LOOSE_OBJECT, True),  # key order at every depth and whitespace are irrelevant
    (json.dumps(json.loads(GOLD_STRUCTURED), indent=4), True),  # pretty-printed
    ('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3.0, "units": {"temp": "C", "wind": "kmh"}}}', False),  # 3.0 is not 3
    ('{"name": "get_weather", "arguments": {"city": "Paris", "days": "3", "units": {"temp": "C", "wind": "kmh"}}}', False),  # "3" is not 3
    ('{"name": "get_weather", "arguments": {"city": "paris", "days": 3, "units": {"temp": "C", "wind": "kmh"}}}', False),  # case matters
    ('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "units": {"temp": "C"}}}', False),  # a nested key missing
    (
        '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "units": {"temp": "C", "wind": "kmh"}, "x": null}}',
        False,
    ),  # an extra null argument
    ('{"name": "get_forecast", "arguments": {"city": "Paris", "days": 3, "units": {"temp": "C", "wind": "kmh"}}}', False),  # wrong name
    (f"```json\n{GOLD_STRUCTURED}\n```", False),  # exact content in a fence is still not valid, so not exact
]


@pytest.mark.parametrize(("output", "exact"), STRUCTURED_EXACT)
def test_structured_exact_match_is_canonical_equality(output, exact):
    assert score_structured(output, GOLD_STRUCTURED).flags["exact_match"] is exact


def test_int_and_float_are_different():
    # Python says 1 == 1.0, so a scorer comparing parsed values would pass this
    gold = format_structured_call("f", {"n": 1})
    assert score_structured('{"name": "f", "arguments": {"n": 1.0}}', gold).flags["exact_match"] is False


def test_true_and_one_are_different():
    # Python says True == 1 as well
    gold = format_structured_call("f", {"flag": True})
    assert score_structured('{"name": "f", "arguments": {"flag": 1}}', gold).flags["exact_match"] is False


def test_unicode_escape_equals_literal_character():
    # a model may escape non-ASCII (json.dumps does by default); the string is the same
    gold = format_structured_call("f", {"city": "Zürich 😀"})
    output = '{"name": "f", "arguments": {"city": "Z\\u00fcrich \\ud83d\\ude00"}}'
    assert score_structured(output, gold).flags["exact_match"] is True


def test_nested_key_order_is_irrelevant():
    gold = format_structured_call("f", {"a": {"y": [{"q": 1, "p": 2}], "x": 0}})
    output = '{"arguments": {"a": {"x": 0, "y": [{"p": 2, "q": 1}]}}, "name": "f"}'
    assert score_structured(output, gold).flags["exact_match"] is True


def test_code_fence_is_not_valid_json():
    assert score_structured(f"```json\n{GOLD_STRUCTURED}\n```", GOLD_STRUCTURED).flags["json_valid"] is False


def test_trailing_data_is_invalid():
    # json.JSONDecoder.raw_decode would accept this prefix; the scorer must not
    assert score_structured(GOLD_STRUCTURED + ' {"more": 1}', GOLD_STRUCTURED).flags["json_valid"] is False


def test_nan_is_rejected():
    assert score_structured('{"name": "f", "arguments": {"x": NaN}}', GOLD_STRUCTURED).flags["json_valid"] is False


def test_duplicate_keys_rejected():
    # which "city" would count? the RFC leaves it open, so the reply has no single meaning
    output = '{"name": "get_weather", "arguments": {"city": "Rome", "city": "Paris", "days": 3, "units": {"temp": "C", "wind": "kmh"}}}'
    assert score_structured(output, GOLD_STRUCTURED).flags["json_valid"] is False


def test_lone_surrogate_is_invalid_not_a_crash():
    # json.loads accepts "\ud800" but the value has no UTF-8, so it cannot be compared canonically
    assert score_structured('{"name": "f", "arguments": {"s": "\\ud800"}}', GOLD_STRUCTURED).flags["json_valid"] is False


# --- tool calling: valid_call, name_match, args_exact -----------------------------

# (output, {check: expected flag}) — every flag of every case is asserted at once
TOOLCALL_FLAGS = [
    (GOLD_TOOLCALL, (True, True, True)),  # the gold itself
    (call(LOOSE_ARGS), (True, True, True)),  # key order and whitespace inside BODY are irrelevant
    (call(f"\n  {LOOSE_ARGS}\n"), (True, True, True)),  # BODY is stripped before parsing
    (f"I'll check the weather.\n{GOLD_TOOLCALL}\nDone.", (True, True, True)),  # text around one element is allowed
    (call(LOOSE_ARGS, name="get_forecast"), (True, False, True)),  # wrong name, exact args
    (call('{"city": "Paris"'), (False, True, False)),  # broken BODY still gets its name checked
    (call("{'city': 'Paris'}"), (False, True, False)),  # Python dict repr in BODY
    (call("```json\n" + LOOSE_ARGS + "\n```"), (False, True, False)),  # a code fence inside BODY
    (call('{"city": "Paris", "days": NaN}'), (False, True, False)),  # NaN in BODY
    (call('{"city": "Paris"} {"days": 3}'), (False, True, False)),  # trailing data in BODY
    (call('{"city": "Paris", "city": "Rome"}'), (False, True, False)),  # duplicate key in BODY
    (call(""), (False, True, False)),  # empty BODY
    (call("[1, 2]"), (True, True, False)),  # BODY is strict JSON, just not the arguments
    (call('{"city": "Paris", "days": 3.0, "units": {"temp": "C", "wind": "kmh"}}'), (True, True, False)),  # 3.0 is not 3
    (call('{"city": "Paris", "days": 3, "units": {"temp": "C", "wind": "kmh"}, "x": 1}'), (True, True, False)),  # extra argument
    (call(LOOSE_ARGS, name="Get_Weather"), (True, False, True)),  # names compare exactly, case included
    (call(LOOSE_ARGS, name=" get_weather"), (True, False, True)),  # no trimming inside the quotes
    (GOLD_TOOLCALL + GOLD_TOOLCALL, (False, False, False)),  # two identical elements
    (GOLD_TOOLCALL + "\n" + call("{}", name="other"), (False, False, False)),  # two different elements
    (GOLD_TOOLCALL + '\n<tool_call name="get_weather">{"city"', (False, False, False)),  # a dangling second opening counts as a second call
    (GOLD_TOOLCALL.replace('"get_weather"', "'get_weather'"), (False, False, False)),  # single-quoted name: not an element
    ('<tool_call name=get_weather>{"city": "Paris"}</tool_call>', (False, False, False)),  # unquoted name
    ('<tool_call name="get_weather">{"city": "Paris"}', (False, False, False)),  # never closed
    ('<tool_call>{"city": "Paris"}</tool_call>', (False, False, False)),  # no name attribute
    (LOOSE_ARGS, (False, False, False)),  # bare JSON arguments, no element
    (GOLD_STRUCTURED, (False, False, False)),  # the structured track's answer
    ("", (False, False, False)),  # no output
]


@pytest.mark.parametrize(("output", "flags"), TOOLCALL_FLAGS)
def test_toolcall_flags(output, flags):
    assert score_toolcall(output, GOLD_TOOLCALL).flags == dict(zip(TOOLCALL_CHECKS, flags))


def test_text_around_single_tool_call_is_allowed():
    output = f"Let me look that up.\n\n{GOLD_TOOLCALL}\n\nI will report back."
    assert score_toolcall(output, GOLD_TOOLCALL).passed is True


def test_two_tool_calls_fail_name_match():
    # both carry the gold name, yet the rule asks for exactly one element
    assert score_toolcall(GOLD_TOOLCALL + GOLD_TOOLCALL, GOLD_TOOLCALL).flags["name_match"] is False


def test_single_quoted_name_is_not_a_tool_call():
    output = "<tool_call name='get_weather'>" + canonical_text(ARGS) + "</tool_call>"
    assert score_toolcall(output, GOLD_TOOLCALL).failure is FailureKind.NO_TOOL_CALL


def test_name_match_holds_when_body_is_invalid():
    result = score_toolcall(call('{"city": "Paris",'), GOLD_TOOLCALL)
    assert (result.flags["valid_call"], result.flags["name_match"]) == (False, True)


def test_args_exact_is_independent_of_name():
    result = score_toolcall(call(LOOSE_ARGS, name="wrong_tool"), GOLD_TOOLCALL)
    assert (result.flags["name_match"], result.flags["args_exact"]) == (False, True)


def test_args_exact_needs_valid_body():
    # a body that is not strict JSON never counts as the gold arguments
    result = score_toolcall(call('{"city": "Paris", "days": 3, "units": {"temp": "C", "wind": "kmh"}} trailing'), GOLD_TOOLCALL)
    assert result.flags["args_exact"] is False


def test_toolcall_int_and_float_are_different():
    gold = format_tool_call("f", {"n": 1})
    assert score_toolcall(call('{"n": 1.0}', name="f"), gold).flags["args_exact"] is False


def test_toolcall_unicode_escape_equals_literal_character():
    gold = format_tool_call("f", {"city": "Zürich"})
    assert score_toolcall(call('{"city": "Z\\u00fcrich"}', name="f"), gold).flags["args_exact"] is True


def test_toolcall_passes_only_when_all_three_checks_hold():
    results = [score_toolcall(output, GOLD_TOOLCALL) for output, _ in TOOLCALL_FLAGS]
    assert all(r.passed == all(r.flags.values()) for r in results)


# --- failed model calls -----------------------------------------------------------

# (track, gold, checks)
TRACK_GOLDS = [
    ("structured", GOLD_STRUCTURED, STRUCTURED_CHECKS),  # structured track
    ("toolcall", GOLD_TOOLCALL, TOOLCALL_CHECKS),  # tool-calling track
]


@pytest.mark.parametrize(("track", "gold", "checks"), TRACK_GOLDS)
def test_failed_model_call_fails_every_check(track, gold, checks):
    result = get_track(track).score(None, gold)
    assert (result.flags, result.failure, result.checks_failed) == (dict.fromkeys(checks, False), FailureKind.MODEL_ERROR, checks)


@pytest.mark.parametrize(("track", "gold", "checks"), TRACK_GOLDS)
def test_empty_output_is_not_a_model_error(track, gold, checks):
    # the model answered, with nothing: a model failure, not an infrastructure one
    assert get_track(track).score("", gold).failure is FailureKind.EMPTY_OUTPUT


# --- failure kinds ----------------------------------------------------------------

# (track, output, failure kind)
FAILURE_KINDS = [
    ("structured", GOLD_STRUCTURED, None),  # a pass has no failure
    ("structured", LOOSE_OBJECT, None),  # a canonical pass has no failure either
    ("structured", "", FailureKind.EMPTY_OUTPUT),  # nothing
    ("structured", " \n\t", FailureKind.EMPTY_OUTPUT),  # only whitespace
    ("structured", f"```json\n{GOLD_STRUCTURED}\n```", FailureKind.CODE_FENCE),  # fenced JSON
    ("structured", f"```\n{GOLD_STRUCTURED}\n```", FailureKind.CODE_FENCE),  # fenced JSON, no language tag
    ("structured", f"Here is the call: {GOLD_STRUCTURED}", FailureKind.TEXT_AROUND_JSON),  # prose before
    ("structured", f"{GOLD_STRUCTURED} -- done", FailureKind.TEXT_AROUND_JSON),  # prose after
    ("structured", f"Sure:\n```json\n{GOLD_STRUCTURED}\n```", FailureKind.TEXT_AROUND_JSON),  # prose and a fence
    ("structured", '{"name": "get_weather", "arguments": {', FailureKind.INVALID_JSON),  # truncated
    ("structured", "{'name': 'get_weather'}", FailureKind.INVALID_JSON),  # Python repr
    ("structured", '{"name": "get_weather", "arguments": {"days": NaN}}', FailureKind.INVALID_JSON),  # NaN
    ("structured", "[1, 2]", FailureKind.NOT_A_CALL_OBJECT),  # JSON, wrong shape
    ("structured", '{"name": "get_weather"}', FailureKind.NOT_A_CALL_OBJECT),  # arguments missing
    ("structured", '{"name": "get_weather", "arguments": {}, "id": 1}', FailureKind.NOT_A_CALL_OBJECT),  # an extra key
    ("structured", LOOSE_OBJECT.replace('"get_weather"', '"get_forecast"'), FailureKind.WRONG_NAME),  # wrong name
    ("structured", LOOSE_OBJECT.replace('"days": 3', '"days": 3.0'), FailureKind.ARGUMENTS_DIFFER),  # 3.0 for 3
    ("toolcall", GOLD_TOOLCALL, None),  # a pass has no failure
    ("toolcall", "", FailureKind.EMPTY_OUTPUT),  # nothing
    ("toolcall", "  \n", FailureKind.EMPTY_OUTPUT),  # only whitespace
    ("toolcall", "The weather in Paris is sunny.", FailureKind.NO_TOOL_CALL),  # prose only
    ("toolcall", LOOSE_ARGS, FailureKind.NO_TOOL_CALL),  # bare arguments
    ("toolcall", GOLD_TOOLCALL.replace('"get_weather"', "'get_weather'"), FailureKind.NO_TOOL_CALL),  # single-quoted name
    ("toolcall", GOLD_TOOLCALL + GOLD_TOOLCALL, FailureKind.MULTIPLE_TOOL_CALLS),  # two elements
    ("toolcall", GOLD_TOOLCALL + '<tool_call name="x">{', FailureKind.MULTIPLE_TOOL_CALLS),  # one element and a dangling opening
    ("toolcall", call('{"city": "Paris",'), FailureKind.INVALID_ARGUMENTS_JSON),  # broken BODY
    ("toolcall", call('{"city": "Paris",', name="other"), FailureKind.INVALID_ARGUMENTS_JSON),  # broken BODY outranks a wrong name
    ("toolcall", call(LOOSE_ARGS, name="get_forecast"), FailureKind.WRONG_NAME),  # exact args, wrong name
    ("toolcall", call("{}", name="get_forecast"), FailureKind.WRONG_NAME),  # both wrong: the name is named first
    ("toolcall", call('{"city": "Paris"}'), FailureKind.ARGUMENTS_DIFFER),  # right name, missing arguments
]


@pytest.mark.parametrize(("track", "output", "kind"), FAILURE_KINDS)
def test_failure_kind(track, output, kind):
    gold = GOLD_STRUCTURED if track == "structured" else GOLD_TOOLCALL
    assert get_track(track).score(output, gold).failure is kind


@pytest.mark.parametrize(("track", "output", "kind"), FAILURE_KINDS)
def test_checks_failed_lists_exactly_the_false_flags(track, output, kind):
    gold = GOLD_STRUCTURED if track == "structured" else GOLD_TOOLCALL
    result = get_track(track).score(output, gold)
    assert result.checks_failed == tuple(name for name, ok in result.flags.items() if not ok)


# --- properties: key order and whitespace never change a verdict ------------------

SMALL_INTS = st.integers(min_value=-(2**53), max_value=2**53)
JSON_LEAVES = st.none() | st.booleans() | SMALL_INTS | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
ARGUMENTS = st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=5)
# a name the wire format can carry: no double quote
TOOL_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,15}", fullmatch=True)
# separators, indent: compact, Python's default, pretty with spaces, pretty with tabs
LAYOUTS = st.sampled_from([((",", ":"), None), ((", ", ": "), None), ((",", ": "), 2), ((" , ", " : "), "\t")])
PADDING = st.text(alphabet=" \t\r\n", max_size=3)
PROPERTY = settings(max_examples=200, deadline=None)


def shuffle_keys(value, rng: random.Random):
    """The same value with every object's keys in a random insertion order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: shuffle_keys(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [shuffle_keys(item, rng) for item in value]
    return value


def reserialise(value, rng: random.Random, layout, ascii_only: bool) -> str:
    separators, indent = layout
    return json.dumps(shuffle_keys(value, rng), separators=separators, indent=indent, ensure_ascii=ascii_only)


@PROPERTY
@given(ARGUMENTS, TOOL_NAMES, st.randoms(use_true_random=False), LAYOUTS, st.booleans(), PADDING, PADDING)
def test_layout_never_changes_structured_verdict(arguments, name, rng, layout, ascii_only, before, after):
    output = before + reserialise({"name": name, "arguments": arguments}, rng, layout, ascii_only) + after
    assert score_structured(output, format_structured_call(name, arguments)).flags == {"json_valid": True, "exact_match": True}


@PROPERTY
@given(JSON_VALUES, st.randoms(use_true_random=False), LAYOUTS, st.booleans())
def test_layout_never_changes_exact_match_of_any_json_value(value, rng, layout, ascii_only):
    # json_valid and exact_match are defined for any JSON value, not only call objects
    assert score_structured(reserialise(value, rng, layout, ascii_only), canonical_text(value)).flags["exact_match"] is True


@PROPERTY
@given(ARGUMENTS, TOOL_NAMES, st.randoms(use_true_random=False), LAYOUTS, st.booleans(), PADDING, PADDING)
def test_layout_never_changes_toolcall_verdict(arguments, name, rng, layout, ascii_only, before, after):
    body = before + reserialise(arguments, rng, layout, ascii_only) + after
    assert score_toolcall(call(body, name=name), format_tool_call(name, arguments)).flags == dict.fromkeys(TOOLCALL_CHECKS, True)


@PROPERTY
@given(ARGUMENTS, TOOL_NAMES, TOOL_NAMES, st.randoms(use_true_random=False), LAYOUTS)
def test_args_exact_never_depends_on_name(arguments, name, other_name, rng, layout):
    output = call(reserialise(arguments, rng, layout, False), name=other_name)
    assert score_toolcall(output, format_tool_call(name, arguments)).flags["args_exact"] is True


def change_one_leaf(value, path: list[int], as_float: bool):
    """`value` with one leaf changed; `path` picks the leaf (indices wrap around)."""
    if isinstance(value, dict) and value:
        keys = sorted(value)
        key = keys[path[0] % len(keys)] if path else keys[0]
        return {**value, key: change_one_leaf(value[key], path[1:], as_float)}
    if isinstance(value, list) and value:
        index = path[0] % len(value) if path else 0
        return value[:index] + [change_one_leaf(value[index], path[1:], as_float)] + value[index + 1 :]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        # the trap: Python says x == float(x), canonical JSON must not
        return float(value) if as_float else value + 1
    if isinstance(value, float):
        # past 2**53 adding one changes nothing; a sign flip always does (0.0 never gets here)
        return value + 1 if value + 1 != value else -value
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 0
    # an empty list or object: give it one element
    return [None] if isinstance(value, list) else {"": None}


@PROPERTY
@given(
    ARGUMENTS,
    TOOL_NAMES,
    st.lists(st.integers(min_value=0, max_value=10), max_size=6),
    st.booleans(),
    st.randoms(use_true_random=False),
    LAYOUTS,
)
def test_changed_value_breaks_exact_match(arguments, name, path, as_float, rng, layout):
    changed = change_one_leaf(arguments, path, as_float)
    output = reserialise({"name": name, "arguments": changed}, rng, layout, False)
    assert score_structured(output, format_structured_call(name, arguments)).flags["exact_match"] is False


@PROPERTY
@given(
    ARGUMENTS,
    TOOL_NAMES,
    st.lists(st.integers(min_value=0, max_value=10), max_size=6),
    st.booleans(),
    st.randoms(use_true_random=False),
    LAYOUTS,
)
def test_changed_value_breaks_args_exact(arguments, name, path, as_float, rng, layout):
    changed = change_one_leaf(arguments, path, as_float)
    output = call(reserialise(changed, rng, layout, False), name=name)
    assert score_toolcall(output, format_tool_call(name, arguments)).flags["args_exact"] is False


@PROPERTY
@given(SMALL_INTS, ARGUMENTS, TOOL_NAMES)
def test_int_never_equals_its_float(number, arguments, name):
    gold_args = {**arguments, "n": number}
    output = call(json.dumps({**arguments, "n": float(number)}), name=name)
    assert score_toolcall(output, format_tool_call(name, gold_args)).flags["args_exact"] is False
