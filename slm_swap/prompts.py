"""All prompt text and the one function that turns a row into chat messages.

The instruction templates live in `prompts.json` beside this module so that the
TypeScript client reads the very same text. Placeholders are `{user_text}` and
`{tools}`, substituted in one pass so that braces inside user text or JSON are
never mistaken for placeholders.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from slm_swap.tracks import TRACK_NAMES, get_track

PROMPTS_FILE = Path(__file__).with_name("prompts.json")
_PLACEHOLDER = re.compile(r"\{(user_text|tools)\}")


@lru_cache(maxsize=1)
def load_templates() -> dict[str, str]:
    data = json.loads(PROMPTS_FILE.read_text(encoding="utf-8"))
    return {track: data[track]["template"] for track in TRACK_NAMES}


def js_number(value: float) -> str:
    """A float as JavaScript's Number#toString writes it, so both clients render `3.0` as `3`."""
    if value != value or value in (float("inf"), float("-inf")):
        return "null"  # what JSON.stringify writes for NaN and infinities
    if value == 0:
        return "0"
    if value < 0:
        return "-" + js_number(-value)
    _, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    k = len(digits)
    n = exponent + len(digit_tuple)  # value = 0.<digits> x 10^n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def js_key_order(item: tuple[Any, Any]) -> tuple[int, int]:
    """JavaScript objects list array-index keys ("0", "7", not "07") first, ascending, then the rest in order."""
    key = str(item[0])
    if key.isdigit() and (key == "0" or not key.startswith("0")) and int(key) < 2**32 - 1:
        return (0, int(key))
    return (1, 0)  # sorted() is stable: other keys keep their insertion order


def to_js_json(value: Any) -> str:
    """Compact JSON exactly as `JSON.stringify` writes it (numbers included)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, dict):
        items = sorted(value.items(), key=js_key_order)
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{to_js_json(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_js_json(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def render_tools(tools: list[dict[str, Any]]) -> str:
    """One compact JSON line per tool, byte for byte what `JSON.stringify` produces."""
    return "\n".join(to_js_json(tool) for tool in tools)


def build_prompt(track: str, user_text: str, tools: list[dict[str, Any]]) -> str:
    get_track(track)  # an unknown track is refused with the known ones named
    values = {"user_text": user_text, "tools": render_tools(tools)}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], load_templates()[track])


def build_messages(prompt: str) -> list[dict[str, str]]:
    """The chat messages every caller sends: hosted model, SLM, fine-tuning, Mastra."""
    return [{"role": "user", "content": prompt}]
