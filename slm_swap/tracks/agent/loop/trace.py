"""The Phase II loop's own Langfuse trace: one root span for the loop, one child span per step.

The evaluations and the fine-tuning runs trace themselves in detail (`slm_swap.tracing.runs`); this trace is the
loop's spine: which step ran or was skipped (its inputs' fingerprint unchanged), when, for how long, what it read
and wrote, and which step stopped the loop. Each span's metadata names its `kind` (capture, filtering and
building, training, evaluation, decision, report), so a view over many weekly loops can filter on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.recorder import SpanTree, TraceTree, record_tree

STEP_KINDS = ("capture", "filtering and building", "evaluation", "decision", "training", "report")


@dataclass(frozen=True)
class StepSpan:
    """One step of the loop as it happened; `error` is set on the step that stopped the loop."""

    name: str
    kind: str
    started_at: float  # unix seconds
    ended_at: float
    skipped: bool
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class LoopTrace:
    name: str  # e.g. "phase2:demo"
    started_at: float
    ended_at: float
    settings: Mapping[str, Any]
    steps: Sequence[StepSpan]
    error: str | None = None


def record_loop(settings: LangfuseSettings, loop: LoopTrace, *, secrets: Sequence[str] = ()) -> TraceRef:
    """Record the loop once it has finished (or stopped); raises TracingError when Langfuse did not take every span."""
    steps = [
        SpanTree(
            step.name,
            step.started_at,
            step.ended_at,
            input=dict(step.inputs),
            output=dict(step.outputs),
            metadata={"kind": step.kind, "skipped": step.skipped, "wall_s": round(step.ended_at - step.started_at, 3)},
            level="ERROR" if step.error else None,
            status_message=step.error,
        )
        for step in loop.steps
    ]
    root = SpanTree(
        loop.name,
        loop.started_at,
        loop.ended_at,
        input=dict(loop.settings),
        output={"steps": [s.name for s in loop.steps], "skipped": [s.name for s in loop.steps if s.skipped]},
        metadata={"error": loop.error} if loop.error else None,
        level="ERROR" if loop.error else None,
        status_message=loop.error,
        children=steps,
    )
    return record_tree(settings, TraceTree(loop.name, root, tags=["phase2"]), secrets=secrets)
