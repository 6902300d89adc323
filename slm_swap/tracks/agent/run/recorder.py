"""Recording an agent evaluation run in Langfuse: one trace, a span per task, per turn and per step.

Under the run's root span (as for a row track's run), each task is a span `task:<id>` carrying its verdict
and a boolean `task_success` score; each user turn a span `turn <i>` with the request; each step a
generation `step <i>` (the reply, its tokens; its input is what the step added to the chat: the request or
the previous observation) and, when the reply acted, a child span `execution` with the action's calls, the
observation and the outcome (failure kind and detail, level ERROR on a failure). Times are the steps' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langfuse import LangfuseGeneration, LangfuseSpan

from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.runs import EvalRunTrace, eval_run_span, interval_note, record_trace, usage_details
from slm_swap.tracing.session import Observation, TracingSession
from slm_swap.tracks.agent.episodes.trajectory import StepRecord, Trajectory, TurnRecord


@dataclass(frozen=True)
class TaskTrace:
    """One task's episode and its verdict (`failure` an AgentFailure value, None when it passed)."""

    trajectory: Trajectory
    passed: bool
    failure: str | None
    first_failing_turn: int | None
    first_failing_step: int | None
    detail: str


def _step_times(step: StepRecord, fallback: float) -> tuple[float, float, float]:
    """(asked, replied, executed) in unix seconds; a step stored without times sits at `fallback`."""
    start = step.started_at or fallback
    return start, start + step.generation_s, start + step.generation_s + step.execution_s


def _record_step(session: TracingSession, parent: Observation, model_name: str, step: StepRecord, prompt: str, at: float) -> float:
    start, replied, executed = _step_times(step, at)
    generation = session.start(
        LangfuseGeneration,
        f"step {step.step}",
        at=start,
        parent=parent,
        input=prompt,
        output=step.text,
        model=model_name,
        usage_details=usage_details(step.usage),
        metadata={"action": step.action, "generation_s": step.generation_s},
    )
    if step.action is None:
        session.end(generation, at=replied)
        return replied
    execution = session.start(
        LangfuseSpan,
        "execution",
        at=replied,
        parent=generation,
        input={"action": step.action, "calls": step.calls},
        output={"observation": step.observation, "results": step.results},
        metadata={"failure": step.failure, "detail": step.detail, "execution_s": step.execution_s},
        level="ERROR" if step.failure else None,
        status_message=f"{step.failure}: {step.detail}" if step.failure else None,
    )
    session.end(execution, at=executed)
    session.end(generation, at=replied)  # ended after its child: ending takes it off the session's parents
    return executed


def _record_turn(session: TracingSession, parent: Observation, model_name: str, turn: TurnRecord, at: float) -> float:
    start = (turn.steps[0].started_at if turn.steps else 0.0) or at
    span = session.start(
        LangfuseSpan, f"turn {turn.turn}", at=start, parent=parent, input=turn.user, output={"ended": turn.ended, "steps": len(turn.steps)}
    )
    prompt, end = turn.user, at
    for step in turn.steps:
        end = _record_step(session, span, model_name, step, prompt, end)
        prompt = step.observation or ""
    session.end(span, at=end)
    return end


def _record_task(session: TracingSession, root: Observation, model_name: str, task: TaskTrace, at: float) -> None:
    trajectory = task.trajectory
    first = next((s.started_at for t in trajectory.turns for s in t.steps if s.started_at), at)
    span = session.start(
        LangfuseSpan,
        f"task:{trajectory.task_id}",
        at=first,
        parent=root,
        input={"task_id": trajectory.task_id, "category": trajectory.category, "arm": trajectory.arm},
        output={"passed": task.passed, "failure": task.failure, "turn": task.first_failing_turn, "step": task.first_failing_step},
        metadata={"ended": trajectory.ended, "detail": task.detail, "sandbox_restarts": trajectory.sandbox_restarts},
        level="WARNING" if not task.passed else None,
    )
    end = first
    for turn in trajectory.turns:
        end = _record_turn(session, span, model_name, turn, end)
    session.end(span, at=end)
    session.score(
        trace_id=root.trace_id, observation_id=span.id, name="task_success", value=float(task.passed), data_type="BOOLEAN", at=end
    )


def record_agent_run(settings: LangfuseSettings, run: EvalRunTrace, tasks: Sequence[TaskTrace], *, secrets: Sequence[str] = ()) -> TraceRef:
    name = f"eval:{run.track}:{run.model_name}"

    def build(session: TracingSession) -> str:
        with session.trace(name, run.tags):
            root = eval_run_span(session, name, run, len(tasks))
            for task in tasks:
                _record_task(session, root, run.model_name, task, run.started_at)
            session.end(root, at=run.ended_at)
        for rate, value in run.rates.items():
            if value is None:  # a rate over a zero denominator (no actions): n/a, no score
                continue
            session.score(trace_id=root.trace_id, name=rate, value=value, data_type="NUMERIC", at=run.ended_at, **interval_note(run, rate))
        return root.trace_id

    return record_trace(settings, secrets, build)
