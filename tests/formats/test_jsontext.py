"""Strict JSON parsing and canonical encoding: the ground the scorers stand on."""

import pytest

from slm_swap.formats.jsontext import StrictJSONError, canonical_bytes, canonical_text, parse_strict_json

# (text, value it must parse to)
ACCEPTED = [
    ('{"a": 1}', {"a": 1}),  # an object, the usual case
    ("[1, 2]", [1, 2]),  # any JSON value is one value, not only objects
    ('"text"', "text"),  # a bare string is a JSON value (RFC 8259, not RFC 4627)
    ("null", None),  # a bare literal is a JSON value
    ("-0.5e-3", -0.0005),  # the full number grammar
    (' \t\r\n{"a": 1} \n', {"a": 1}),  # JSON whitespace around the value is allowed
    ('"\\u00e9\\ud83d\\ude00"', "é😀"),  # escapes, a surrogate pair included, decode to the characters
    ('{"a": {"a": 1}}', {"a": {"a": 1}}),  # the same key in two different objects is not a duplicate
]


@pytest.mark.parametrize(("text", "value"), ACCEPTED)
def test_strict_json_accepts_every_json_value(text, value):
    assert parse_strict_json(text) == value


REJECTED = [
    "",  # nothing is not a value
    "   ",  # whitespace alone is not a value
    "NaN",  # Python's json extension, not RFC 8259
    "Infinity",  # Python's json extension
    "-Infinity",  # Python's json extension, reached through the minus sign
    '{"a": NaN}',  # the extension nested inside an object
    "1e400",  # grammatical but Python reads it as inf, which has no canonical form
    '{"a": -1e999}',  # the same, negative and nested
    '"\\ud800"',  # a lone surrogate escape decodes to a string UTF-8 cannot encode
    "1" * 5000,  # past Python's int digit limit: a clear rejection, not a crash
    "[" * 100_000 + "]" * 100_000,  # nesting past the recursion limit: a rejection, not a RecursionError
    '{"a": 1} {"b": 2}',  # two values: trailing data
    '{"a": 1}x',  # trailing garbage right after the value
    "1 2",  # two numbers
    '```json\n{"a": 1}\n```',  # a markdown code fence around valid JSON
    'Here it is: {"a": 1}',  # prose before the value
    "{'a': 1}",  # single quotes are Python, not JSON
    '{"a": 1,}',  # trailing comma
    "[1, 2,]",  # trailing comma in an array
    '{"a": 1} // done',  # comments are not JSON
    "{a: 1}",  # unquoted key
    "01",  # leading zeros are not in the number grammar
    "+1",  # a leading plus is not in the number grammar
    ".5",  # a number must start with a digit
    "True",  # Python's spelling of true
    "None",  # Python's spelling of null
    '"a\tb"',  # a raw control character inside a string must be escaped
    '"\\x41"',  # \x is not a JSON escape
    '{"a": 1, "a": 1}',  # a duplicate key, even with the same value
    '{"a": {"b": 1, "b": 2}}',  # a duplicate key in a nested object
    '[{"k": 1, "k": 2}]',  # a duplicate key in an object inside an array
    "\ufeff{}",  # a byte-order mark is not whitespace
]


@pytest.mark.parametrize("text", REJECTED)
def test_non_strict_json_is_rejected(text):
    with pytest.raises(StrictJSONError):
        parse_strict_json(text)


def test_duplicate_keys_rejected_with_the_key_named():
    # a model repeating a key has no single meaning; the message must say which key
    with pytest.raises(StrictJSONError, match="'city'"):
        parse_strict_json('{"city": "Paris", "city": "Rome"}')


def test_strict_json_error_is_a_value_error():
    # callers that guard with `except ValueError` (e.g. row loading) still catch it
    assert issubclass(StrictJSONError, ValueError)


# (value a, value b, whether their canonical encodings are equal)
CANONICAL_CASES = [
    ({"b": 1, "a": 2}, {"a": 2, "b": 1}, True),  # key order is irrelevant
    ({"x": {"d": 1, "c": [{"f": 1, "e": 2}]}}, {"x": {"c": [{"e": 2, "f": 1}], "d": 1}}, True),  # nested key order too
    (1, 1.0, False),  # Python says 1 == 1.0; canonical JSON does not
    (True, 1, False),  # Python says True == 1; canonical JSON does not
    (False, 0, False),  # Python says False == 0
    (0, None, False),  # zero is not null
    ("1", 1, False),  # a quoted number is a string
    ([1, 2], [2, 1], False),  # array order matters
    ({"a": None}, {}, False),  # an explicit null is not a missing key
    (parse_strict_json('"\\u00e9"'), "é", True),  # an escape and the literal character are one string
    (parse_strict_json("1.0"), parse_strict_json("1.00"), True),  # two spellings of one float
    (parse_strict_json("1e2"), parse_strict_json("100"), False),  # 1e2 is a float, 100 an int
]


@pytest.mark.parametrize(("a", "b", "equal"), CANONICAL_CASES)
def test_canonical_equality(a, b, equal):
    assert (canonical_bytes(a) == canonical_bytes(b)) is equal


# (value, its canonical text)
CANONICAL_TEXT = [
    ({"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),  # sorted keys, no spaces
    ({"city": "Zürich"}, '{"city":"Zürich"}'),  # non-ASCII stays literal UTF-8, not \u escapes
    (1.0, "1.0"),  # a float keeps its point, so it never meets the int 1
    ({"é": 1, "z": 2, "a": 3}, '{"a":3,"z":2,"é":1}'),  # keys sort by code point
]


@pytest.mark.parametrize(("value", "text"), CANONICAL_TEXT)
def test_canonical_text_is_sorted_and_compact(value, text):
    assert canonical_text(value) == text


def test_canonical_bytes_are_utf8_of_canonical_text():
    value = {"city": "Zürich", "n": 1}
    assert canonical_bytes(value) == canonical_text(value).encode("utf-8")
