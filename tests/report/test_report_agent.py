"""The report's agent section: present only when an agent run is, each failure kind shown at its turn and step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.report.inputs import ReportInputError, RunNames
from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.episodes.scoring import TaskResult
from slm_swap.tracks.agent.episodes.trajectory import StepRecord, Trajectory, TurnRecord
from slm_swap.tracks.agent.report.arms import arm_section
from slm_swap.tracks.agent.report.section import agent_section
from slm_swap.tracks.agent.run.records import TaskRecord, summarize_tasks


def write_run(folder: Path) -> None:
    bad_step = StepRecord(
        1, '<tool_call name="rm_all">{}</tool_call>', "calls", failure="unknown_tool", observation="Observation: no tool rm_all"
    )
    turns = [
        TurnRecord(0, "list the files", [StepRecord(0, "ok\n  Observation: a.txt b.txt", None)], "answer"),  # writes the env's part
        TurnRecord(1, "delete the log", [StepRecord(0, "x", None), bad_step], "answer"),
    ]
    failed = TaskResult("multi_turn_base_7", False, [True, False], 1, 1, AgentFailure.UNKNOWN_TOOL, "no tool", actions=1, steps=3)
    passed = TaskResult("multi_turn_base_8", True, [True], actions=0, steps=1)
    records = [
        TaskRecord(failed, Trajectory("multi_turn_base_7", "multi_turn_base", "toolcall", turns=turns, ended="complete")),
        TaskRecord(passed, Trajectory("multi_turn_base_8", "multi_turn_base", "toolcall", ended="complete")),
    ]
    document = {"track": "agent", "model": "slm", "arm": "toolcall", **summarize_tasks(records, {})}
    (folder / "agent_slm_toolcall.json").write_text(json.dumps(document))
    (folder / "agent_slm_toolcall.predictions.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))


def test_no_agent_run_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "toolcall_slm.json").write_text(json.dumps({"track": "toolcall", "metrics": {}}))
    assert agent_section(tmp_path) == []


def test_a_failure_kind_is_shown_at_the_step_where_the_episode_went_wrong(tmp_path: Path) -> None:
    write_run(tmp_path)
    text = "\n".join(agent_section(tmp_path))
    assert "### agent\\_slm\\_toolcall" in text and "task\\_success\\_rate | 0.500" in text
    assert "unknown\\_tool in turn 1, step 1" in text
    assert "request: ` delete the log `" in text and "rm_all" in text and "Observation: no tool rm_all" in text


def test_replies_that_write_an_observation_are_counted_in_the_metric_file_and_shown(tmp_path: Path) -> None:
    write_run(tmp_path)
    document = json.loads((tmp_path / "agent_slm_toolcall.json").read_text())
    written = document["written_observations"]
    assert (written["steps_writing_observations"], written["steps"], written["tasks"]) == (1, 3, ["multi_turn_base_7"])
    assert "steps whose reply writes an observation 1 of 3" in "\n".join(agent_section(tmp_path))


def write_idle_run(folder: Path) -> Path:
    """An SLM run that never acts: one task, no action, so valid_action_rate has a zero denominator."""
    result = TaskResult("multi_turn_base_3", False, [False], 0, 0, AgentFailure.STATE_MISMATCH, actions=0, steps=1)
    records = [TaskRecord(result, Trajectory("multi_turn_base_3", "multi_turn_base", "toolcall", ended="complete"))]
    document = {"track": "agent", "model": "slm", "arm": "toolcall", **summarize_tasks(records, {})}
    (folder / "agent_slm_toolcall.json").write_text(json.dumps(document))
    (folder / "agent_slm_toolcall.predictions.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    return folder / "agent_slm_toolcall.json"


def test_a_rate_over_zero_actions_is_na_in_both_agent_sections(tmp_path: Path) -> None:
    write_idle_run(tmp_path)
    assert "| valid\\_action\\_rate | n/a | n/a |" in agent_section(tmp_path)
    row = next(line for line in arm_section(tmp_path, "toolcall", RunNames(), None) if line.startswith("| SLM, before |"))
    assert row.startswith("| SLM, before | 0.000 [0.000, 0.793] | n/a | 0.000 [0.000, 0.793] |")


def test_an_agent_metric_file_that_disagrees_with_its_predictions_is_refused(tmp_path: Path) -> None:
    path = write_idle_run(tmp_path)
    document = json.loads(path.read_text())
    document["metrics"]["task_success_rate"] = 1.0
    path.write_text(json.dumps(document))
    predictions = tmp_path / "agent_slm_toolcall.predictions.jsonl"
    expected = (
        f"{path}: metrics.task_success_rate is 1.0 but its predictions {predictions} give 0.0; "
        "the predictions are the source of truth: re-run the evaluation or restore the metric file"
    )
    for section in (lambda: agent_section(tmp_path), lambda: arm_section(tmp_path, "toolcall", RunNames(), None)):
        with pytest.raises(ReportInputError) as refused:
            section()
        assert str(refused.value) == expected
