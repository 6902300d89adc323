"""All prompt text and the one function that turns a row into chat messages.

The instruction templates live in `prompts.json` beside this module so that the
TypeScript client reads the very same text. Placeholders are `{user_text}` and
`{tools}`, substituted in one pass so that braces inside user text or JSON are
never mistaken for placeholders.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

PROMPTS_FILE = Path(__file__).with_name("prompts.json")
TRACKS = ("structured", "toolcall")
_PLACEHOLDER = re.compile(r"\{(user_text|tools)\}")


@lru_cache(maxsize=1)
def load_templates() -> dict[str, str]:
    data = json.loads(PROMPTS_FILE.read_text(encoding="utf-8"))
    return {track: data[track]["template"] for track in TRACKS}


def render_tools(tools: list[dict[str, Any]]) -> str:
    """One compact JSON line per tool, the form `JSON.stringify` also produces."""
    return "\n".join(json.dumps(tool, ensure_ascii=False, separators=(",", ":")) for tool in tools)


def build_prompt(track: str, user_text: str, tools: list[dict[str, Any]]) -> str:
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; expected one of {TRACKS}")
    values = {"user_text": user_text, "tools": render_tools(tools)}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], load_templates()[track])


def build_messages(prompt: str) -> list[dict[str, str]]:
    """The chat messages every caller sends: hosted model, SLM, fine-tuning, Mastra."""
    return [{"role": "user", "content": prompt}]
