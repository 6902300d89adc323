"""The result pipe between a sandbox worker and its parent is a protocol, not trust.

Every request carries an id; a reply must be one JSON line (no NaN or infinity) under `MAX_REPLY_BYTES` that
repeats that id and has exactly the shape of its request's reply. A step's reply may name only tools offered in
that step, with JSON arguments keyed by plain parameter names (`environments.checked_call`), results and output as
text, and a failure kind a step can have. Anything else raises `WorkerGone`: the parent kills the worker and the
step is a `sandbox_error` (`sandbox_failure`).
"""

from __future__ import annotations

import json
from typing import Any

from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.episodes.environments import CallRefused, checked_call

MAX_REPLY_BYTES = 32 * 1024 * 1024  # one reply line; a legitimate one cuts what it prints well below this
STEP_KEYS = {"id", "calls", "results", "printed", "returned", "failure", "detail"}
# what a worker may say a step's action ended with
STEP_FAILURES = {
    kind.value
    for kind in (
        AgentFailure.CODE_SYNTAX_ERROR,
        AgentFailure.UNKNOWN_TOOL,
        AgentFailure.BAD_ARGUMENTS,
        AgentFailure.TOOL_ERROR,
        AgentFailure.CODE_ERROR,
        AgentFailure.SANDBOX_ERROR,
    )
}


class WorkerGone(Exception):
    """The worker sent no reply in time, died, or broke the protocol (and was killed)."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_reply(line: bytes, request_id: int) -> dict[str, Any]:
    """One reply line as a dict, or WorkerGone when it is not JSON, not an object, or answers another request."""
    try:
        reply = json.loads(line, parse_constant=_no_constants)
    except ValueError as exc:
        raise WorkerGone(f"protocol: a reply that is not JSON ({exc})") from None
    if not isinstance(reply, dict) or reply.get("id") != request_id:
        raise WorkerGone(f"protocol: a reply that does not answer request {request_id}")
    return reply


def checked_step(reply: dict[str, Any], offered: set[str]) -> dict[str, Any]:
    """A step's reply as the episode may use it; WorkerGone when any part is not what a step returns."""
    if set(reply) != STEP_KEYS:
        raise WorkerGone(f"protocol: a step reply with keys {sorted(reply)}")
    calls, results = reply["calls"], reply["results"]
    if not isinstance(calls, list) or not isinstance(results, list) or len(results) > len(calls):
        raise WorkerGone("protocol: calls and results must be lists, with no more results than calls")
    try:
        checked = [checked_call(call, offered).to_json() for call in calls]
    except CallRefused as refused:
        raise WorkerGone(f"protocol: a forged call ({refused})") from None
    if not all(isinstance(r, str) for r in results) or not isinstance(reply["printed"], str) or not isinstance(reply["detail"], str):
        raise WorkerGone("protocol: results, printed and detail must be text")
    if reply["returned"] is not None and not isinstance(reply["returned"], str):
        raise WorkerGone("protocol: returned must be text or null")
    if reply["failure"] is not None and reply["failure"] not in STEP_FAILURES:
        raise WorkerGone(f"protocol: unknown failure kind {str(reply['failure'])[:40]!r}")
    return {key: reply[key] for key in STEP_KEYS - {"id"}} | {"calls": checked}


def checked_isolation(reply: dict[str, Any]) -> dict[str, Any]:
    isolation = reply.get("isolation")
    if set(reply) != {"id", "ok", "isolation"} or reply["ok"] is not True or not isinstance(isolation, dict):
        raise WorkerGone("protocol: a start reply without its isolation")
    return json.loads(json.dumps(isolation))  # a plain copy; its values are only ever shown, never acted on


def sandbox_failure(detail: str) -> dict[str, Any]:
    return {"calls": [], "results": [], "printed": "", "returned": None, "failure": AgentFailure.SANDBOX_ERROR.value, "detail": detail}
