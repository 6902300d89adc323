"""The agent track's implementation of the track protocol: one case per BFCL multi-turn task, run as an episode.

Its cases are tasks (`run.cases`), answered up front by the episode pool (`run.pool`); its records are a task's
verdict with its trajectory (`run.records`); its metric document adds the arm, the episode settings and the
sandbox's layers; its flags pair task success by task and turn success by turn; its files name the arm
(`agent_<model>_<arm>[_<tag>]`), and `--capture-trajectories` adds the trajectories file beside the predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from slm_swap.files import write_jsonl_atomic
from slm_swap.layout import agent_run_tag, metric_path
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.episodes.isolation import describe_isolation, run_isolation
from slm_swap.tracks.agent.report.section import agent_section
from slm_swap.tracks.agent.run.capture import CAPTURE_PROPERTY
from slm_swap.tracks.agent.run.cases import parametrize_tasks
from slm_swap.tracks.agent.run.records import TaskRecord, read_task_records, summarize_tasks, task_flags, task_from_report
from slm_swap.tracks.protocol import Collected, CollectedRun, Flags


class AgentTrackRun:
    """The agent track behind the track protocol."""

    name = AGENT.name
    case_noun = "task"
    core_metrics = AGENT.core_metrics
    checks = AGENT.checks
    reported_metrics = AGENT.reported_metrics
    case_fixture = "task"
    answered_by = frozenset({"azure", "slm", "replay", "gold"})

    def refusal(self, model: str) -> str | None:
        if model in self.answered_by:
            return None
        return f"--model={model} answers the row tracks only (structured, toolcall): drop -k {self.name}"

    def parametrize(self, metafunc: pytest.Metafunc, context: Any) -> None:
        parametrize_tasks(metafunc, context)

    def collect(self, report: pytest.TestReport) -> Collected | None:
        found = task_from_report(report)
        if found is None:
            return None
        task_id, record, model, excluded = found
        if record is None:
            return Collected(task_id, excluded=excluded)
        captured = list(dict(report.user_properties).get(CAPTURE_PROPERTY) or [])
        return Collected(task_id, record, model, excluded, extras={CAPTURE_PROPERTY: captured})

    def run_tag(self, settings: Any) -> str | None:
        return agent_run_tag(settings.arm, settings.tag)

    def metric_part(self, run: CollectedRun, settings: Any, context: Any) -> dict[str, Any]:
        records: list[TaskRecord] = run.sorted_records()
        return {
            "arm": settings.arm,
            **summarize_tasks(records, run.excluded),
            "episode_settings": {"max_steps_per_turn": settings.max_steps_per_turn, "max_active": settings.max_active},
            "sandbox": run_isolation([record.trajectory.isolation for record in records]),
        }

    def prediction_lines(self, records: Sequence[TaskRecord]) -> list[dict[str, Any]]:
        return [record.to_json() for record in records]

    def write_more(self, run: CollectedRun, settings: Any, document: dict[str, Any]) -> None:
        """`--capture-trajectories`: every trajectory, accepted or not, beside the predictions."""
        if not settings.capture:
            return
        path = settings.trajectories_path(self.name)
        lines = [line for task_id in sorted(run.records) for line in run.extras.get(task_id, {}).get(CAPTURE_PROPERTY, [])]
        write_jsonl_atomic(path, lines)
        document["trajectories"] = {"path": str(path), "lines": len(lines), "accepted": sum(line["verifier"]["accepted"] for line in lines)}

    def trace(
        self, langfuse: Any, settings: Any, document: Mapping[str, Any], run: CollectedRun, context: Any, secrets: Sequence[str]
    ) -> Any:
        from slm_swap.tracks.agent.run.trace import trace_agent_run  # the Langfuse SDK comes with it: loaded once the run is under way

        return trace_agent_run(langfuse, settings, dict(document), run.sorted_records(), secrets)

    def summary_lines(self, document: Mapping[str, Any]) -> list[str]:
        steps, excluded = document["mean_steps_per_task"], len(document["excluded"])
        lines = [f"  mean steps per task {steps:.2f}  failures {document['failures']}  excluded {excluded}"]
        if "sandbox" in document:
            lines.append(f"  sandbox: {describe_isolation(document['sandbox'])}")
        if "written_observations" in document:
            written = document["written_observations"]
            lines.append(f"  steps whose reply writes an observation: {written['steps_writing_observations']} of {written['steps']}")
        return lines

    def flags(self, records: Mapping[str, TaskRecord]) -> dict[str, dict[str, Any]]:
        return task_flags(records)

    def recompute(self, predictions: Path) -> tuple[dict[str, Any], Flags]:
        tasks = read_task_records(predictions)
        return summarize_tasks(list(tasks.values()), {}), task_flags(tasks)

    def reference_problem(self, reference: Mapping[str, Any], settings: Any, reference_path: Path) -> str | None:
        if reference.get("arm") == settings.arm:
            return None
        arm = reference.get("arm")
        return f"--gate-against {reference_path}: reference is for the agent track's {arm} arm, this run uses --arm {settings.arm}"

    def check_predictions(self, path: Path) -> None:
        read_task_records(path)

    def decision_runs(self, eval_dir: Path, hosted_model: str, after_tag: str, arm: str) -> tuple[Path, Path, Path]:
        return (
            metric_path(eval_dir, self.name, hosted_model, agent_run_tag(arm)),
            metric_path(eval_dir, self.name, "slm", agent_run_tag(arm)),
            metric_path(eval_dir, self.name, "slm", agent_run_tag(arm, after_tag)),
        )

    def report_section(self, eval_dir: Path) -> list[str]:
        return agent_section(Path(eval_dir))


def track(name: str) -> AgentTrackRun:
    if name != AGENT.name:
        raise ValueError(f"the agent track's implementation is for track {AGENT.name!r}, not {name!r}")
    return AgentTrackRun()
