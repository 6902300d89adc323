"""The validator per row track: accept or reject one output against the signatures its request offered.

    validate("toolcall", '<tool_call name="get_weather">{"city": "Paris"}</tool_call>', tools)

The format is the track's, as its scorer reads a valid answer: structured, the stripped output is one strict JSON
object `{"name": <string>, "arguments": {...}}` and nothing else; toolcall, exactly one
`<tool_call name="X">BODY</tool_call>` element (one opening tag, closed; text around it allowed, as the scorer's
`valid_call` allows it) whose BODY is a strict JSON object. Then the call: its name is an offered function, and its
arguments fit that function's parameters (`signatures.argument_problem`). Pure: no I/O, and the output is never
changed; a rejection names its rule (`Rejection`) and says what broke it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slm_swap.formats.jsontext import StrictJSONError, parse_strict_json
from slm_swap.formats.toolcall import count_tool_call_openings, find_tool_calls
from slm_swap.prompts import offered_tools
from slm_swap.tracks.rows.definitions import get_track
from slm_swap.validation.signatures import argument_problem


class Rejection(str, enum.Enum):
    """Why the validator rejected an output: one rule each, counted by the router."""

    NO_OUTPUT = "no_output"  # the model call failed: nothing to serve
    NOT_JSON = "not_json"
    NOT_A_CALL_OBJECT = "not_a_call_object"
    NO_TOOL_CALL = "no_tool_call"
    MULTIPLE_TOOL_CALLS = "multiple_tool_calls"
    ARGUMENTS_NOT_OBJECT = "arguments_not_object"
    UNKNOWN_FUNCTION = "unknown_function"
    MISSING_REQUIRED = "missing_required"
    UNKNOWN_PARAMETER = "unknown_parameter"
    WRONG_TYPE = "wrong_type"
    NOT_IN_ENUM = "not_in_enum"


@dataclass(frozen=True)
class Validation:
    """The validator's answer. `rejection` is None exactly when the output is accepted."""

    rejection: Rejection | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.rejection is None

    @property
    def route(self) -> str:
        """Where an SLM-first router sends the request: the SLM's answer stands when accepted, else the hosted model."""
        return "slm" if self.accepted else "hosted"

    @property
    def reason(self) -> str:
        """One line: `accepted`, or `<rule>: <what broke it>`."""
        return "accepted" if self.rejection is None else f"{self.rejection.value}: {self.detail}"


ACCEPTED = Validation()


def read_structured(output: str) -> tuple[str, Any] | Validation:
    try:
        value = parse_strict_json(output.strip())
    except StrictJSONError as exc:
        return Validation(Rejection.NOT_JSON, f"the output is not one strict JSON value ({exc})")
    if not (isinstance(value, dict) and set(value) == {"name", "arguments"} and isinstance(value["name"], str)):
        return Validation(Rejection.NOT_A_CALL_OBJECT, 'the output is not {"name": <string>, "arguments": {...}}')
    return value["name"], value["arguments"]


def read_toolcall(output: str) -> tuple[str, Any] | Validation:
    calls, openings = find_tool_calls(output), count_tool_call_openings(output)
    if not calls:
        return Validation(Rejection.NO_TOOL_CALL, 'no complete <tool_call name="...">...</tool_call> element')
    if len(calls) > 1 or openings > 1:
        return Validation(Rejection.MULTIPLE_TOOL_CALLS, f"{max(len(calls), openings)} tool calls, expected one")
    try:
        arguments = parse_strict_json(calls[0].body)
    except StrictJSONError as exc:
        return Validation(Rejection.NOT_JSON, f"the tool call's body is not strict JSON ({exc})")
    return calls[0].name, arguments


READERS = {"structured": read_structured, "toolcall": read_toolcall}


def validate(track: str, output: str | None, tools: Sequence[Mapping[str, Any]]) -> Validation:
    """Accept `output` when it is one call, in the track's format, of an offered tool with fitting arguments."""
    if output is None:
        return Validation(Rejection.NO_OUTPUT, "the model call failed")
    read = READERS[get_track(track).name](output)
    if isinstance(read, Validation):
        return read
    name, arguments = read
    if not isinstance(arguments, dict):
        return Validation(Rejection.ARGUMENTS_NOT_OBJECT, "the arguments are not a JSON object")
    offered = {str(tool.get("name")): tool for tool in tools}
    if name not in offered:
        return Validation(Rejection.UNKNOWN_FUNCTION, f"{name!r} is not an offered function ({', '.join(sorted(offered))})")
    schema = offered[name].get("parameters")
    found = argument_problem(arguments, schema) if isinstance(schema, Mapping) else None
    return ACCEPTED if found is None else Validation(Rejection(found[0]), found[1])


def validate_prompt_answer(track: str, prompt: str, output: str | None) -> Validation:
    """`validate` against the tools a row's prompt offers (`prompts.offered_tools`)."""
    return validate(track, output, offered_tools(track, prompt))
