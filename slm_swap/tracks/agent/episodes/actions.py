"""The action in an assistant reply, per arm: `<tool_call>` elements (toolcall) or ```python blocks (codeact).

A reply with no action ends the turn: it is the agent's answer. A reply whose action cannot be read
(an unclosed element or block, a body that is not a JSON object) is an action that failed to parse:
it costs a step, and the observation says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from slm_swap.formats.jsontext import StrictJSONError, parse_strict_json
from slm_swap.formats.toolcall import count_tool_call_openings, find_tool_calls
from slm_swap.prompts import check_arm
from slm_swap.scoring.outcomes import AgentFailure

CODE_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.DOTALL)
CODE_OPENING = re.compile(r"```(?:python|py)\b")


@dataclass(frozen=True)
class Action:
    """What to execute: `code` (codeact) or `calls` (toolcall); or, when `failure` is set, why nothing can be."""

    code: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    failure: AgentFailure | None = None
    detail: str = ""


def parse_toolcall_action(text: str) -> Action | None:
    openings = count_tool_call_openings(text)
    if openings == 0:
        return None
    elements = find_tool_calls(text)
    if len(elements) != openings:
        return Action(failure=AgentFailure.MALFORMED_ACTION, detail=f"{openings} <tool_call openings but {len(elements)} complete elements")
    calls = []
    for element in elements:
        try:
            arguments = parse_strict_json(element.body)
        except StrictJSONError as exc:
            return Action(failure=AgentFailure.INVALID_ARGUMENTS_JSON, detail=f"{element.name}: arguments are not JSON ({exc})")
        if not isinstance(arguments, dict):
            return Action(failure=AgentFailure.INVALID_ARGUMENTS_JSON, detail=f"{element.name}: arguments are not a JSON object")
        calls.append({"name": element.name, "arguments": arguments})
    return Action(calls=calls)


def parse_codeact_action(text: str) -> Action | None:
    """All ```python blocks of the reply, joined in order, as smolagents' own parser joins them."""
    openings = len(CODE_OPENING.findall(text))
    if openings == 0:
        return None
    blocks = CODE_BLOCK.findall(text)
    if len(blocks) != openings:
        return Action(failure=AgentFailure.MALFORMED_ACTION, detail=f"{openings} ```python openings but {len(blocks)} closed blocks")
    return Action(code="\n\n".join(block.strip("\n") for block in blocks))


def parse_action(arm: str, text: str) -> Action | None:
    """The reply's action, or None when the reply is an answer without one."""
    return parse_codeact_action(text) if check_arm(arm) == "codeact" else parse_toolcall_action(text)
