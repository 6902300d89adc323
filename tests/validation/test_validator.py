"""The validator: each rule accepts a right output and rejects one that breaks only that rule; gold completions of
the committed test splits pass (the one exception is BFCL's own ground truth, pinned below); the output is never changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.data.rows import load_rows
from slm_swap.prompts import build_prompt, offered_tools
from slm_swap.tracks.rows.definitions import TRACK_NAMES
from slm_swap.validation.validator import Rejection, validate, validate_prompt_answer

REPO = Path(__file__).resolve().parents[2]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "dict",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "ratio": {"type": "float"},
            "metric": {"type": "boolean"},
            "unit": {"type": "string", "enum": ["C", "F"]},
            "hours": {"type": "array", "items": {"type": "integer"}},
            "fields": {"type": "array", "items": {"type": "string"}, "enum": ["wind", "rain"]},
            "where": {"type": "dict", "properties": {"lat": {"type": "float"}}, "required": ["lat"]},
            "extra": {"type": "any"},
        },
        "required": ["city"],
    },
}
TOOLS = [WEATHER, {"name": "get_time", "parameters": {"type": "dict", "properties": {}, "required": []}}]


def structured(name: str, arguments: object) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def toolcall(name: str, arguments: object) -> str:
    return f'<tool_call name="{name}">{json.dumps(arguments)}</tool_call>'


# (what it probes, arguments, expected rejection or None), checked in both tracks' formats
ARGUMENT_CASES = [
    ("only the required parameter", {"city": "Paris"}, None),
    ("every parameter of its type", {"city": "P", "days": 2, "ratio": 0.5, "metric": True, "unit": "C", "hours": [1]}, None),
    ("an integer is a number for a float parameter", {"city": "P", "ratio": 1}, None),
    ("an array's items each from its enum", {"city": "P", "fields": ["wind", "rain"]}, None),
    ("a nested object with its required key", {"city": "P", "where": {"lat": 1.5}}, None),
    ("a value of type any takes anything", {"city": "P", "extra": [None, {"a": 1}]}, None),
    ("the required parameter left out", {"days": 2}, Rejection.MISSING_REQUIRED),
    ("a parameter the signature does not have", {"city": "P", "country": "FR"}, Rejection.UNKNOWN_PARAMETER),
    ("a string for an integer", {"city": "P", "days": "2"}, Rejection.WRONG_TYPE),
    ("true is no integer, though Python calls bool an int", {"city": "P", "days": True}, Rejection.WRONG_TYPE),
    ("a float for an integer", {"city": "P", "days": 2.0}, Rejection.WRONG_TYPE),
    ("a number for a string", {"city": 7}, Rejection.WRONG_TYPE),
    ("a string for a boolean", {"city": "P", "metric": "true"}, Rejection.WRONG_TYPE),
    ("an object for an array", {"city": "P", "hours": {"a": 1}}, Rejection.WRONG_TYPE),
    ("null for a string", {"city": None}, Rejection.WRONG_TYPE),
    ("an array item of the wrong type", {"city": "P", "hours": [1, "2"]}, Rejection.WRONG_TYPE),
    ("a value outside the enum", {"city": "P", "unit": "K"}, Rejection.NOT_IN_ENUM),
    ("case matters in an enum", {"city": "P", "unit": "c"}, Rejection.NOT_IN_ENUM),
    ("an array item outside the array's enum", {"city": "P", "fields": ["wind", "snow"]}, Rejection.NOT_IN_ENUM),
    ("a nested object missing its required key", {"city": "P", "where": {}}, Rejection.MISSING_REQUIRED),
    ("a nested object with an unknown key", {"city": "P", "where": {"lat": 1.0, "lon": 2.0}}, Rejection.UNKNOWN_PARAMETER),
]


@pytest.mark.parametrize("render", [structured, toolcall], ids=TRACK_NAMES)
@pytest.mark.parametrize(("probe", "arguments", "expected"), ARGUMENT_CASES, ids=[case[0] for case in ARGUMENT_CASES])
def test_argument_rules(render, probe, arguments, expected):
    track = "structured" if render is structured else "toolcall"
    assert validate(track, render("get_weather", arguments), TOOLS).rejection == expected


# (what it probes, track, output, expected rejection or None)
FORMAT_CASES = [
    ("structured: surrounding whitespace, as the scorer strips it", "structured", ' \n{"name": "get_time", "arguments": {}}\n', None),
    ("structured: prose before the JSON", "structured", 'Sure: {"name": "get_time", "arguments": {}}', Rejection.NOT_JSON),
    ("structured: a code fence", "structured", '```json\n{"name": "get_time", "arguments": {}}\n```', Rejection.NOT_JSON),
    ("structured: a duplicate key", "structured", '{"name": "get_time", "name": "x", "arguments": {}}', Rejection.NOT_JSON),
    ("structured: JSON but not a call", "structured", '{"function": "get_time"}', Rejection.NOT_A_CALL_OBJECT),
    ("structured: an extra key", "structured", '{"name": "get_time", "arguments": {}, "id": 1}', Rejection.NOT_A_CALL_OBJECT),
    ("structured: arguments not an object", "structured", '{"name": "get_time", "arguments": []}', Rejection.ARGUMENTS_NOT_OBJECT),
    ("structured: a function not offered", "structured", '{"name": "get_date", "arguments": {}}', Rejection.UNKNOWN_FUNCTION),
    ("toolcall: text around the element, as valid_call allows", "toolcall", 'Here: <tool_call name="get_time">{}</tool_call>', None),
    ("toolcall: no element", "toolcall", "get_time()", Rejection.NO_TOOL_CALL),
    ("toolcall: an unclosed element", "toolcall", '<tool_call name="get_time">{}', Rejection.NO_TOOL_CALL),
    ("toolcall: two elements", "toolcall", '<tool_call name="get_time">{}</tool_call>' * 2, Rejection.MULTIPLE_TOOL_CALLS),
    (
        "toolcall: a dangling second opening",
        "toolcall",
        '<tool_call name="get_time">{}</tool_call><tool_call',
        Rejection.MULTIPLE_TOOL_CALLS,
    ),
    ("toolcall: a body that is not JSON", "toolcall", '<tool_call name="get_time">{city: 1}</tool_call>', Rejection.NOT_JSON),
    ("toolcall: NaN in the body", "toolcall", '<tool_call name="get_weather">{"city": "P", "ratio": NaN}</tool_call>', Rejection.NOT_JSON),
    ("toolcall: a body that is not an object", "toolcall", '<tool_call name="get_time">[]</tool_call>', Rejection.ARGUMENTS_NOT_OBJECT),
    ("toolcall: a function not offered", "toolcall", '<tool_call name="get_date">{}</tool_call>', Rejection.UNKNOWN_FUNCTION),
    ("no output at all (the call failed)", "toolcall", None, Rejection.NO_OUTPUT),
]


@pytest.mark.parametrize(("probe", "track", "output", "expected"), FORMAT_CASES, ids=[case[0] for case in FORMAT_CASES])
def test_format_rules(probe, track, output, expected):
    assert validate(track, output, TOOLS).rejection == expected


def test_a_rejection_names_its_rule_and_what_broke_it():
    assert validate("toolcall", toolcall("get_weather", {"city": "P", "unit": "K"}), TOOLS).reason == (
        "not_in_enum: 'unit' is 'K', not one of ['C', 'F']"
    )
    assert validate("structured", structured("get_weather", {}), TOOLS).reason == "missing_required: required parameter 'city' is missing"
    assert validate("structured", structured("get_time", {}), TOOLS).reason == "accepted"


def test_the_offered_tools_are_read_back_from_the_prompt_exactly():
    for track in TRACK_NAMES:
        prompt = build_prompt(track, "Weather in Paris?\n\nTools:\nnot a tool", TOOLS)
        assert offered_tools(track, prompt) == TOOLS


def test_a_prompt_of_another_template_is_refused():
    with pytest.raises(ValueError, match="the prompt is not the toolcall track's template"):
        offered_tools("toolcall", build_prompt("structured", "hi", TOOLS))


@pytest.mark.parametrize("split", ["test", "val", "train"])
@pytest.mark.parametrize("track", TRACK_NAMES)
def test_gold_completions_of_the_committed_splits_are_all_accepted(track, split):
    """prepare_data drops a source example whose gold breaks its own signature (BFCL's live_multiple_507-149-4 leaves
    out the `origin_airport` its signature requires), so the validator accepts every committed gold completion."""
    rows = load_rows(REPO / "slm_swap" / "02_dataset" / track / f"{split}.jsonl", track)
    rejected = {row.id: validate_prompt_answer(track, row.prompt, row.completion).reason for row in rows}
    assert len(rows) == {"test": 200, "val": 100, "train": 1000}[split]
    assert {row_id: reason for row_id, reason in rejected.items() if reason != "accepted"} == {}
