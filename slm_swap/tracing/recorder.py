"""The one trace recorder: a finished run, given as a tree of spans with their scores, recorded in Langfuse.

Whoever records something (an evaluation, a training run, the decision step, a routed request) describes it as
plain data, a `SpanTree` (its root, its children and theirs, each with its own scores) and the trace's own
scores; `record_tree` opens a client, records every span with its real start and end time, flushes within
`settings.flush_timeout_s`, checks that Langfuse took every span and score, and returns the trace id and URL.
Any shortfall raises `TracingError`, which callers turn into a loud non-zero exit. Every value passes through
`redact` with the Langfuse secret and the caller's `secrets` before it leaves the process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from langfuse import LangfuseEvent, LangfuseGeneration, LangfuseSpan

from slm_swap.formats.jsontext import is_number
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.session import Observation, TracingSession

USAGE_NAMES = {"prompt_tokens": "input", "completion_tokens": "output", "total_tokens": "total"}
KINDS: dict[str, type[Observation]] = {"span": LangfuseSpan, "generation": LangfuseGeneration, "event": LangfuseEvent}


@dataclass(frozen=True)
class Score:
    """A score on a span (or, among a `TraceTree`'s `scores`, on the whole trace)."""

    name: str
    value: float
    data_type: Literal["BOOLEAN", "NUMERIC"]
    at: float  # unix seconds
    comment: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class SpanTree:
    """One observation as it happened, with the observations under it, in order, and its scores.

    A `generation` may carry `model` and `usage` (OpenAI-style token counts); a `span` or `event` carries neither.
    A field left None is not sent.
    """

    name: str
    started_at: float  # unix seconds
    ended_at: float
    kind: Literal["span", "generation", "event"] = "span"
    input: Any = None
    output: Any = None
    metadata: Mapping[str, Any] | None = None
    level: Literal["WARNING", "ERROR"] | None = None
    status_message: str | None = None
    model: str | None = None
    usage: Mapping[str, Any] | None = None
    children: Sequence[SpanTree] = ()
    scores: Sequence[Score] = ()


@dataclass(frozen=True)
class TraceTree:
    """A whole trace: its name and tags, its root span and the scores on the trace itself."""

    name: str
    root: SpanTree
    tags: Sequence[str] = ()
    scores: Sequence[Score] = ()


def usage_details(usage: Mapping[str, Any]) -> dict[str, int]:
    """OpenAI-style token counts under the names Langfuse uses (input, output, total). A count that is not a finite
    number is left out: replay refuses such files before a run, and a trace is never the place a run dies."""
    return {USAGE_NAMES.get(key, key): int(value) for key, value in usage.items() if is_number(value) and math.isfinite(value)}


def observation_fields(node: SpanTree) -> dict[str, Any]:
    fields = {
        "input": node.input,
        "output": node.output,
        "metadata": node.metadata,
        "level": node.level,
        "status_message": node.status_message,
        "model": node.model,
        "usage_details": usage_details(node.usage) if node.usage is not None else None,
    }
    return {key: value for key, value in fields.items() if value is not None}


def record_score(session: TracingSession, score: Score, trace_id: str, observation_id: str | None = None) -> None:
    session.score(trace_id=trace_id, observation_id=observation_id, **asdict(score))  # a Score's fields are score()'s keywords


def record_span(session: TracingSession, node: SpanTree, parent: Observation | None = None) -> Observation:
    """The span, then its children (each ended before it: ending takes a span off the session's parents), then its scores."""
    observation = session.start(KINDS[node.kind], node.name, at=node.started_at, parent=parent, **observation_fields(node))
    for child in node.children:
        record_span(session, child, observation)
    session.end(observation, at=node.ended_at)
    for score in node.scores:
        record_score(session, score, observation.trace_id, observation.id)
    return observation


def record_tree(settings: LangfuseSettings, trace: TraceTree, *, secrets: Sequence[str] = ()) -> TraceRef:
    """Record one trace; raises TracingError unless Langfuse took every span and score within the flush bound."""
    with TracingSession(settings, secrets) as session:
        with session.trace(trace.name, trace.tags):
            root = record_span(session, trace.root)
        for score in trace.scores:
            record_score(session, score, root.trace_id)
        url = session.trace_url(root.trace_id)
        session.finish()
    return TraceRef(trace_id=root.trace_id, url=url)
