"""An agent evaluation run's Langfuse trace, built in the controller from the tasks' records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slm_swap.harness.agent_records import TaskRecord
from slm_swap.harness.settings import EvalSettings
from slm_swap.harness.trace import unix_time
from slm_swap.tracing.agent_runs import TaskTrace, record_agent_run
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.runs import EvalRunTrace

SUMMARY_KEYS = ("n", "errors", "passed", "failures", "totals", "mean_steps_per_task", "mean_usage_per_task", "usage", "ended", "excluded")


def trace_agent_run(
    langfuse: LangfuseSettings, settings: EvalSettings, document: dict[str, Any], records: Sequence[TaskRecord], secrets: Sequence[str]
) -> TraceRef:
    track = document["track"]
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
    run = EvalRunTrace(
        track=track,
        model_name=settings.run_name(track).split("_", 1)[1],
        model=document["model_description"],
        dataset_path=document["dataset"]["path"],
        dataset_sha256=document["dataset"]["sha256"],
        metric_path=str(settings.metric_path(track)),
        predictions_path=str(settings.predictions_path(track)),
        pytest_args=document["pytest_args"],
        started_at=unix_time(document["started_at"]),
        ended_at=unix_time(document["finished_at"]),
        rates=document["metrics"],
        intervals=document.get("intervals", {}),
        summary={key: document[key] for key in SUMMARY_KEYS},
        tags=[track, str(settings.model), settings.arm] + ([settings.tag] if settings.tag else []),
    )
    return record_agent_run(langfuse, run, tasks, secrets=secrets)
