"""An agent evaluation run's Langfuse trace, built in the controller from the tasks' records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slm_swap.harness.settings import EvalSettings
from slm_swap.harness.trace import eval_run_trace
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracks.agent.run.recorder import TaskTrace, record_agent_run
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


def trace_agent_run(
    langfuse: LangfuseSettings, settings: EvalSettings, document: dict[str, Any], records: Sequence[TaskRecord], secrets: Sequence[str]
) -> TraceRef:
    tasks = [
        TaskTrace(
            r.trajectory,
            r.result.passed,
            r.result.failure.value if r.result.failure else None,
            r.result.first_failing_turn,
            r.result.first_failing_step,
            r.result.detail,
        )
        for r in records
    ]
    run = eval_run_trace(settings, document, [settings.arm], SUMMARY_KEYS)
    return record_agent_run(langfuse, run, tasks, secrets=secrets)
