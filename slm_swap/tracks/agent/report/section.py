"""The report's agent-track section: every agent run found in the eval folder, its rates with intervals, its
failures by kind, and per kind one failed task shown at the step where its episode went wrong (that turn's
request, the step's reply and observation)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError
from slm_swap.layout import predictions_for_metric
from slm_swap.report.inputs import check_against_predictions
from slm_swap.report.markdown import code, escape, table
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.episodes.isolation import describe_isolation
from slm_swap.tracks.agent.run.records import TaskRecord, read_task_records

EXCERPT = 300


def agent_metric_files(eval_dir: Path) -> list[Path]:
    """`agent_<model>_<arm>[_<tag>].json` files that are agent metric files, by name."""
    found = []
    for path in sorted(Path(eval_dir).glob(f"{AGENT.name}_*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get("track") == AGENT.name and "metrics" in document:
            found.append(path)
    return found


def where_it_went_wrong(record: TaskRecord) -> list[str]:
    result, trajectory = record.result, record.trajectory
    turn, step = result.first_failing_turn, result.first_failing_step
    lines = [f"  - task {code(result.task_id)}: {escape(result.failure)} in turn {turn}, step {step}"]
    if turn is None or turn >= len(trajectory.turns):
        return lines
    record_turn = trajectory.turns[turn]
    lines.append(f"  - request: {code(record_turn.user, limit=EXCERPT)}")
    if step is not None and step < len(record_turn.steps):
        shown = record_turn.steps[step]
        lines.append(f"  - reply: {code(shown.text, limit=EXCERPT)}")
        lines.append(f"  - observation: {code(shown.observation or '(none: the reply did not act)', limit=EXCERPT)}")
    return lines


def rate_cells(value: float | None, bounds: list[float] | None) -> list[str]:
    """A rate and its interval; n/a for a rate over a zero denominator (no actions: no rate at all)."""
    if value is None:
        return ["n/a", "n/a"]
    return [f"{value:.3f}", "[{:.3f}, {:.3f}]".format(*bounds) if bounds else "-"]


def run_section(path: Path) -> list[str]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    check_against_predictions(path, document, predictions_for_metric(path))
    lines = [f"### {escape(path.stem)}", ""]
    rows = [[escape(name), *rate_cells(value, document["intervals"].get(name))] for name, value in document["metrics"].items()]
    lines += table(["metric", "rate", "95 % interval"], rows)
    steps = document.get("mean_steps_per_task", 0.0)
    written = document.get("written_observations")
    wrote = f", steps whose reply writes an observation {written['steps_writing_observations']} of {written['steps']}" if written else ""
    lines += ["", f"n={document['n']} tasks, {len(document.get('excluded', {}))} excluded, mean steps per task {steps:.2f}{wrote}", ""]
    if "sandbox" in document:
        lines += [f"Sandbox: {escape(describe_isolation(document['sandbox']))}", ""]
    failures = document.get("failures", {})
    if not failures:
        return lines + ["No task failed.", ""]
    lines.append("Failures by kind: " + ", ".join(f"{escape(kind)} {count}" for kind, count in failures.items()))
    try:
        records = read_task_records(predictions_for_metric(path))
    except DatasetError as exc:
        return lines + [f"- examples: not available ({escape(exc)})", ""]
    for kind in failures:
        example = next((r for r in records.values() if r.result.failure is not None and r.result.failure.value == kind), None)
        if example is not None:
            lines += [f"- {escape(kind)}:", *where_it_went_wrong(example)]
    return lines + [""]


def agent_section(eval_dir: Path, runs: Sequence[Path] | None = None) -> list[str]:
    """The runs given (those that exist), else every agent run in `eval_dir` except replays: a replay re-scores another
    run's stored trajectories, so it is no run of this report's models. Nothing when no run is left."""
    if runs is None:
        paths = [p for p in agent_metric_files(eval_dir) if json.loads(p.read_text(encoding="utf-8")).get("model") != "replay"]
    else:
        paths = [p for p in agent_metric_files(eval_dir) if p in {Path(r) for r in runs}]
    if not paths:
        return []
    lines = ["## Agent track", "", "Each run: BFCL multi-turn tasks as episodes, scored turn by turn by BFCL's checker.", ""]
    for path in paths:
        lines += run_section(path)
    return lines
