"""The agent track's records: one task's verdict with its whole trajectory, and the numbers of a run.

A task's record travels as JSON inside its pytest report (`report.user_properties`, as a row's does) and is
one line of the predictions JSONL: the verdict's fields and, under `trajectory`, every step's reply, action,
executed calls and observation. `--model=replay` reads those lines back (`read_task_records`) and re-scores
the trajectories: BFCL's checker re-executes their recorded calls, no model is asked.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slm_swap.data.rows import DatasetError, read_lines
from slm_swap.formats.jsontext import non_finite_number, typed_problem
from slm_swap.harness.records import MODEL_PROPERTY
from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.stats.intervals import wilson_interval
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.episodes.observations import written_observations
from slm_swap.tracks.agent.episodes.scoring import TaskResult, agent_metrics
from slm_swap.tracks.agent.episodes.trajectory import Trajectory
from slm_swap.tracks.agent.run.capture import CAPTURE_PROPERTY

TASK_PROPERTY = "slm_swap_task"
# the node id of one task's case: `evals/test_agent.py::test_agent[<task id>]`
TASK_NODE = re.compile(r"::test_" + re.escape(AGENT.name) + r"\[([^\]]+)\]$")
RESULT_FIELDS = (
    "passed",
    "turns_passed",
    "first_failing_turn",
    "first_failing_step",
    "failure",
    "detail",
    "actions",
    "valid_actions",
    "steps",
)


@dataclass(frozen=True)
class TaskRecord:
    result: TaskResult
    trajectory: Trajectory

    @property
    def id(self) -> str:
        return self.result.task_id

    def to_json(self) -> dict[str, Any]:
        """The predictions line: id, track, arm, the verdict, usage, how the episode ended, the trajectory."""
        result = self.result
        verdict = {name: getattr(result, name) for name in RESULT_FIELDS}
        verdict["failure"] = result.failure.value if result.failure else None
        return {
            "id": result.task_id,
            "track": AGENT.name,
            "arm": self.trajectory.arm,
            "category": self.trajectory.category,
            **verdict,
            "usage": dict(result.usage),
            "ended": self.trajectory.ended,
            "trajectory": self.trajectory.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        failure = data.get("failure")
        fields = {name: data[name] for name in RESULT_FIELDS}
        fields["failure"] = AgentFailure(failure) if failure else None
        result = TaskResult(task_id=data["id"], usage=dict(data.get("usage") or {}), **fields)
        return cls(result, Trajectory.from_json(data["trajectory"]))


def parse_task_node(nodeid: str) -> str | None:
    match = TASK_NODE.search(nodeid)
    return match.group(1) if match else None


def skip_reason(report: pytest.TestReport) -> str:
    """The reason of a skipped case, as pytest (and pytest-xdist, as a tuple) carries it: (path, line, "Skipped: why")."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(text).removeprefix("Skipped: ")


def captured_from_report(report: pytest.TestReport) -> list[dict[str, Any]]:
    """The `--capture-trajectories` lines one agent case's report carries (none without it)."""
    return list(dict(report.user_properties).get(CAPTURE_PROPERTY) or [])


def task_from_report(report: pytest.TestReport) -> tuple[str, TaskRecord | None, dict[str, Any] | None, str | None] | None:
    """(task id, its record, the model's description, why it was excluded) from one agent case's report."""
    task_id = parse_task_node(report.nodeid)
    if task_id is None:
        return None
    props = dict(report.user_properties)
    if TASK_PROPERTY in props:
        return task_id, TaskRecord.from_json(props[TASK_PROPERTY]), props.get(MODEL_PROPERTY), None
    if report.skipped and report.when == "setup":
        return task_id, None, None, skip_reason(report)
    return None


