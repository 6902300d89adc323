"""The gold policy: each step, the next ground-truth calls of the current turn, then a final answer.

Never a model: every reply carries the fixed label of `prompts.gold_text`. One call per step; a turn
with more ground-truth calls than `max_steps_per_turn - 1` steps can hold (two turns of 34 calls in
BFCL) puts several calls in a step, so the last step of the turn is still free for the answer. A step's
calls are written as Python calls (codeact, from the parsed values, as `render_call` writes them for
BFCL's checker) or as `<tool_call>` elements (toolcall).
"""

from __future__ import annotations

import math

from slm_swap.formats.toolcall import format_tool_call
from slm_swap.prompts import check_arm, gold_text
from slm_swap.tracks.agent.data.bfcl_multi_turn import GroundTruthCall
from slm_swap.tracks.agent.episodes.environments import RecordedCall, render_call
from slm_swap.tracks.agent.episodes.episode import Policy, PolicyReply, PolicyRequest


def gold_steps(calls: list[GroundTruthCall], max_steps_per_turn: int) -> list[list[GroundTruthCall]]:
    """The turn's calls cut into consecutive steps, one each when they fit, leaving one step for the answer."""
    if not calls:
        return []
    per_step = max(1, math.ceil(len(calls) / max(1, max_steps_per_turn - 1)))
    return [calls[i : i + per_step] for i in range(0, len(calls), per_step)]


def render_action(arm: str, calls: list[GroundTruthCall]) -> str:
    if check_arm(arm) == "codeact":
        return "```python\n" + "\n".join(render_call(RecordedCall(c.name, c.arguments)) for c in calls) + "\n```"
    return "\n".join(format_tool_call(c.name, c.arguments) for c in calls)


def gold_reply(arm: str, request: PolicyRequest, max_steps_per_turn: int) -> PolicyReply:
    steps = gold_steps(request.task.ground_truth[request.turn], max_steps_per_turn)
    action = render_action(arm, steps[request.step]) if request.step < len(steps) else None
    return PolicyReply(gold_text(action))


def gold_policy(arm: str, max_steps_per_turn: int) -> Policy:
    check_arm(arm)

    def policy(requests: list[PolicyRequest]) -> list[PolicyReply]:
        return [gold_reply(arm, request, max_steps_per_turn) for request in requests]

    return policy
