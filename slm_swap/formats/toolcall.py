"""The tool-call wire format: `<tool_call name="X">{json args}</tool_call>`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slm_swap.formats.jsontext import canonical_text

TOOL_CALL_ELEMENT = re.compile(r'<tool_call name="([^"]*)">(.*?)</tool_call>', re.DOTALL)
TOOL_CALL_OPENING = re.compile(r"<tool_call\b")


@dataclass(frozen=True)
class ToolCallElement:
    name: str
    body: str


def find_tool_calls(text: str) -> list[ToolCallElement]:
    return [ToolCallElement(m.group(1), m.group(2)) for m in TOOL_CALL_ELEMENT.finditer(text)]


def count_tool_call_openings(text: str) -> int:
    """Opening tags, closed or not: a dangling second call is still a second call."""
    return len(TOOL_CALL_OPENING.findall(text))


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    if '"' in name:
        raise ValueError(f"tool name {name!r} contains a double quote")
    return f'<tool_call name="{name}">{canonical_text(arguments)}</tool_call>'


def format_structured_call(name: str, arguments: dict[str, Any]) -> str:
    return canonical_text({"name": name, "arguments": arguments})