def task_flags(records: Mapping[str, TaskRecord]) -> dict[str, dict[str, Any]]:
    """Each task's paired flags (`tracks.AGENT.checks`): whether every turn passed, and each turn's flag (paired by turn)."""
    return {
        task_id: {"task_success": record.result.passed, "turn_success": tuple(record.result.turns_passed)}
        for task_id, record in records.items()
    }


def read_task_records(path: Path) -> dict[str, TaskRecord]:
    """An agent run's records by task id, from its predictions JSONL; DatasetError names the file and line."""
    records: dict[str, TaskRecord] = {}
    for number, line in enumerate(read_lines(path, "predictions file"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or data.get("track") != AGENT.name:
                raise ValueError(f"not an agent task's line (track {data.get('track') if isinstance(data, dict) else None!r})")
            problem = agent_number_problem(data)
            record = TaskRecord.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise DatasetError(f"{path}: line {number}: not an agent predictions line ({type(exc).__name__}: {exc})") from None
        if problem is not None:
            raise DatasetError(f"{path}: line {number}: {problem}")
        if record.id in records:
            raise DatasetError(f"{path}: line {number}: task {record.id!r} appears twice")
        records[record.id] = record
    return records


def agent_number_problem(data: dict[str, Any]) -> str | None:
    """A number that is not finite anywhere in an agent predictions line, or a step's usage or timing of the wrong
    type; None if none. Replay hands them on to the metric file and the trace (a NaN in a step's usage once
    crashed the trace after every test had passed, issue 30)."""
    found = non_finite_number(data)
    if found is not None:
        return f"{found[0]} is {found[1]}, not a finite number"
    problem = typed_problem(data, numbers=(), counts=("usage",))
    trajectory = data.get("trajectory")
    turns = trajectory.get("turns") if isinstance(trajectory, dict) else None
    for i, turn in enumerate(turns if isinstance(turns, list) else []):
        steps = turn.get("steps") if isinstance(turn, dict) else None
        for j, step in enumerate(steps if isinstance(steps, list) else []):
            if problem is None and isinstance(step, dict):
                where = f"trajectory.turns[{i}].steps[{j}]"
                problem = typed_problem(step, numbers=("started_at", "generation_s", "execution_s"), counts=("usage",), path=where)
    return problem


def summarize_tasks(records: list[TaskRecord], excluded: dict[str, str]) -> dict[str, Any]:
    """Rates with their pass counts, totals and 95 % Wilson intervals; steps, usage, failures, endings, exclusions."""
    results = [r.result for r in records]
    metrics = agent_metrics(results)
    counts = {
        "task_success_rate": sum(r.passed for r in results),
        "turn_success_rate": sum(p for r in results for p in r.turns_passed),
        "valid_action_rate": sum(r.valid_actions for r in results),
    }
    totals = {
        "task_success_rate": len(results),
        "turn_success_rate": sum(len(r.turns_passed) for r in results),
        "valid_action_rate": sum(r.actions for r in results),
    }
    usage: Counter[str] = Counter()
    for result in results:
        usage.update(result.usage)
    return {
        "n": len(records),
        "errors": metrics["failures"].get(AgentFailure.MODEL_ERROR.value, 0),
        "error_classes": {},
        "metrics": {name: metrics[name] for name in counts},  # None (n/a) over a zero total
        "counts": counts,
        "totals": totals,  # tasks, turns, actions: what each rate's interval is over
        "intervals": {name: wilson_interval(counts[name], totals[name]).as_list() if totals[name] else None for name in counts},
        "passed": counts["task_success_rate"],
        "failures": metrics["failures"],
        "mean_steps_per_task": metrics["mean_steps_per_task"],
        "mean_usage_per_task": metrics["mean_usage_per_task"],
        "usage": dict(sorted(usage.items())),
        "ended": dict(sorted(Counter(r.trajectory.ended for r in records).items())),
        "excluded": dict(sorted(excluded.items())),
        # replies that hold an "Observation:" line: the model writing the environment's part (masking's check)
        "written_observations": written_observations(r.trajectory for r in records),
    }
