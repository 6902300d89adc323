"""`--gate-against` on the agent track: the point rule on its core metrics, the interval rule pairing task success
by task id and turn success by turn, and a reference of the other arm refused before any task runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NODES = [f"evals/test_agent.py::test_agent[multi_turn_base_{n}]" for n in (11, 30)]


def gold(out_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", *NODES, "-p", "no:cacheprovider", "-q", "--model=gold", f"--out-dir={out_dir}"]
    return subprocess.run([*command, *extra], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_gate_covers_the_agent_track(tmp_path: Path, langfuse_env) -> None:
    reference = gold(tmp_path / "ref", "--arm=toolcall")
    assert reference.returncode == 0, reference.stdout[-3000:]
    ref_file = tmp_path / "ref" / "agent_gold_toolcall.json"
    for rule in ("point", "interval"):
        same = gold(tmp_path / f"same-{rule}", "--arm=toolcall", f"--gate-against={ref_file}", f"--gate-rule={rule}")
        assert same.returncode == 0, same.stdout[-3000:]
        assert "gate task_success_rate: reference 1.000 current 1.000" in same.stdout
        assert "gate turn_success_rate: reference 1.000 current 1.000" in same.stdout
        assert "gate valid_action_rate" not in same.stdout  # not paired: beside the verdict, never gated
    # one reply per turn: every turn needs an action and then a closing answer, so the step cap ends both episodes
    capped = gold(tmp_path / "capped", "--arm=toolcall", "--max-steps-per-turn=1", f"--gate-against={ref_file}")
    assert capped.returncode == 1, capped.stdout[-3000:]
    assert "gate task_success_rate: reference 1.000 current 0.000 drop +1.000 (delta 0.02) FAIL" in capped.stdout
    interval = gold(
        tmp_path / "capped-interval", "--arm=toolcall", "--max-steps-per-turn=1", f"--gate-against={ref_file}", "--gate-rule=interval"
    )
    # the interval rule: two tasks lost of two is a drop the rows cannot tell from noise, so that metric holds
    line = next(x for x in interval.stdout.splitlines() if x.startswith("gate task_success_rate:"))
    assert line.startswith("gate task_success_rate: reference 1.000 current 0.000 drop +1.000 [") and line.endswith("interval rule) ok")
    other_arm = gold(tmp_path / "codeact", "--arm=codeact", f"--gate-against={ref_file}")
    assert other_arm.returncode == 4 and "reference is for the agent track's toolcall arm, this run uses --arm codeact" in other_arm.stderr
    assert not (tmp_path / "codeact").exists()  # refused before any task ran
