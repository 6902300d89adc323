"""tools/agent_gold.py: the by-hand end-to-end run, on a few tasks."""

from __future__ import annotations

import pytest

from tools.agent_gold import build_parser, main


def test_gold_run_passes_and_names_the_excluded_task(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--arms", "toolcall", "--categories", "multi_turn_miss_func", "--every", "49"])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("5 tasks, 1 excluded")
    assert '"multi_turn_miss_func_49": "ground truth calls tail in turn 1, before it is offered"' in out
    assert "toolcall: " in out and '"task_success_rate": 1.0' in out


def test_a_failing_scored_task_makes_the_run_fail(capsys: pytest.CaptureFixture[str]) -> None:
    # with one step per turn the gold policy's answer step is the cap, so every turn with calls hits it
    args = build_parser().parse_args(
        ["--arms", "toolcall", "--categories", "multi_turn_base", "--every", "100", "--max-steps-per-turn", "1"]
    )
    assert main(args) == 1
    assert "multi_turn_base_0: step_limit in turn 0 step 0" in capsys.readouterr().out
