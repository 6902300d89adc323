"""Pure scoring: a model output and a gold completion in, a RowResult out.

No I/O, no clock, no model name. Equality is byte equality of canonical JSON, so
key order and whitespace never change a verdict, and `1` never equals `1.0`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from slm_swap.formats.jsontext import StrictJSONError, canonical_bytes, parse_strict_json
from slm_swap.formats.toolcall import count_tool_call_openings, find_tool_calls
from slm_swap.scoring.outcomes import FailureKind

STRUCTURED_CHECKS = ("json_valid", "exact_match")
TOOLCALL_CHECKS = ("valid_call", "name_match", "args_exact")

_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class RowResult:
    track: str
    flags: dict[str, bool]
    failure: FailureKind | None
    detail: str = ""
    checks_failed: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.failure is None


def _result(track: str, flags: dict[str, bool], failure: FailureKind | None, detail: str) -> RowResult:
    return RowResult(track, flags, failure, detail, tuple(name for name, ok in flags.items() if not ok))


def _try_parse(text: str) -> tuple[bool, Any]:
    try:
        return True, parse_strict_json(text)
    except StrictJSONError:
        return False, None


def _diagnose_invalid_json(stripped: str) -> FailureKind:
    """Name the most common ways a reply misses pure JSON, for the failure counts."""
    if not stripped:
        return FailureKind.EMPTY_OUTPUT
    fenced = _FENCE.match(stripped)
    if fenced and _try_parse(fenced.group(1))[0]:
        return FailureKind.CODE_FENCE
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end and _try_parse(stripped[start : end + 1])[0]:
        return FailureKind.TEXT_AROUND_JSON
    return FailureKind.INVALID_JSON


def score_structured(output: str | None, gold: str) -> RowResult:
    """`json_valid`: one strict JSON value; `exact_match`: canonically equal to gold."""
    if output is None:
        return _result("structured", dict.fromkeys(STRUCTURED_CHECKS, False), FailureKind.MODEL_ERROR, "model call failed")
    stripped = output.strip()
    valid, value = _try_parse(stripped)
    if not valid:
        kind = _diagnose_invalid_json(stripped)
        return _result("structured", {"json_valid": False, "exact_match": False}, kind, "output is not one strict JSON value")
    expected = parse_strict_json(gold)
    exact = canonical_bytes(value) == canonical_bytes(expected)
    if exact:
        return _result("structured", {"json_valid": True, "exact_match": True}, None, "")
    if not (isinstance(value, dict) and set(value) == {"name", "arguments"}):
        kind, detail = FailureKind.NOT_A_CALL_OBJECT, 'output is JSON but not {"name": ..., "arguments": {...}}'
    elif value["name"] != expected["name"]:
        kind, detail = FailureKind.WRONG_NAME, f"name {value['name']!r} != {expected['name']!r}"
    else:
        kind, detail = FailureKind.ARGUMENTS_DIFFER, "arguments differ from gold"
    return _result("structured", {"json_valid": True, "exact_match": False}, kind, detail)


def score_toolcall(output: str | None, gold: str) -> RowResult:
    """`valid_call`, `name_match`, `args_exact` for one `<tool_call>` reply."""
    checks = dict.fromkeys(TOOLCALL_CHECKS, False)
    if output is None:
        return _result("toolcall", checks, FailureKind.MODEL_ERROR, "model call failed")
    (gold_call,) = find_tool_calls(gold)
    gold_args = parse_strict_json(gold_call.body)
    calls = find_tool_calls(output)
    openings = count_tool_call_openings(output)
    if not calls:
        kind = FailureKind.EMPTY_OUTPUT if not output.strip() else FailureKind.NO_TOOL_CALL
        return _result("toolcall", checks, kind, 'no complete <tool_call name="...">...</tool_call> element')
    if len(calls) > 1 or openings > 1:
        return _result("toolcall", checks, FailureKind.MULTIPLE_TOOL_CALLS, f"{max(len(calls), openings)} tool calls, expected one")
    call = calls[0]
    checks["name_match"] = call.name == gold_call.name
    valid, args = _try_parse(call.body.strip())
    checks["valid_call"] = valid
    checks["args_exact"] = valid and canonical_bytes(args) == canonical_bytes(gold_args)
    if not valid:
        return _result("toolcall", checks, FailureKind.INVALID_ARGUMENTS_JSON, "tool call body is not strict JSON")
    if not checks["name_match"]:
        return _result("toolcall", checks, FailureKind.WRONG_NAME, f"name {call.name!r} != {gold_call.name!r}")
    if not checks["args_exact"]:
        return _result("toolcall", checks, FailureKind.ARGUMENTS_DIFFER, "arguments differ from gold")
    return _result("toolcall", checks, None, "")
