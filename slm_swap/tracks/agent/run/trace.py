"""The agent track's part of its run's Langfuse trace, built in the controller from the tasks' records.

Under the run's root span (the same for every track: `slm_swap.tracing.runs`), each task is a span `task:<id>`
carrying its verdict and a boolean `task_success` score; each user turn a span `turn <i>` with the request; each
step a generation `step <i>` (the reply, its tokens; its input is what the step added to the chat: the request or
the previous observation) and, when the reply acted, a child span `execution` with the action's calls, the
observation and the outcome (failure kind and detail, level ERROR on a failure). Times are the steps' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slm_swap.harness.settings import EvalSettings
from slm_swap.harness.trace import eval_run_trace
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.recorder import Score, SpanTree
from slm_swap.tracing.runs import record_eval_run
from slm_swap.tracks.agent.episodes.trajectory import StepRecord, Trajectory, TurnRecord
from slm_swap.tracks.agent.run.records import TaskRecord

SUMMARY_KEYS = (
    "n",
    "errors",
    "passed",
    "failures",
    "totals",
    "mean_steps_per_task",
    "mean_usage_per_task",
    "usage",
    "ended",
    "excluded",
    "sandbox",
)


def step_span(model_name: str, step: StepRecord, prompt: str, at: float) -> SpanTree:
    """A step's generation (and its `execution` when it acted); a step stored without times starts at `at`."""
    start = step.started_at or at
    replied = start + step.generation_s
    execution = SpanTree(
        "execution",
        replied,
        replied + step.execution_s,
        input={"action": step.action, "calls": step.calls},
        output={"observation": step.observation, "results": step.results},
        metadata={"failure": step.failure, "detail": step.detail, "execution_s": step.execution_s},
        level="ERROR" if step.failure else None,
        status_message=f"{step.failure}: {step.detail}" if step.failure else None,
    )
    return SpanTree(
        f"step {step.step}",
        start,
        replied,
        kind="generation",
        input=prompt,
        output=step.text,
        metadata={"action": step.action, "generation_s": step.generation_s},
        model=model_name,
        usage=step.usage,
        children=[execution] if step.action is not None else [],
    )


def turn_span(model_name: str, turn: TurnRecord, at: float) -> SpanTree:
    """A turn's span over its steps, each step's prompt the previous one's observation; it ends with its last step."""
    steps, prompt, end = [], turn.user, at
    for step in turn.steps:
        span = step_span(model_name, step, prompt, end)
        end = span.children[0].ended_at if span.children else span.ended_at
        steps.append(span)
        prompt = step.observation or ""
    start = (turn.steps[0].started_at if turn.steps else 0.0) or at
    output = {"ended": turn.ended, "steps": len(turn.steps)}
    return SpanTree(f"turn {turn.turn}", start, end, input=turn.user, output=output, children=steps)


@dataclass(frozen=True)
class TaskTrace:
    """One task's episode and its verdict (`failure` an AgentFailure value, None when it passed)."""

    trajectory: Trajectory
    passed: bool
    failure: str | None
    first_failing_turn: int | None
    first_failing_step: int | None
    detail: str

    def span(self, model_name: str, fallback_at: float) -> SpanTree:
        trajectory = self.trajectory
        first = next((s.started_at for t in trajectory.turns for s in t.steps if s.started_at), fallback_at)
        turns, end = [], first
        for turn in trajectory.turns:
            turns.append(turn_span(model_name, turn, end))
            end = turns[-1].ended_at
        return SpanTree(
            f"task:{trajectory.task_id}",
            first,
            end,
            input={"task_id": trajectory.task_id, "category": trajectory.category, "arm": trajectory.arm},
            output={"passed": self.passed, "failure": self.failure, "turn": self.first_failing_turn, "step": self.first_failing_step},
            metadata={"ended": trajectory.ended, "detail": self.detail, "sandbox_restarts": trajectory.sandbox_restarts},
            level="WARNING" if not self.passed else None,
            children=turns,
            scores=[Score("task_success", float(self.passed), "BOOLEAN", end)],
        )


def task_trace(record: TaskRecord) -> TaskTrace:
    result = record.result
    failure = result.failure.value if result.failure else None
    return TaskTrace(record.trajectory, result.passed, failure, result.first_failing_turn, result.first_failing_step, result.detail)


def trace_agent_run(
    langfuse: LangfuseSettings, settings: EvalSettings, document: dict[str, Any], records: Sequence[TaskRecord], secrets: Sequence[str]
) -> TraceRef:
    run = eval_run_trace(settings, document, SUMMARY_KEYS, [settings.arm])
    return record_eval_run(langfuse, run, [task_trace(r) for r in records], secrets=secrets)
