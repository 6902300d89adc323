"""The routed endpoint: an OpenAI-compatible `POST /v1/chat/completions` on 127.0.0.1 that asks the served SLM first,
validates its reply against the request's tools, and asks the hosted deployment when the validator rejects it
(`python tools/serve.py --track T --routed`).

The tools are the request's OpenAI `tools` (each `{"type": "function", "function": {...}}`) when it sends them, else
the signatures its one user message offers in the track's prompt (`prompts.offered_tools`), which is what the Mastra
client and the harness send; a request with neither is refused (400), since nothing could be validated. Both sides
are `HostedModel` clients (the SLM's is the local `transformers serve`), greedy with evaluation's output cap. The
reply is the chosen side's text, unchanged, with `slm_swap: {route, reason, validation_ms}` beside `choices`.
After the reply is sent, each request becomes one Langfuse trace `serve:routed:<track>` with one span carrying the
messages, the text, the route and the validator's reason; a trace Langfuse did not take is reported on stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slm_swap.backends.api import Answer
from slm_swap.prompts import offered_tools
from slm_swap.tracing.client import LangfuseSettings
from slm_swap.tracing.recorder import SpanTree, TraceTree, record_tree
from slm_swap.validation.validator import Validation, validate

Ask = Callable[[list[dict[str, str]]], Answer]  # one chat's reply: HostedModel.answer_messages


class RequestError(ValueError):
    """The request cannot be routed; the message goes back in a 400."""


@dataclass(frozen=True)
class RoutedReply:
    text: str | None
    route: str
    validation: Validation
    validation_s: float
    answer: Answer
    slm_answer: Answer
    started_at: float = field(default_factory=time.time)

    def to_json(self, track: str) -> dict[str, Any]:
        """OpenAI's chat completion. A side that gave no finish reason (a scripted or journalled answer) reads "stop":
        clients such as Mastra's agent take a missing one as "go on" and ask again with the reply appended."""
        return {
            "id": f"slm-swap-{int(self.started_at * 1000)}",
            "object": "chat.completion",
            "created": int(self.started_at),
            "model": f"slm-swap-routed-{track}",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": self.text}, "finish_reason": self.answer.finish_reason or "stop"}
            ],
            "usage": dict(self.answer.usage),
            "slm_swap": {"route": self.route, "reason": self.validation.reason, "validation_ms": round(self.validation_s * 1000, 3)},
        }


def request_tools(track: str, body: Mapping[str, Any]) -> tuple[list[dict[str, str]], list[Mapping[str, Any]]]:
    """The chat to send on and the signatures to validate against; RequestError says why there are none."""
    messages = body.get("messages")
    if not (isinstance(messages, list) and messages and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)):
        raise RequestError("'messages' must be a non-empty list of messages with string content")
    chat = [{"role": str(m.get("role")), "content": m["content"]} for m in messages]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        return chat, [t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    try:
        return chat, offered_tools(track, chat[-1]["content"])
    except ValueError as exc:
        raise RequestError(
            f"no tools to validate against: the request sends no 'tools' and its last message is not a {track} prompt ({exc})"
        ) from None


def route_request(track: str, body: Mapping[str, Any], slm: Ask, hosted: Ask) -> RoutedReply:
    chat, tools = request_tools(track, body)
    slm_answer = slm(chat)
    started = time.perf_counter()
    validation = validate(track, slm_answer.text, tools)
    validation_s = time.perf_counter() - started
    if validation.accepted:
        return RoutedReply(slm_answer.text, "slm", validation, validation_s, slm_answer, slm_answer)
    answer = hosted(chat)
    return RoutedReply(answer.text, "hosted", validation, validation_s, answer, slm_answer)


def trace_request(settings: LangfuseSettings, secrets: Sequence[str], track: str, body: Mapping[str, Any], reply: RoutedReply) -> str:
    """One trace per request, one span in it: the messages in, the text out, the route and the reason as metadata."""
    span = SpanTree(
        "routed request",
        reply.started_at,
        time.time(),
        input={"messages": body.get("messages")},
        output=reply.text,
        metadata={
            "route": reply.route,
            "reason": reply.validation.reason,
            "validation_ms": round(reply.validation_s * 1000, 3),
            "slm_latency_s": reply.slm_answer.latency_s,
            "slm_output": reply.slm_answer.text,
            "hosted_error": reply.answer.error if reply.route == "hosted" else None,
        },
    )
    return record_tree(settings, TraceTree(f"serve:routed:{track}", span), secrets=secrets).trace_id
