"""All prompt text and the one function that turns a row into chat messages.

The instruction templates live in `prompts.json` beside this module so that the
TypeScript client reads the very same text. Placeholders are `{user_text}` and
`{tools}`, substituted in one pass so that braces inside user text or JSON are
never mistaken for placeholders. The agent track's texts (system prompt per arm,
tools as Python stubs or JSON, observations, the gold policy's label) are at the end,
with their text in `agent_prompts.json`.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from slm_swap.tracks.rows.definitions import TRACK_NAMES, get_track

PROMPTS_FILE = Path(__file__).with_name("prompts.json")
AGENT_PROMPTS_FILE = Path(__file__).with_name("agent_prompts.json")
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


def offered_tools(track: str, prompt: str) -> list[dict[str, Any]]:
    """The tool signatures a row's prompt offers, read back from the text `build_prompt` wrote.

    Each tool is one compact JSON line (a JSON string never holds a raw line break), and the template's text after
    `{tools}` begins with a blank line, so the block ends at the first one. ValueError when the prompt is not the
    track's template or a tool line is not a JSON object."""
    template = load_templates()[get_track(track).name]
    head, rest = template.split("{tools}", 1)
    after = rest.split("{user_text}", 1)[0]
    if not prompt.startswith(head) or after not in prompt[len(head) :]:
        raise ValueError(f"the prompt is not the {track} track's template")
    tools = []
    for line in prompt[len(head) :].split(after, 1)[0].split("\n"):
        tool = json.loads(line)
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ValueError(f"an offered tool is not an object with a name: {line[:80]}")
        tools.append(tool)
    return tools


def build_messages(prompt: str) -> list[dict[str, str]]:
    """The chat messages every caller sends: hosted model, SLM, fine-tuning, Mastra."""
    return [{"role": "user", "content": prompt}]


# ---- the agent track: one system prompt per action format ("arm"), the tools in that arm's form,
# the observation that answers each action, and the gold policy's labelled text. Its texts live in their
# own file, `agent_prompts.json`: the v0 datasets' manifests hash `prompts.json`, and a new track's text
# is no change to the rows they were built from.

AGENT_ARMS = ("codeact", "toolcall")
_AGENT_PLACEHOLDER = re.compile(r"\{(tools|observation|value|kind|detail)\}")
# BFCL's parameter types -> Python annotations for codeact's stubs
_PYTHON_TYPES = {"string": "str", "integer": "int", "float": "float", "boolean": "bool", "array": "list", "tuple": "list", "dict": "dict"}


@lru_cache(maxsize=1)
def load_agent_texts() -> dict[str, str]:
    return json.loads(AGENT_PROMPTS_FILE.read_text(encoding="utf-8"))


def _fill(template: str, **values: str) -> str:
    return _AGENT_PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def check_arm(arm: str) -> str:
    if arm not in AGENT_ARMS:
        raise ValueError(f"unknown arm {arm!r}; expected one of {', '.join(AGENT_ARMS)}")
    return arm


def render_python_stub(doc: dict[str, Any]) -> str:
    """A function doc as a Python stub: signature with annotations and defaults, docstring with args and returns."""
    properties = doc["parameters"].get("properties", {})
    required = set(doc["parameters"].get("required", []))
    params, arg_lines = [], []
    for name, spec in properties.items():
        annotation = _PYTHON_TYPES.get(spec.get("type"), "Any")
        default = "" if name in required else f" = {spec['default']!r}" if "default" in spec else " = None"
        params.append(f"{name}: {annotation}{default}")
        arg_lines.append(f"        {name} ({annotation}): {spec.get('description', '').strip()}")
    returns = [
        f"        {name} ({_PYTHON_TYPES.get(spec.get('type'), 'Any')}): {spec.get('description', '').strip()}"
        for name, spec in doc.get("response", {}).get("properties", {}).items()
    ]
    lines = [f"def {doc['name']}({', '.join(params)}) -> dict:", f'    """{doc.get("description", "").strip()}']
    if arg_lines:
        lines += ["", "    Args:", *arg_lines]
    if returns:
        lines += ["", "    Returns:", *returns]
    return "\n".join([*lines, '    """'])


def render_agent_tools(arm: str, docs: list[dict[str, Any]]) -> str:
    """codeact: Python stubs; toolcall: one compact JSON line per tool (name, description, parameters)."""
    if check_arm(arm) == "codeact":
        return "\n\n".join(render_python_stub(doc) for doc in docs)
    return render_tools([{key: doc[key] for key in ("name", "description", "parameters") if key in doc} for doc in docs])


def agent_system_prompt(arm: str, docs: list[dict[str, Any]]) -> str:
    return _fill(load_agent_texts()[check_arm(arm)], tools=render_agent_tools(arm, docs))


def agent_more_tools_message(arm: str, docs: list[dict[str, Any]]) -> str:
    """The user message of a turn that only adds held-out tools (BFCL's own words, plus the new tools)."""
    return _fill(load_agent_texts()["more_tools"], tools=render_agent_tools(arm, docs))


def agent_observation(results: list[str], printed: str, returned: str | None, failure: str | None, detail: str) -> str:
    """What the next message says about an executed action: its output (printed text, each call's result
    for toolcall, the last expression's value for codeact), then its error if any."""
    texts = load_agent_texts()
    parts = [text for text in (printed.rstrip(), *results) if text]
    if returned is not None:
        parts.append(_fill(texts["returned"], value=returned))
    if failure is not None:
        parts.append(_fill(texts["error"], kind=failure, detail=detail))
    return _fill(texts["observation"], observation="\n".join(parts) or texts["no_output"])


def observation_marker() -> str:
    """The first line every observation message starts with ("Observation:"): text only the environment writes."""
    return load_agent_texts()["observation"].split("{observation}")[0].splitlines()[0]


def gold_text(action: str | None) -> str:
    """The gold policy's reply: the labelled thought and the action, or the labelled final answer."""
    texts = load_agent_texts()
    return texts["gold_final"] if action is None else f"{texts['gold_thought']}\n{action}"
