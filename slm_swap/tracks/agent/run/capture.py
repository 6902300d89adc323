"""`--capture-trajectories` (pytest owns `--capture`): every trajectory of an agent run, accepted or rejected by the
verifier, in the trajectory row format of docs/phase2.md: `{"messages", "tools", "verifier", "source"}`, one JSON
object per line.

The verifier is BFCL's multi-turn checker (`slm_swap.tracks.agent.episodes.scoring.score_trajectory`): a trajectory is accepted when
every turn passes, never by asking the model. `tools` are the function docs offered over the episode (the first
turn's and every held-out set added later); `source` names the task, arm, model and which sample it is ("greedy",
the evaluated one, or 1..k at the temperature). A process builds its tasks' lines; the controller writes the file.
"""

from __future__ import annotations

from typing import Any

from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.episodes.demonstrations import trajectory_record
from slm_swap.tracks.agent.episodes.scoring import score_trajectory
from slm_swap.tracks.agent.episodes.trajectory import Trajectory

CAPTURE_PROPERTY = "slm_swap_capture"


def capture_line(task: MultiTurnTask, trajectory: Trajectory, model: str, sample: str, temperature: float) -> dict[str, Any]:
    """One trajectory as `slm_swap.tracks.agent.data.trajectories` reads it (`tools/build_trajectories.py` takes these files)."""
    source = {"model": model, "sample": sample, "temperature": temperature}
    return trajectory_record(task, trajectory, score_trajectory(task, trajectory), source).to_json()


def capture_lines(
    task: MultiTurnTask, greedy: Trajectory, samples: list[Trajectory], model: str, temperature: float
) -> list[dict[str, Any]]:
    """The evaluated (greedy) trajectory first, then each sample in the order it ran."""
    lines = [capture_line(task, greedy, model, "greedy", 0.0)]
    lines += [capture_line(task, sampled, model, str(index), temperature) for index, sampled in enumerate(samples, start=1)]
    return lines
