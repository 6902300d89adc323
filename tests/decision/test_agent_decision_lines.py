"""What tools/decide.py says about the agent track: every line names the arm, counts tasks (not rows), and a
missing hosted run after the Phase II demo points at its hosted side, `gold`."""

from __future__ import annotations

from pathlib import Path

from test_decide_agent import agent_run, decide


def test_every_agent_decision_line_names_the_arm(tmp_path: Path, langfuse_env) -> None:
    agent_run(tmp_path, "azure", [True] * 40, arm="codeact")
    agent_run(tmp_path, "slm", [True] * 30 + [False] * 10, arm="codeact")
    done = decide(tmp_path, "--arm", "codeact")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["FINE_TUNE_AGENT_CODEACT=1"]  # a valid shell variable, for eval "$(decide --quiet)"
    table = [line for line in done.stderr.splitlines() if line.startswith("agent")]
    assert table and all(line.startswith("agent (codeact)") for line in table)


def test_agent_verdict_counts_tasks(tmp_path: Path, langfuse_env) -> None:
    # four tasks against three: the interval straddles delta, and the number that would settle it is of tasks
    agent_run(tmp_path, "azure", [True] * 4)
    agent_run(tmp_path, "slm", [True] * 3 + [False])
    done = decide(tmp_path, "--arm", "toolcall")
    verdict = next(line for line in done.stderr.splitlines() if line.startswith("agent (toolcall): "))
    assert verdict.startswith("agent (toolcall): inconclusive: the tasks cannot tell") and " tasks would resolve it" in verdict
    assert "row" not in verdict


def test_missing_hosted_agent_run_points_at_the_demos_gold_side(tmp_path: Path, langfuse_env) -> None:
    agent_run(tmp_path, "gold", [True] * 4)
    agent_run(tmp_path, "slm", [False] * 4)
    done = decide(tmp_path, "--arm", "toolcall")
    assert done.returncode == 2
    assert "agent_azure_toolcall.json: metric file not found" in done.stderr
    assert "the hosted side is `gold`: add `--hosted-model gold`" in done.stderr
    assert decide(tmp_path, "--arm", "toolcall", "--hosted-model", "gold").returncode == 0
