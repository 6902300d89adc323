"""Reading the action out of an assistant reply, per arm, and the tools as each arm shows them."""

from __future__ import annotations

import pytest

from slm_swap.prompts import agent_system_prompt, render_python_stub
from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.episodes.actions import Action, parse_action
from slm_swap.tracks.agent.episodes.environments import is_json_value


@pytest.mark.parametrize(
    ("arm", "text", "expected"),
    [
        # no element or block: the reply is the turn's answer
        ("toolcall", "All done.", None),
        ("codeact", "All done, no code needed.", None),
        # a code fence of another language is not an action
        ("codeact", "```json\n{}\n```", None),
        # several elements in one step, in order
        (
            "toolcall",
            'First <tool_call name="cd">{"folder": "a"}</tool_call> then <tool_call name="ls">{}</tool_call>',
            Action(calls=[{"name": "cd", "arguments": {"folder": "a"}}, {"name": "ls", "arguments": {}}]),
        ),
        # an unclosed second element is not silently dropped
        ("toolcall", '<tool_call name="ls">{}</tool_call><tool_call name="cd">{', Action(failure=AgentFailure.MALFORMED_ACTION)),
        ("toolcall", '<tool_call name="cd">{folder: "a"}</tool_call>', Action(failure=AgentFailure.INVALID_ARGUMENTS_JSON)),
        ("toolcall", '<tool_call name="cd">["a"]</tool_call>', Action(failure=AgentFailure.INVALID_ARGUMENTS_JSON)),
        # NaN is no JSON value: it could not be written back for the checker
        ("toolcall", '<tool_call name="add">{"a": NaN}</tool_call>', Action(failure=AgentFailure.INVALID_ARGUMENTS_JSON)),
        ("codeact", "Let me look.\n```python\nprint(ls())\n```", Action(code="print(ls())")),
        # two blocks run as one program, in order
        ("codeact", "```python\nx = 1\n```\nand\n```py\nprint(x)\n```", Action(code="x = 1\n\nprint(x)")),
        ("codeact", "```python\nprint(ls())", Action(failure=AgentFailure.MALFORMED_ACTION)),
    ],
)
def test_parse_action(arm: str, text: str, expected: Action | None) -> None:
    action = parse_action(arm, text)
    if expected is None or expected.failure is None:
        assert action == expected
    else:
        assert action is not None and action.failure == expected.failure


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, 2.5, None, True, "x"]}, True),
        ((1, 2), False),  # a tuple reads back as a list: not what was passed
        ({1: "a"}, False),  # JSON keys are strings
        (float("inf"), False),
        ({"s"}, False),
        (b"bytes", False),
    ],
)
def test_only_json_values_are_accepted_as_arguments(value, expected: bool) -> None:
    assert is_json_value(value) is expected


def test_codeact_shows_python_stubs_and_toolcall_json_schemas() -> None:
    doc = {
        "name": "post_tweet",
        "description": "Post a tweet.",
        "parameters": {
            "type": "dict",
            "properties": {
                "content": {"type": "string", "description": "Text."},
                "tags": {"type": "array", "description": "Tags.", "default": []},
            },
            "required": ["content"],
        },
        "response": {"type": "dict", "properties": {"id": {"type": "integer", "description": "Tweet id."}}},
    }
    stub = render_python_stub(doc)
    assert stub.splitlines()[0] == "def post_tweet(content: str, tags: list = []) -> dict:"
    assert "        id (int): Tweet id." in stub
    compile(stub, "<stub>", "exec")  # a stub is valid Python
    toolcall = agent_system_prompt("toolcall", [doc])
    assert '{"name":"post_tweet","description":"Post a tweet.","parameters":' in toolcall and "response" not in toolcall
    with pytest.raises(ValueError, match="unknown arm 'json'"):
        agent_system_prompt("json", [doc])
